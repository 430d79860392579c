"""SGD and Adam epochs whose mini-batches span two chunks or more: the kernel (sgd_epoch_run in
fastbp/_sgd_epoch.pxi) computes their chunks on several threads and adds the chunk sums in chunk
order, so weights, moments, Adam's step count and scikit-learn's loss parts are bitwise those of
one thread, and those of NumPy steps along fastbp.gradient (what one thread computed before)."""
import math

import numpy as np
import pytest

import fastbp
from _helpers import bitwise_equal, copies
from fastbp import _api, _core

WIDTHS = [8, 32, 32, 1]
CHUNK = _api._layout_plan(tuple(WIDTHS), 8)[2]        # 512 samples: the same for float32
N = 3 * CHUNK + 500                                   # no batch size below divides it
# 1 chunk (the single-thread path, kept), exactly 2, 2.5, and the whole set (4 chunks, the last
# short); N is no multiple of the first three, so each epoch ends on a short batch
BATCHES = {"1chunk": CHUNK, "2chunks": 2 * CHUNK, "2.5chunks": 5 * CHUNK // 2, "all": N}
RULES = {"sgd": dict(rule="sgd", lr=0.05, momentum=0.0),
         "momentum": dict(rule="sgd", lr=0.05, momentum=0.7),
         "nesterov": dict(rule="nesterov", lr=0.05, momentum=0.7),
         "adam": dict(rule="adam", lr=0.01, momentum=0.8, beta2=0.99, eps=1e-7)}
LAM = 0.3                                             # fit's weight_decay: decay = 2 lambda / N


def problem(dtype, seed=0):
    rng = np.random.default_rng(seed)
    weights = [w.astype(dtype) for w in fastbp.init_weights(WIDTHS, seed=seed + 1)]
    X = rng.standard_normal((N, WIDTHS[0])).astype(dtype)
    y = np.tanh(X[:, :1] - 0.5 * X[:, 1:2]).astype(dtype)
    # positive multiples of 1/8: every batch's total is exact in any order of addition (the
    # kernel adds them one by one, fastbp.gradient with NumPy's pairwise sum)
    sw = (rng.integers(1, 17, N) / 8).astype(dtype)
    order = rng.permutation(N)
    return weights, X, y, sw, order


def kernel_epochs(case, dtype, batch, threads, weighted, sklearn, epochs=2):
    """`epochs` epochs through fastbp._api.sgd_epoch: (weights, moments, steps, loss parts)."""
    weights, X, y, sw, order = problem(dtype)
    rule = dict(RULES[case])
    v = [np.zeros_like(w) for w in weights]
    s = [np.zeros_like(w) for w in weights]
    steps, losses = 3, []                          # Adam resumes at t = 3 (warm_start)
    extra = dict(grad_scale=0.5, l2=0.02) if sklearn else {}
    for epoch in range(epochs):
        o = np.roll(order, 97 * epoch)
        if rule["rule"] == "adam":
            steps, l2_part, err_part = _api.sgd_epoch(
                weights, WIDTHS, X, y, o, batch, rule["lr"], rule["momentum"], v,
                2 * LAM / N, "tanh", sample_weight=sw if weighted else None, rule="adam",
                moment2=s, beta2=rule["beta2"], eps=rule["eps"], steps=steps,
                num_threads=threads, **extra)
        else:
            _, l2_part, err_part = _api.sgd_epoch(
                weights, WIDTHS, X, y, o, batch, rule["lr"], rule["momentum"],
                v if rule["momentum"] else None, 2 * LAM / N, "tanh",
                sample_weight=sw if weighted else None, rule=rule["rule"], num_threads=threads,
                **extra)
        losses.append((l2_part, err_part))
    return weights, v, s, steps, losses


def numpy_epochs(case, dtype, batch, weighted, sklearn, epochs=2):
    """The same epochs as NumPy steps along fastbp.gradient (sgd_epoch_run's documented order of
    operations, in the weights' dtype), one thread: the result every thread count must give."""
    weights, X, y, sw, order = problem(dtype)
    rule = dict(RULES[case])
    lr, mu = rule["lr"], rule["momentum"]
    decay = 2 * LAM / N
    w = copies(weights)
    v = [np.zeros_like(a) for a in w]
    s = [np.zeros_like(a) for a in w]
    t, losses = 3, []
    grad_scale, l2 = (0.5, 0.02) if sklearn else (1.0, 0.0)
    for epoch in range(epochs):
        o = np.roll(order, 97 * epoch)
        l2_part = err_part = 0.0
        for start in range(0, N, batch):
            rows = o[start:start + batch]
            n = len(rows)
            sw_b = sw[rows] if weighted else None
            scale = 1.0 / (float(np.cumsum(sw_b, dtype=np.float64)[-1]) if weighted else n)
            E, g = fastbp.gradient(w, X[rows], y[rows], sample_weight=sw_b,
                                   num_threads=1)
            if sklearn:
                # the loss at the weights the batch saw: |b| err_b, |b| (l2/2) ||W(rows 1..)||^2
                # row by row, each row's squares as NumPy sums them, the rows one by one
                coef_sq = 0.0
                for a in w:
                    for row in a[1:]:
                        coef_sq += float(np.square(row, dtype=np.float64).sum())
                err_part += E * n
                l2_part += 0.5 * l2 * coef_sq * scale * n
                g = [gl * grad_scale for gl in g]                # * 0.5: exact
                g = [gl + decay * wl for gl, wl in zip(g, w)]
                for gl, wl in zip(g, w):
                    gl[1:] = gl[1:] + (l2 * scale) * wl[1:]
            else:
                g = [gl + decay * wl for gl, wl in zip(g, w)]
            if rule["rule"] == "adam":
                b2, eps = rule["beta2"], rule["eps"]
                t += 1
                lr_t = lr * math.sqrt(1 - b2 ** t) / (1 - mu ** t)
                v = [mu * vl + (1 - mu) * gl for vl, gl in zip(v, g)]
                s = [b2 * sl + (1 - b2) * (gl * gl) for sl, gl in zip(s, g)]
                w = [wl - lr_t * vl / (np.sqrt(sl) + eps) for wl, vl, sl in zip(w, v, s)]
            elif rule["rule"] == "nesterov":
                v = [vl * mu - lr * gl for vl, gl in zip(v, g)]
                w = [wl + (mu * vl - lr * gl) for wl, vl, gl in zip(w, v, g)]
            elif mu:
                v = [vl * mu - lr * gl for vl, gl in zip(v, g)]
                w = [wl + vl for wl, vl in zip(w, v)]
            else:
                w = [wl - lr * gl for wl, gl in zip(w, g)]
        losses.append((l2_part, err_part))
    return w, v, s, t, losses


@pytest.mark.parametrize("batch", BATCHES.values(), ids=BATCHES.keys())
@pytest.mark.parametrize("case", RULES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("weighted, sklearn", [(False, False), (True, False), (True, True)],
                         ids=["plain", "weighted", "sklearn"])
def test_two_threads_equal_one_and_the_numpy_steps_bitwise(batch, case, dtype, weighted,
                                                           sklearn):
    one = kernel_epochs(case, dtype, batch, 1, weighted, sklearn)
    two = kernel_epochs(case, dtype, batch, 2, weighted, sklearn)
    want = numpy_epochs(case, dtype, batch, weighted, sklearn)
    for got in (one, two):
        w, v, s, steps, losses = got
        assert bitwise_equal(w, want[0])
        if case != "sgd":
            assert bitwise_equal(v, want[1])
        if case == "adam":
            assert bitwise_equal(s, want[2])
        assert steps == (want[3] if case == "adam" else 3)
        if sklearn:
            assert losses == want[4]
    assert two[4] == one[4]          # the loss parts, sklearn's or not: the same floats


def test_the_plan_shares_only_batches_of_two_chunks_or_more():
    itemsize = 8
    assert _api._plan(WIDTHS, CHUNK, 2, itemsize)[0] == 1
    assert _api._plan(WIDTHS, CHUNK + 1, 2, itemsize)[0] == 2
    assert _api._plan(WIDTHS, 10 * CHUNK, 2, itemsize)[0] == 2
    # a tiny network's batch of two chunks stays on one thread (below _SERIAL_FLOPS)
    tiny = [1, 1]
    chunk = _api._layout_plan((1, 1), itemsize)[2]
    assert 2 * chunk * _api._layout_plan((1, 1), itemsize)[0] < _api._SERIAL_FLOPS
    assert _api._plan(tiny, 2 * chunk, 2, itemsize)[0] == 1


@pytest.mark.parametrize("slots", [1, 2, 3, 64])
@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_rounds_of_chunk_buffers_and_thread_counts_change_nothing(slots, threads, dtype):
    """The kernel itself, with fewer chunk buffers than a batch has chunks (rounds of `slots`
    chunks, a last round of one) and more threads than cores: bitwise the one-thread epoch."""
    weights, X, y, sw, order = problem(dtype, seed=3)
    batch = 5 * CHUNK - 100
    flops, tile, chunk, _ = _api._layout_plan(tuple(WIDTHS), X.dtype.itemsize)
    spec = _api._spec("tanh", "tanh", sw)
    out = []
    for t, k in ((1, 1), (threads, slots)):
        w = copies(weights)
        m = [np.zeros_like(a) for a in w]
        s = [np.zeros_like(a) for a in w]
        res = _core.sgd_epoch(w, WIDTHS, spec, X, y, order, batch, 0.01, 0.9, m,
                              _api.loss_spec(decay=5e-5, alpha=0.01, grad_scale=0.5), tile,
                              chunk, 2, s, 0.999, 1e-8, 0, t, k)
        out.append((w, m, s, res))
    assert bitwise_equal(out[0][0], out[1][0])
    assert bitwise_equal(out[0][1], out[1][1])
    assert bitwise_equal(out[0][2], out[1][2])
    assert out[0][3] == out[1][3]


@pytest.mark.parametrize("method, options", [
    ("sgd", dict(momentum=0.5, nesterov=True)), ("adam", {})])
def test_fit_on_two_threads_equals_one_thread(method, options):
    """fit's num_threads reaches the epoch kernel; the result does not depend on it."""
    weights, X, y, sw, _ = problem("float64", seed=4)
    runs = []
    for threads in (1, 2):
        w = copies(weights)
        history = fastbp.fit(w, X, y, method=method, batch_size=2 * CHUNK + 37, epochs=2,
                             learning_rate=0.01, weight_decay=0.1, sample_weight=sw,
                             num_threads=threads, seed=5, **options)
        runs.append((w, history.E_in))
    assert bitwise_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]


@pytest.mark.parametrize("activation, output, width", [
    ("relu", "softmax", 3), ("logistic", "logistic", 2), ("identity", "linear", 1)])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_other_units_on_two_threads_equal_one(activation, output, width, dtype):
    """Every pairing runs the same chunks: Adam with sample weights, batches of 2.5 chunks."""
    widths = WIDTHS[:-1] + [width]
    rng = np.random.default_rng(7)
    X = rng.standard_normal((N, widths[0])).astype(dtype)
    if output == "softmax":
        y = np.eye(width, dtype=dtype)[rng.integers(0, width, N)]
    elif output == "logistic":
        y = (rng.random((N, width)) > 0.5).astype(dtype)
    else:
        y = rng.standard_normal((N, width)).astype(dtype)
    sw = (rng.integers(1, 17, N) / 8).astype(dtype)
    order = rng.permutation(N)
    runs = []
    for threads in (1, 2):
        w = [a.astype(dtype) for a in fastbp.init_weights(widths, seed=8)]
        m = [np.zeros_like(a) for a in w]
        s = [np.zeros_like(a) for a in w]
        res = _api.sgd_epoch(w, widths, X, y, order, 5 * CHUNK // 2, 0.01, 0.9, m, 1e-4,
                             output, activation, sample_weight=sw, rule="adam", moment2=s,
                             num_threads=threads, grad_scale=0.5, l2=0.01)
        runs.append((w, m, s, res))
    for a, b in zip(*runs[:2]):
        assert bitwise_equal(a, b) if isinstance(a, list) else a == b
