"""Hidden activations (tanh, relu, logistic, identity), outputs with their error measures (tanh and
linear with squared error, logistic and softmax with cross-entropy) and sample weights: the
compiled kernels against the reference, PyTorch autograd, finite differences and themselves."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastbp
from _helpers import make_problem, rel_err, targets_for
from fastbp import _api, _checks, _core, reference

ACTIVATIONS = _checks.ACTIVATIONS
OUTPUTS = _checks.OUTPUTS
PAIRS = [(a, o) for a in ACTIVATIONS for o in OUTPUTS]
PAIR_IDS = [f"{a}-{o}" for a, o in PAIRS]

SHAPES = {
    "one-unit": [1, 1, 1],
    "one-unit-2out": [1, 1, 2],
    "no-hidden": [3, 2],
    "no-hidden-one-unit": [1, 1],
    "multi-output": [4, 6, 3],
    "deep": [3] + [5] * 8 + [2],
    "wide-odd": [13, 37, 11, 5],
}


def targets(output, n, d, seed=0, dtype="float64"):
    """Targets fit for `output` (_helpers.targets_for), from the seed."""
    return targets_for(output, n, d, np.random.default_rng(seed + 100), dtype)


def problem(widths, n, activation, output, dtype="float64", seed=0):
    """make_problem's weights for squared error. For the cross-entropies, the weights of
    init_weights (make_problem's are 1.5 times larger): through 8 identity or ReLU layers those
    give logits in the tens, outputs within 1e-4 of a 0/1 target, and a delta(L) = x(L) - y that
    cancels to a few digits in any implementation (the compiled one and the reference then agree
    to about 1e-12 times the condition number |x|/|x - y|, not better; test_huge_logits_* checks
    the saturated case against exact values instead)."""
    weights, X, _ = make_problem(widths, n, dtype=dtype, seed=seed)
    if output in ("logistic", "softmax"):
        weights = [(w / 1.5).astype(dtype) for w in weights]
    elif output == "poisson":
        # x(L) = exp(s(L)): through 8 identity layers make_problem's weights give s(L) in the
        # hundreds, beyond float32's exp
        weights = [(w / 2).astype(dtype) for w in weights]
    return weights, X, targets(output, n, widths[-1], seed, dtype)


def valid(widths, output):
    return not (output == "softmax" and widths[-1] < 2)


def sample_weights(n, seed=0):
    rng = np.random.default_rng(seed + 200)
    w = rng.uniform(0, 3, n)
    w[rng.uniform(size=n) < 0.2] = 0
    w[0] = 1.5  # never all zero
    return w


# ------------------------------------------------------------------------------------------------
# The reference

# softmax needs two output units: the one-output shapes are left out of its cases
CASES = [(a, o, name) for a, o in PAIRS for name in sorted(SHAPES) if valid(SHAPES[name], o)]


@pytest.mark.parametrize("activation, output, name", CASES, ids=["-".join(c) for c in CASES])
@pytest.mark.parametrize("n", [1, 33, 150])
def test_matches_reference_float64(activation, output, name, n):
    widths = SHAPES[name]
    weights, X, y = problem(widths, n, activation, output, seed=n)
    kw = dict(output=output, activation=activation)
    e, grads = fastbp.gradient(weights, X, y, **kw)
    e_ref, grads_ref = reference.gradient(weights, X, y, **kw)
    assert np.isfinite(e) and e > 0
    assert abs(e - e_ref) <= 1e-12 * abs(e_ref)
    for g, g_ref, w in zip(grads, grads_ref, weights):
        assert g.shape == w.shape and g.dtype == np.float64
        assert rel_err(g, g_ref) < 1e-12
    assert abs(fastbp.error(weights, X, y, **kw) - e_ref) <= 1e-12 * abs(e_ref)
    out = fastbp.forward(weights, X, output, activation)
    assert rel_err(out, reference.forward(weights, X, output, activation)) < 1e-12
    if output == "softmax":
        assert np.allclose(out.sum(axis=1), 1, rtol=0, atol=1e-15 * widths[-1])
    if output in ("logistic", "softmax"):
        assert np.all((out >= 0) & (out <= 1))
    # the sample weights: the weighted mean, also with zero weights in it
    sw = sample_weights(n, seed=n)
    e, grads = fastbp.gradient(weights, X, y, sample_weight=sw, **kw)
    e_ref, grads_ref = reference.gradient(weights, X, y, sample_weight=sw, **kw)
    assert abs(e - e_ref) <= 1e-12 * abs(e_ref)
    assert all(rel_err(g, g_ref) < 1e-12 for g, g_ref in zip(grads, grads_ref))
    assert abs(fastbp.error(weights, X, y, sample_weight=sw, **kw) - e_ref) <= 1e-12 * abs(e_ref)


def relu_margin(weights, X):
    """The smallest |s(l)| of a hidden layer of a ReLU network, in float64."""
    x, margin = X.astype(float), np.inf
    for w in weights[:-1]:
        s = w[0].astype(float) + x @ w[1:].astype(float)
        margin = min(margin, float(np.abs(s).min()))
        x = np.maximum(s, 0)
    return margin


@pytest.mark.parametrize("activation, output", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("name", ["one-unit-2out", "no-hidden", "deep", "wide-odd"])
def test_float32_matches_reference(activation, output, name):
    widths = SHAPES[name]
    seed = 7
    weights, X, y = problem(widths, 300, activation, output, seed=seed)
    # a ReLU signal within float32 rounding of 0 (1e-8 happens among 14 000) switches its unit
    # on in one precision and off in the other: compare on data without such a kink
    while activation == "relu" and relu_margin(weights, X) < 1e-4:
        seed += 1
        weights, X, y = problem(widths, 300, activation, output, seed=seed)
    w32, X32, y32 = ([v.astype(np.float32) for v in weights], X.astype(np.float32),
                     y.astype(np.float32))
    kw = dict(output=output, activation=activation)
    # the reference in float64 on the very same (float32-representable) numbers
    e_ref, g_ref = reference.gradient([v.astype(float) for v in w32], X32.astype(float),
                                      y32.astype(float), **kw)
    e, g = fastbp.gradient(w32, X32, y32, **kw)
    assert isinstance(e, float)
    assert abs(e - e_ref) <= 1e-5 * abs(e_ref)
    for a, b in zip(g, g_ref):
        assert a.dtype == np.float32
        assert rel_err(a, b) < 1e-5
    out = fastbp.forward(w32, X32, output, activation)
    assert out.dtype == np.float32
    assert rel_err(out, reference.forward([v.astype(float) for v in w32], X32.astype(float),
                                          output, activation)) < 1e-5


@pytest.mark.parametrize("activation, output", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_backprop_matches_reference_and_gradient(activation, output, dtype):
    weights, X, y = problem([3, 4, 5, 2], 1, activation, output, dtype=dtype, seed=9)
    kw = dict(output=output, activation=activation)
    xs, deltas = fastbp.backprop(weights, X[0], y[0], **kw)
    xs_ref, deltas_ref = reference.backprop(weights, X[0], y[0], **kw)
    assert len(xs) == 4 and len(deltas) == 3
    tol = 1e-13 if dtype == "float64" else 1e-5
    for a, b in zip(xs + deltas, xs_ref + deltas_ref):
        assert a.shape == b.shape and a.dtype == np.dtype(dtype)
        assert rel_err(a, b) < tol
    _, grads = fastbp.gradient(weights, X, y, **kw)
    for l in range(3):
        assert rel_err(np.outer(xs[l], deltas[l]), grads[l]) < tol


def test_default_activation_is_tanh_bitwise():
    """activation="tanh" is the default, and the new arguments at their defaults change nothing."""
    weights, X, y = make_problem([5, 9, 7, 3], 300, seed=1)
    for output in ("tanh", "linear"):
        e, g = fastbp.gradient(weights, X, y, output)
        e2, g2 = fastbp.gradient(weights, X, y, output, activation="tanh", sample_weight=None)
        assert e == e2 and all(np.array_equal(a, b) for a, b in zip(g, g2))
        assert fastbp.error(weights, X, y, output) == fastbp.error(weights, X, y, output, None,
                                                                   "tanh")


# ------------------------------------------------------------------------------------------------
# Threads

def chunk_of(widths, dtype="float64"):
    return _api._plan(widths, 10**9, 2, np.dtype(dtype).itemsize)[2]


@pytest.mark.parametrize("activation, output", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_bitwise_identical_across_thread_counts(activation, output, dtype):
    widths = [10, 24, 12, 4]
    n = chunk_of(widths, dtype) * 5 + 13
    weights, X, y = problem(widths, n, activation, output, dtype=dtype, seed=11)
    assert _api._plan(widths, n, 3, np.dtype(dtype).itemsize)[0] == 3
    sw = sample_weights(n).astype(dtype)
    for weight in (None, sw):
        kw = dict(output=output, activation=activation, sample_weight=weight)
        e1, g1 = fastbp.gradient(weights, X, y, num_threads=1, **kw)
        for threads in (2, 3):
            e, g = fastbp.gradient(weights, X, y, num_threads=threads, **kw)
            assert e == e1
            assert all(np.array_equal(a, b) for a, b in zip(g, g1))
            assert fastbp.error(weights, X, y, num_threads=threads, **kw) == \
                fastbp.error(weights, X, y, num_threads=1, **kw)


# ------------------------------------------------------------------------------------------------
# PyTorch autograd

def torch_gradient(weights, X, y, output, activation, sample_weight=None):
    """E_in and its gradient by PyTorch autograd, its own activations and losses."""
    import torch
    import torch.nn.functional as F
    Ws = [torch.tensor(w, requires_grad=True) for w in weights]
    x = torch.tensor(X)
    t = torch.tensor(y)
    hidden = {"tanh": torch.tanh, "relu": F.relu, "logistic": torch.sigmoid,
              "identity": lambda s: s}[activation]
    for l, W in enumerate(Ws):
        s = W[0] + x @ W[1:]
        x = hidden(s) if l < len(Ws) - 1 else s
    if output == "tanh":
        e = ((torch.tanh(s) - t) ** 2).sum(dim=1)
    elif output == "linear":
        e = ((s - t) ** 2).sum(dim=1)
    elif output == "logistic":
        e = F.binary_cross_entropy_with_logits(s, t, reduction="none").sum(dim=1)
    elif output == "poisson":
        # the deviance halved: PoissonNLLLoss(log_input=True) plus its constant y log y - y
        e = (torch.exp(s) - t * s + torch.special.xlogy(t, t) - t).sum(dim=1)
    else:
        e = F.cross_entropy(s, t, reduction="none")  # probability targets
    if sample_weight is None:
        E = e.mean()
    else:
        w = torch.tensor(sample_weight, dtype=s.dtype)
        E = (w * e).sum() / w.sum()
    E.backward()
    return E.item(), [W.grad.numpy() for W in Ws]


def torch_reduction_checks(weights, X, y, output):
    """PyTorch's own reductions, matched: mean over samples of the per-sample sum over units."""
    import torch
    import torch.nn.functional as F
    s = torch.tensor(X @ weights[0][1:] + weights[0][0])
    t = torch.tensor(y)
    if output == "logistic":
        return float(F.binary_cross_entropy_with_logits(s, t, reduction="sum")) / len(X)
    return float(F.cross_entropy(s, t, reduction="mean"))


@pytest.mark.parametrize("activation, output", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("name", ["one-unit-2out", "no-hidden", "multi-output", "deep", "wide-odd"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_matches_pytorch_autograd(activation, output, name, weighted):
    pytest.importorskip("torch")
    widths = SHAPES[name]
    n = 97
    weights, X, y = problem(widths, n, activation, output, seed=3)
    sw = sample_weights(n, seed=3) if weighted else None
    kw = dict(output=output, activation=activation, sample_weight=sw)
    E_t, g_t = torch_gradient(weights, X, y, output, activation, sw)
    e, g = fastbp.gradient(weights, X, y, **kw)
    assert abs(e - E_t) <= 1e-12 * abs(E_t)
    assert all(rel_err(a, b) < 1e-12 for a, b in zip(g, g_t))
    w32 = [w.astype(np.float32) for w in weights]
    e32, g32 = fastbp.gradient(w32, X.astype(np.float32), y.astype(np.float32), **kw)
    E_t32, g_t32 = torch_gradient([w.astype(float) for w in w32],
                                  X.astype(np.float32).astype(float),
                                  y.astype(np.float32).astype(float), output, activation, sw)
    assert abs(e32 - E_t32) <= 1e-5 * abs(E_t32)
    assert all(rel_err(a, b) < 1e-5 for a, b in zip(g32, g_t32))


@pytest.mark.parametrize("output", ["logistic", "softmax"])
def test_cross_entropy_matches_pytorch_reductions(output):
    pytest.importorskip("torch")
    weights, X, y = problem([6, 4], 50, "identity", output, seed=2)
    assert abs(fastbp.error(weights, X, y, output) -
               torch_reduction_checks(weights, X, y, output)) <= 1e-12 * fastbp.error(
                   weights, X, y, output)


# ------------------------------------------------------------------------------------------------
# Finite differences

@pytest.mark.parametrize("activation, output", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("widths", [[2, 3, 2], [3, 2], [2, 4, 3, 2]], ids=str)
def test_check_gradient(activation, output, widths):
    # logistic hidden units (sigma' <= 1/4 a layer) give derivatives down near check_gradient's
    # floor, where central differences resolve about 5 digits: eps = 1e-5 and 1e-5 (a wrong
    # gradient gives about 1; see test_check_gradient_catches_a_wrong_relu_derivative)
    weights, X, y = problem(widths, 15, activation, output, seed=5)
    assert fastbp.check_gradient(weights, X, y, output=output, activation=activation,
                                 eps=1e-5) < 1e-5
    sw = sample_weights(15, seed=5)
    assert fastbp.check_gradient(weights, X, y, output=output, activation=activation,
                                 sample_weight=sw, weight_decay=0.3, eps=1e-5) < 1e-5
    w32 = [w.astype(np.float32) for w in weights]
    assert fastbp.check_gradient(w32, X, y, output=output, activation=activation,
                                 eps=1e-4) < 1e-2


def test_check_gradient_catches_a_wrong_relu_derivative(monkeypatch):
    """A wrong theta' (here: the identity's, 1 everywhere) is caught."""
    weights, X, y = problem([3, 6, 2], 20, "relu", "softmax", seed=1)
    real = fastbp._api.gradient

    def identity_derivative(w, X_, y_, **kw):
        kw["activation"] = "identity"
        return real(w, X_, y_, **kw)
    monkeypatch.setattr(fastbp._api, "gradient", identity_derivative)
    assert fastbp.check_gradient(weights, X, y, output="softmax", activation="relu") > 0.05


# ------------------------------------------------------------------------------------------------
# Stability of the cross-entropies

@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_huge_logits_and_exact_targets(dtype):
    """Logits of +-1e4 with targets exactly 0 and 1: finite errors of the exact value, gradient
    x(L) - y exactly (no log of a rounded probability, no exp overflow)."""
    big = 1e4
    # one input of 1: s(L) = W[0] + W[1], the bias row sets the logits
    W = np.zeros((2, 3), dtype)
    W[0] = [big, -big, 0]
    X = np.ones((4, 1), dtype)
    # logistic: units of s = +1e4, -1e4, 0
    yl = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 1], [0, 0, 0]], dtype)
    e, (g,) = fastbp.gradient([W], X, yl, "logistic")
    # per sample: sum over units of max(s,0) - y s + log(1 + e^-|s|); log(2) for s = 0
    want = np.mean([np.log(2), 2 * big + np.log(2), big + np.log(2), big + np.log(2)])
    assert np.isfinite(e) and abs(e - want) <= 1e-7 * want
    x = np.array([1, 0, 0.5])
    delta = (x - yl).mean(axis=0)
    assert np.array_equal(g, np.array([delta, delta], dtype))
    assert fastbp.error([W], X, yl, "logistic") == e
    e_ref = reference.error([W], X, yl, "logistic")
    assert abs(e - e_ref) <= 1e-7 * e_ref
    # softmax: s = (1e4, -1e4, 0), log-sum-exp = 1e4 (the other terms vanish)
    ys = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.5, 0, 0.5]], dtype)
    e, (g,) = fastbp.gradient([W], X, ys, "softmax")
    want = np.mean([0, 2 * big, big, big / 2])
    assert np.isfinite(e) and abs(e - want) <= 1e-7 * want
    x = np.array([1, 0, 0])
    delta = (x - ys).mean(axis=0)
    assert np.array_equal(g, np.array([delta, delta], dtype))
    out = fastbp.forward([W], X, "softmax")
    assert np.array_equal(out, np.tile(np.array([1, 0, 0], dtype), (4, 1)))
    e_ref = reference.error([W], X, ys, "softmax")
    assert abs(e - e_ref) <= 1e-7 * e_ref
    # a perfect prediction is an error of exactly 0
    assert fastbp.error([W], X[:1], ys[:1], "softmax") == 0.0
    assert fastbp.error([W[:, :2]], X[:1], yl[:1, :2], "logistic") == 0.0


def test_huge_hidden_signals_stay_finite():
    weights, X, y = problem([4, 8, 3], 64, "logistic", "softmax", seed=4)
    weights = [w * 1e4 for w in weights]
    for activation in ACTIVATIONS:
        e, g = fastbp.gradient(weights, X, y, "softmax", activation=activation)
        assert np.isfinite(e) and all(np.isfinite(v).all() for v in g)
        e_ref, g_ref = reference.gradient(weights, X, y, "softmax", activation=activation)
        assert abs(e - e_ref) <= 1e-12 * abs(e_ref)
        # saturated tanh units: theta' = 1 - x^2 of an x within an ulp or two of +-1 has few
        # correct digits in any implementation; the two agree to 1.5e-12 here
        assert all(rel_err(a, b) < 1e-10 for a, b in zip(g, g_ref))


# ------------------------------------------------------------------------------------------------
# Sample weights

@pytest.mark.parametrize("activation, output", [("tanh", "tanh"), ("relu", "softmax"),
                                                ("logistic", "logistic"), ("identity", "linear")])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sample_weight_semantics(activation, output, dtype):
    widths = [5, 7, 3]
    n = 260
    weights, X, y = problem(widths, n, activation, output, dtype=dtype, seed=8)
    kw = dict(output=output, activation=activation)
    tol = 1e-12 if dtype == "float64" else 1e-5
    e0, g0 = fastbp.gradient(weights, X, y, **kw)
    # uniform weights equal none
    e, g = fastbp.gradient(weights, X, y, sample_weight=np.full(n, 3.7), **kw)
    assert abs(e - e0) <= tol * e0 and all(rel_err(a, b) < tol for a, b in zip(g, g0))
    # a zero weight equals dropping the sample
    sw = np.ones(n)
    drop = np.arange(n) % 7 == 3
    sw[drop] = 0
    e, g = fastbp.gradient(weights, X, y, sample_weight=sw, **kw)
    e_d, g_d = fastbp.gradient(weights, X[~drop], y[~drop], **kw)
    assert abs(e - e_d) <= tol * e_d and all(rel_err(a, b) < tol for a, b in zip(g, g_d))
    # integer weights equal repeating the samples
    counts = np.arange(n) % 4
    e, g = fastbp.gradient(weights, X, y, sample_weight=counts, **kw)
    e_r, g_r = fastbp.gradient(weights, np.repeat(X, counts, axis=0), np.repeat(y, counts, axis=0),
                               **kw)
    assert abs(e - e_r) <= tol * e_r and all(rel_err(a, b) < tol for a, b in zip(g, g_r))
    assert abs(fastbp.error(weights, X, y, sample_weight=counts, **kw) - e_r) <= tol * e_r
    # reduction="sum": sum_n w_n e_n and its gradient
    e_s, g_s = fastbp.gradient(weights, X, y, sample_weight=counts, reduction="sum", **kw)
    assert abs(e_s - counts.sum() * e_r) <= tol * e_s
    assert all(rel_err(a, counts.sum() * b) < tol for a, b in zip(g_s, g_r))


def test_sample_weight_is_not_copied_or_changed():
    weights, X, y = problem([3, 4, 2], 100, "relu", "softmax")
    sw = np.linspace(0, 2, 100)
    before = sw.copy()
    sw.flags.writeable = False
    fastbp.gradient(weights, X, y, "softmax", activation="relu", sample_weight=sw)
    assert np.array_equal(sw, before)
    # a list and a float32 array are converted to the weights' dtype
    e1 = fastbp.error(weights, X, y, "softmax", activation="relu", sample_weight=list(before))
    e2 = fastbp.error(weights, X, y, "softmax", activation="relu", sample_weight=before)
    assert e1 == e2


# ------------------------------------------------------------------------------------------------
# Every kernel set, and the vector functions

KERNEL_SET_CODE = """
import fastbp, numpy as np
from _helpers import make_problem, rel_err
from test_activations import problem, sample_weights, PAIRS
from fastbp import reference, _api
assert _api.ISA == {isa!r}, _api.ISA
for dt in ('float64', 'float32'):
    for a, o in PAIRS:
        for widths in ([5, 17, 9, 2], [1, 2], [12, 40, 33, 7]):
            for n in (1, 7, 150):
                w, X, y = problem(widths, n, a, o, dtype=dt)
                sw = sample_weights(n).astype(dt) if n > 1 else None
                kw = dict(output=o, activation=a, sample_weight=sw)
                e, g = fastbp.gradient(w, X, y, **kw)
                e_ref, g_ref = reference.gradient([v.astype(float) for v in w], X.astype(float),
                                                  y.astype(float), **kw)
                tol = 1e-12 if dt == 'float64' else 1e-5
                assert abs(e - e_ref) <= tol * e_ref, (dt, a, o, widths, n)
                assert max(rel_err(p, q) for p, q in zip(g, g_ref)) < tol, (dt, a, o, widths, n)
                out = fastbp.forward(w, X, o, a)
                assert rel_err(out, reference.forward([v.astype(float) for v in w],
                                                      X.astype(float), o, a)) < tol
        # 1 and 2 threads bitwise equal with this kernel set too
        widths = [10, 24, 12, 4]
        n = _api._plan(widths, 10**9, 2, np.dtype(dt).itemsize)[2] * 3 + 5
        w, X, y = problem(widths, n, a, o, dtype=dt, seed=2)
        kw = dict(output=o, activation=a, sample_weight=sample_weights(n).astype(dt))
        e1, g1 = fastbp.gradient(w, X, y, num_threads=1, **kw)
        e2, g2 = fastbp.gradient(w, X, y, num_threads=2, **kw)
        assert e1 == e2 and all(np.array_equal(p, q) for p, q in zip(g1, g2)), (dt, a, o)
print('ok')
"""


@pytest.mark.parametrize("simd, isa", [("baseline", "baseline"), ("avx2", "avx2+fma"),
                                       ("avx512", "avx512"), ("neon", "neon")])
def test_every_kernel_set_matches_the_reference(simd, isa):
    if not dict(_core.kernel_sets()).get(isa):
        pytest.skip(f"this CPU does not run the {isa} kernels")
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, FASTBP_SIMD=simd)
    res = subprocess.run([sys.executable, "-c", KERNEL_SET_CODE.format(isa=isa)], cwd=here, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stderr


def aligned(values, dtype):
    """A 64-byte aligned copy, padded to a whole number of the widest vectors."""
    x = np.asarray(values, dtype)
    x = np.concatenate([x, np.zeros((-len(x)) % 64, dtype)])
    buf = np.zeros(len(x) + 64, dtype)
    shift = (-buf.ctypes.data % 64) // buf.itemsize
    out = buf[shift:shift + len(x)]
    out[:] = x
    return out


def ulps(got, want, dtype):
    """|got - want| in units of the last place of `want` rounded to dtype (want in long double)."""
    got = got.astype(np.longdouble)
    return np.abs(got - want) / np.spacing(np.abs(want).astype(dtype)).astype(np.longdouble)


# the kernels' accuracy, as stated in _simd_kernels.h; every kernel set is checked in a subprocess
VECTOR_ULPS = {"exp": 2, "logistic": 3, "log": 3, "log1p_exp": 4}
VECTOR_CODE = """
import sys
sys.path.insert(0, '.')
from test_activations import check_vector_functions
check_vector_functions()
print('ok')
"""


def check_vector_functions():
    assert np.finfo(np.longdouble).nmant >= 63  # x86 extended precision: the reference values
    for dtype in ("float64", "float32"):
        lo, hi = (-708.0, 709.0) if dtype == "float64" else (-87.0, 88.0)
        x = aligned(np.concatenate([np.linspace(lo, hi, 200001), np.geomspace(1e-30, 1, 20000),
                                    -np.geomspace(1e-30, 1, 20000), [0.0, -0.0, lo, hi]]), dtype)
        y = aligned(x, dtype)
        _core.exp(y)
        err = ulps(y, np.exp(x.astype(np.longdouble)), dtype)
        assert err.max() <= VECTOR_ULPS["exp"], (dtype, x[err.argmax()], err.max())
        # below lo the vector kernels give 0 (the result would be subnormal, or underflow anyway);
        # the plain-C kernels (libm) may give the subnormal
        tiny = aligned([lo - 0.5, lo - 1000, -1e30], dtype)
        _core.exp(tiny)
        assert np.all((tiny[:3] >= 0) & (tiny[:3] < np.finfo(dtype).tiny))

        x = aligned(np.concatenate([np.linspace(lo + 1, 60, 200001), np.geomspace(1e-30, 50, 20000),
                                    -np.geomspace(1e-30, 50, 20000), [0.0, -0.0]]), dtype)
        y = aligned(x, dtype)
        _core.logistic(y)
        want = 1 / (1 + np.exp(-x.astype(np.longdouble)))
        err = ulps(y, want, dtype)
        assert err.max() <= VECTOR_ULPS["logistic"], (dtype, x[err.argmax()], err.max())
        huge = aligned([1e4, -1e4, 1e30, -1e30], dtype)
        _core.logistic(huge)
        assert np.array_equal(huge[:4], np.array([1, 0, 1, 0], dtype))

        # log of u >= 1 (softmax's log of its sum of exponentials)
        top = 1e300 if dtype == "float64" else 1e37
        u = aligned(np.concatenate([np.linspace(1, 2, 100001), np.linspace(2, 64, 100001),
                                    np.geomspace(1, top, 100000),
                                    1 + np.geomspace(1e-20, 1, 20000)]), dtype)
        u = aligned(np.maximum(u, 1), dtype)                    # the padding too
        y = aligned(u, dtype)
        _core.log(y)
        want = np.log(u.astype(np.longdouble))
        assert np.all(y[want == 0] == 0)
        err = ulps(y[want > 0], want[want > 0], dtype)
        assert err.max() <= VECTOR_ULPS["log"], (dtype, err.max())

        # log(1 + exp(-|x|)), the binary cross-entropy's tail, where it is not subnormal
        x = aligned(np.concatenate([np.linspace(lo - 40, hi + 40, 200001),
                                    np.geomspace(1e-30, 50, 20000), -np.geomspace(1e-30, 50, 20000),
                                    [0.0, -0.0]]), dtype)
        y = aligned(x, dtype)
        _core.log1p_exp(y)
        want = np.log1p(np.exp(-np.abs(x.astype(np.longdouble))))
        inside = np.abs(x) <= -lo       # beyond, exp(-|x|) is below exp(lo): 0 or subnormal
        err = ulps(y[inside], want[inside], dtype)
        assert err.max() <= VECTOR_ULPS["log1p_exp"], (dtype, x[inside][err.argmax()], err.max())
        assert np.all((y[~inside] >= 0) & (y[~inside] <= np.exp(np.longdouble(lo))))

        # softmax (through forward on s(L) = X): each probability within a few ulps of its value,
        # relative to the sample's largest probability
        rng = np.random.default_rng(0)
        d = 7
        W = np.vstack([np.zeros((1, d)), np.eye(d)]).astype(dtype)
        S = (rng.standard_normal((4000, d)) * np.array([0.1, 1, 3, 10, 30, 100, 300])).astype(dtype)
        P = fastbp.forward([W], S, "softmax")
        Sl = S.astype(np.longdouble)
        E = np.exp(Sl - Sl.max(axis=1, keepdims=True))
        want = E / E.sum(axis=1, keepdims=True)
        err = np.abs(P.astype(np.longdouble) - want) / np.spacing(np.ones(1, dtype))[0]
        assert err.max() <= 4, (dtype, err.max())


@pytest.mark.parametrize("simd, isa", [("baseline", "baseline"), ("avx2", "avx2+fma"),
                                       ("avx512", "avx512"), ("neon", "neon")])
def test_vector_exp_logistic_softmax_are_accurate(simd, isa):
    if not dict(_core.kernel_sets()).get(isa):
        pytest.skip(f"this CPU does not run the {isa} kernels")
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, FASTBP_SIMD=simd)
    res = subprocess.run([sys.executable, "-c", VECTOR_CODE], cwd=here, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stderr


# ------------------------------------------------------------------------------------------------
# Bad input

MODULES = pytest.mark.parametrize("module", [fastbp, reference], ids=["fastbp", "reference"])


def call_all(module, weights, X, y, **kw):
    """Every function that takes these arguments; each must raise."""
    yield lambda: module.gradient(weights, X, y, **kw)
    yield lambda: module.error(weights, X, y, **kw)


@MODULES
@pytest.mark.parametrize("kw, pattern", [
    (dict(activation="sigmoid"),
     r"activation must be one of 'tanh', 'relu', 'logistic', 'identity', got 'sigmoid'"),
    (dict(activation=None), r"activation must be one of .*, got None"),
    (dict(output="relu"),
     r"output must be one of 'tanh', 'linear', 'logistic', 'softmax', 'poisson', got 'relu'"),
])
def test_unknown_names_are_refused_everywhere(module, kw, pattern):
    weights, X, y = problem([3, 4, 2], 10, "tanh", "tanh")
    for call in call_all(module, weights, X, y, **kw):
        with pytest.raises(ValueError, match=pattern):
            call()
    with pytest.raises(ValueError, match=pattern):
        module.forward(weights, X, **kw)
    with pytest.raises(ValueError, match=pattern):
        module.backprop(weights, X[0], y[0], **kw)
    with pytest.raises(ValueError, match=pattern):
        module.Network([3, 4, 2], **kw)
    with pytest.raises(ValueError, match=pattern):
        fastbp.check_gradient(weights, X, y, **kw)


def bad_targets(output):
    y = targets(output, 10, 3)
    if output == "logistic":
        y[4, 1] = 1.5
    else:
        y[6] = [0.5, 0.25, 0.2]
    return y


@MODULES
@pytest.mark.parametrize("output, y, pattern", [
    ("logistic", "over", r"y must hold probabilities in \[0, 1\] for output='logistic' "
                         r"\(cross-entropy\), but y\[4, 1\] = 1.5"),
    ("logistic", "negative", r"y must hold probabilities in \[0, 1\] .* y\[0, 0\] = -1.0"),
    ("softmax", "negative", r"y must hold probabilities in \[0, 1\] for output='softmax'"),
    ("softmax", "rowsum", r"the rows of y must sum to 1 for output='softmax' .* row 6 sums to "
                          r"0.95"),
])
def test_bad_cross_entropy_targets(module, output, y, pattern):
    weights, X, _ = problem([3, 4, 3], 10, "relu", output)
    if y == "over" or y == "rowsum":
        y = bad_targets(output)
    else:
        y = targets(output, 10, 3)
        y[0, 0] = -1.0
    before = [w.copy() for w in weights], X.copy(), y.copy()
    for call in call_all(module, weights, X, y, output=output, activation="relu"):
        with pytest.raises(ValueError, match=pattern):
            call()
    with pytest.raises(ValueError, match=pattern):
        fastbp.check_gradient(weights, X, y, output=output)
    assert all(np.array_equal(a, b) for a, b in zip(before[0], weights))
    assert np.array_equal(before[1], X) and np.array_equal(before[2], y)


def test_bad_target_of_backprop_and_tolerated_rounding():
    weights, X, y = problem([3, 4, 3], 10, "tanh", "softmax")
    with pytest.raises(ValueError, match=r"row 0 sums to 2.0"):
        fastbp.backprop(weights, X[0], [1, 1, 0], output="softmax")
    with pytest.raises(ValueError, match=r"y\[0, 2\] = 2.0"):
        fastbp.backprop(weights, X[0], [0, 0, 2], output="logistic")
    # rows of a distribution written in decimals sum to 1 within rounding: accepted
    y = np.tile([0.1, 0.2, 0.7], (10, 1)) + np.array([0, 0, 5e-7])
    fastbp.error(weights, X, y, "softmax")
    # squared-error outputs take any finite targets, as before
    fastbp.error(weights, X, y * 40 - 7, "linear")


@MODULES
@pytest.mark.parametrize("output", ["softmax"])
def test_softmax_needs_two_units(module, output):
    weights, X, y = problem([3, 4, 1], 10, "tanh", "logistic")
    pattern = r"output='softmax' needs at least 2 output units, got d\(L\) = 1"
    for call in call_all(module, weights, X, y, output=output):
        with pytest.raises(ValueError, match=pattern):
            call()
    with pytest.raises(ValueError, match=pattern):
        module.forward(weights, X, output=output)
    with pytest.raises(ValueError, match=pattern):
        module.backprop(weights, X[0], y[0], output=output)
    with pytest.raises(ValueError, match=pattern):
        module.Network([3, 4, 1], output=output)


@MODULES
@pytest.mark.parametrize("sample_weight, exc, pattern", [
    (np.r_[1.0, -0.5, np.ones(8)], ValueError,
     r"sample_weight must be non-negative, but sample_weight\[1\] = -0.5"),
    (np.r_[1.0, 1.0, np.nan, np.ones(7)], ValueError,
     r"sample_weight must be finite, but sample_weight\[2\] = nan"),
    (np.r_[np.inf, np.ones(9)], ValueError,
     r"sample_weight must be finite, but sample_weight\[0\] = inf"),
    (np.zeros(10), ValueError, r"sample_weight must not be all zero"),
    (np.ones(9), ValueError, r"sample_weight must have shape \(10,\), one weight per sample, "
                             r"got shape \(9,\)"),
    (np.ones((10, 1)), ValueError, r"sample_weight must have shape \(10,\)"),
    (np.array(["a"] * 10), TypeError, r"sample_weight must hold real numbers"),
    (np.ones(10, bool), TypeError, r"sample_weight must hold real numbers"),
], ids=["negative", "nan", "inf", "all-zero", "length", "2-d", "strings", "bool"])
def test_bad_sample_weights(module, sample_weight, exc, pattern):
    weights, X, y = problem([3, 4, 2], 10, "tanh", "softmax")
    before = sample_weight.copy(), [w.copy() for w in weights], X.copy(), y.copy()
    for call in call_all(module, weights, X, y, output="softmax", sample_weight=sample_weight):
        with pytest.raises(exc, match=pattern):
            call()
    with pytest.raises(exc, match=pattern):
        fastbp.check_gradient(weights, X, y, output="softmax", sample_weight=sample_weight)
    assert np.array_equal(before[0], sample_weight, equal_nan=before[0].dtype.kind == "f")
    assert all(np.array_equal(a, b) for a, b in zip(before[1], weights))
    assert np.array_equal(before[2], X) and np.array_equal(before[3], y)


# ------------------------------------------------------------------------------------------------
# Network, save and load

def test_network_with_activation_and_probabilities(tmp_path):
    net = fastbp.Network([4, 6, 3], output="softmax", activation="relu", seed=2)
    assert "activation='relu'" in repr(net) and "output='softmax'" in repr(net)
    weights, X, y = problem([4, 6, 3], 40, "relu", "softmax")
    P = net.predict_proba(X)
    assert np.array_equal(P, fastbp.forward(net.weights, X, "softmax", "relu"))
    assert np.allclose(P.sum(axis=1), 1)
    assert net.error(X, y) == fastbp.error(net.weights, X, y, "softmax", activation="relu")
    e, g = net.gradient(X, y, sample_weight=np.arange(40) % 3)
    e_ref, g_ref = reference.Network([4, 6, 3], output="softmax", activation="relu",
                                     seed=2).gradient(X, y, sample_weight=np.arange(40) % 3)
    assert abs(e - e_ref) <= 1e-12 * e_ref
    assert all(rel_err(a, b) < 1e-12 for a, b in zip(g, g_ref))
    # classification error: arg-max for softmax
    wrong = np.argmax(P, axis=1) != np.argmax(y, axis=1)
    assert net.classification_error(X, y) == np.mean(wrong)
    # save and load keep the activation
    net.save(tmp_path / "net.npz")
    back = fastbp.load(tmp_path / "net.npz")
    assert back.activation == "relu" and back.output == "softmax"
    assert np.array_equal(back.forward(X), net.forward(X))
    with pytest.raises(ValueError, match=r"predict_proba needs a network with output='logistic'"):
        fastbp.Network([2, 3, 1]).predict_proba(np.zeros((2, 2)))


def test_classification_error_of_a_logistic_output():
    net = fastbp.Network([2, 3, 2], output="logistic", activation="logistic", seed=1)
    X = np.random.default_rng(0).standard_normal((50, 2))
    P = net.predict_proba(X)
    y = (np.random.default_rng(1).uniform(size=(50, 2)) > 0.5).astype(float)
    # a sample is right only when both of its labels are
    want = np.mean(((P > 0.5) != (y > 0.5)).any(axis=1))
    assert net.classification_error(X, y) == want
    one = fastbp.Network([2, 3, 1], output="logistic", seed=1)
    p = one.predict_proba(X)[:, 0]
    assert one.classification_error(X, y[:, 0]) == np.mean((p > 0.5) != (y[:, 0] == 1))


def test_files_without_an_activation_load_as_tanh(tmp_path):
    net = fastbp.Network([3, 4, 2], output="linear", seed=0)
    path = tmp_path / "old.npz"
    arrays = {"fastbp_format": np.array(1, dtype=np.int64), "widths": np.array([3, 4, 2]),
              "output": np.array("linear"), "dtype": np.array("float64")}
    arrays.update({f"weights_{l}": w for l, w in enumerate(net.weights)})
    np.savez(path, **arrays)  # what fastbp 0.1 wrote
    back = fastbp.load(path)
    assert back.activation == "tanh" and back.output == "linear"
    X = np.ones((2, 3))
    assert np.array_equal(back.forward(X), net.forward(X))
    arrays["activation"] = np.array("swish")
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"activation must be one of 'tanh', 'relu', 'logistic', "
                                         r"'identity', got 'swish'"):
        fastbp.load(path)


# ------------------------------------------------------------------------------------------------
# The SGD epoch kernel, and training every pairing

def python_sgd_epoch(weights, X, y, batch, lr, output, activation, sample_weight=None):
    """The steps the kernel documents: w -= lr * gradient(batch) (the batch's weighted mean)."""
    w = [v.copy() for v in weights]
    for start in range(0, len(X), batch):
        sw = None if sample_weight is None else sample_weight[start:start + batch]
        if sw is not None and not sw.any():
            continue  # a batch of zero weights makes no step
        _, g = fastbp.gradient(w, X[start:start + batch], y[start:start + batch], output=output,
                               activation=activation, sample_weight=sw)
        w = [wl - np.asarray(lr, wl.dtype) * gl for wl, gl in zip(w, g)]
    return w


@pytest.mark.parametrize("activation, output", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sgd_epoch_kernel_steps_exactly_as_gradient(activation, output, dtype):
    widths = [4, 7, 3]
    n, batch = 203, 16
    weights, X, y = problem(widths, n, activation, output, dtype=dtype, seed=6)
    # multiples of 1/8: their sums are exact in any order (the kernel adds a batch's weights one
    # by one, NumPy pairwise)
    sw = (np.round(sample_weights(n, seed=6) * 8) / 8).astype(dtype)
    sw[32:48] = 0  # a whole batch of zero weights
    for weight in (None, sw):
        w = [v.copy() for v in weights]
        _api.sgd_epoch(w, widths, X, y, np.arange(n), batch, 0.05, 0.0, None, 0.0, output,
                       activation, weight)
        want = python_sgd_epoch(weights, X, y, batch, 0.05, output, activation, weight)
        assert all(np.array_equal(a, b) for a, b in zip(w, want))


def blobs(n, k, seed=0):
    """k well separated Gaussian classes in 2-D, one-hot targets."""
    rng = np.random.default_rng(seed)
    centres = 3 * np.c_[np.cos(2 * np.pi * np.arange(k) / k), np.sin(2 * np.pi * np.arange(k) / k)]
    labels = rng.integers(0, k, n)
    X = centres[labels] + 0.6 * rng.standard_normal((n, 2))
    return X, np.eye(k)[labels]


def sgd_train(weights, X, y, output, activation, epochs, lr, batch=16, seed=0):
    rng = np.random.default_rng(seed)
    widths = [weights[0].shape[0] - 1] + [w.shape[1] for w in weights]
    for _ in range(epochs):
        _api.sgd_epoch(weights, widths, X, y, rng.permutation(len(X)), batch, lr, 0.0, None, 0.0,
                       output, activation)
    return weights


def test_relu_softmax_classifier_trains():
    X, y = blobs(600, 4)
    net = fastbp.Network([2, 16, 4], output="softmax", activation="relu", seed=0)
    e0 = net.error(X, y)
    sgd_train(net.weights, X, y, "softmax", "relu", epochs=30, lr=0.1)
    assert net.error(X, y) < 0.25 * e0
    assert net.classification_error(X, y) < 0.03   # the classes overlap a little
    Xt, yt = blobs(400, 4, seed=1)
    assert net.classification_error(Xt, yt) < 0.05


def test_logistic_multilabel_trains():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((800, 3))
    # label 0: x0 > 0; label 1: x1 + x2 > 0; label 2: |x0| > 1 (not linearly separable)
    y = np.c_[X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, np.abs(X[:, 0]) > 1].astype(float)
    net = fastbp.Network([3, 12, 3], output="logistic", activation="tanh", seed=1)
    sgd_train(net.weights, X, y, "logistic", "tanh", epochs=60, lr=0.2)
    per_label = ((net.predict_proba(X) > 0.5) != (y > 0.5)).mean(axis=0)
    assert per_label.max() < 0.06
    assert net.classification_error(X, y) < 0.1


def test_relu_regression_trains():
    rng = np.random.default_rng(4)
    X = rng.uniform(-2, 2, (600, 1))
    y = np.abs(X) - 0.5 + 0.3 * np.sin(2 * X)
    net = fastbp.Network([1, 20, 1], output="linear", activation="relu", seed=2)
    e0 = net.error(X, y)
    sgd_train(net.weights, X, y, "linear", "relu", epochs=80, lr=0.02)
    assert net.error(X, y) < 0.02 and net.error(X, y) < 0.05 * e0


def test_random_shapes_match_reference():
    """Random networks (1 to 6 layers, 1 to 12 units, one-unit layers included), pairings,
    batch sizes and sample weights, float64 and float32, against the reference."""
    rng = np.random.default_rng(2026)
    for case in range(60):
        L = int(rng.integers(1, 7))
        widths = [int(d) for d in rng.integers(1, 13, L + 1)]
        activation = ACTIVATIONS[case % 4]
        output = OUTPUTS[(case // 4) % 4]
        if output == "softmax" and widths[-1] < 2:
            widths[-1] = 2
        n = int(rng.integers(1, 200))
        dtype = "float64" if case % 3 else "float32"
        weights, X, y = problem(widths, n, activation, output, dtype=dtype, seed=case)
        while activation == "relu" and dtype == "float32" and relu_margin(weights, X) < 1e-4:
            X = X + np.asarray(0.01, dtype)     # move the batch off a ReLU kink
        sw = sample_weights(n, seed=case).astype(dtype) if case % 2 else None
        kw = dict(output=output, activation=activation, sample_weight=sw)
        e, g = fastbp.gradient(weights, X, y, **kw)
        e_ref, g_ref = reference.gradient([w.astype(float) for w in weights], X.astype(float),
                                          y.astype(float), **kw)
        tol = 1e-12 if dtype == "float64" else 1e-5
        where = (case, widths, activation, output, n, dtype)
        assert abs(e - e_ref) <= tol * abs(e_ref), where
        assert all(rel_err(a, b) < tol for a, b in zip(g, g_ref)), where
