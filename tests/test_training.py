"""fit and its methods, check_gradient, the Network's training companions, save/load."""
import io
import re
import sys
import types
import zipfile

import numpy as np
import pytest

import fastbp
from _helpers import bitwise_equal, copies, multiclass, regression, xor
from fastbp import _methods, _objective, reference, training

METHODS = ["gd", "sgd", "variable-lr", "steepest", "cg"]
# Settings under which each method solves the small problems below in 100 epochs.
SETTINGS = {"gd": dict(learning_rate=0.1), "sgd": dict(learning_rate=0.05, batch_size=4,
                                                        momentum=0.5),
            "variable-lr": {}, "steepest": {}, "cg": {}}


# ------------------------------------------------------------------------------------------------
# Each method solves what it should

@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("problem,max_E_in", [(xor, 0.1), (regression, 0.25), (multiclass, 0.2)],
                         ids=["xor", "regression", "multiclass"])
def test_method_reduces_E_in(method, problem, max_E_in):
    widths, output, X, y = problem()
    net = fastbp.Network(widths, output=output, seed=1)
    history = net.fit(X, y, method=method, epochs=100, **SETTINGS[method])
    assert history.stop_reason in ("epochs", "converged")
    assert history.E_in[-1] < 0.5 * history.start["E_in"]
    assert history.E_in[-1] < max_E_in
    assert net.score(X, y) == pytest.approx(history.E_in[-1], rel=1e-12)
    if output == "tanh":
        assert net.classification_error(X, y) <= 0.05


@pytest.mark.parametrize("method", METHODS)
def test_float32_trains_in_float32(method):
    widths, output, X, y = xor()
    net = fastbp.Network(widths, output=output, dtype="float32", seed=1)
    history = net.fit(X, y, method=method, epochs=60, **SETTINGS[method])
    assert all(w.dtype == np.float32 for w in net.weights)
    assert history.E_in[-1] < 0.5 * history.start["E_in"]


def test_history_records_every_epoch():
    widths, output, X, y = regression()
    Xv, yv = regression(20, seed=1)[2:]
    net = fastbp.Network(widths, output=output, seed=1)
    h = net.fit(X, y, method="sgd", epochs=5, validation_data=(Xv, yv), weight_decay=0.01)
    assert len(h) == 5 and h.epoch == [1, 2, 3, 4, 5]
    for column in (h.E_in, h.E_aug, h.E_val, h.learning_rate, h.accepted, h.time):
        assert len(column) == 5
    assert h.learning_rate == [0.1] * 5 and all(h.accepted)
    assert all(t1 >= t0 for t0, t1 in zip(h.time, h.time[1:]))
    assert set(h.start) == {"E_in", "E_aug", "E_val"}
    assert h.E_val[-1] == net.error(Xv, yv)
    assert h.E_in[-1] == net.error(X, y)
    decay = 0.01 / len(X) * sum(float(np.sum(w ** 2)) for w in net.weights)
    assert h.E_aug[-1] == pytest.approx(h.E_in[-1] + decay, rel=1e-14)
    assert h.stop_reason == "epochs" and h.best_epoch is None
    h = net.fit(X, y, method="gd", epochs=2)
    assert h.E_val == [] and "E_val" not in h.start and h.E_aug == h.E_in


def test_weights_of_any_layout_are_trained_in_place():
    """Fortran-ordered and strided weights, read-only and Fortran-ordered data are accepted."""
    widths, output, X, y = regression()
    w = fastbp.init_weights(widths, seed=1)
    expected = copies(w)
    fastbp.fit(expected, X, y, output=output, method="gd", epochs=3)
    strided = np.zeros((18, 2))[::2, :1]                         # a non-contiguous view
    strided[...] = w[1]
    odd = [np.asfortranarray(w[0]), strided]
    Xf = np.asfortranarray(X)
    Xf.flags.writeable = False
    fastbp.fit(odd, Xf, y, output=output, method="gd", epochs=3)
    assert all(np.array_equal(a, b) for a, b in zip(odd, expected))


def test_fit_continues_from_current_weights():
    widths, output, X, y = regression()
    once = fastbp.init_weights(widths, seed=3)
    twice = copies(once)
    fastbp.fit(once, X, y, output=output, method="gd", epochs=10)
    fastbp.fit(twice, X, y, output=output, method="gd", epochs=4)
    fastbp.fit(twice, X, y, output=output, method="gd", epochs=6)
    assert bitwise_equal(once, twice)


def test_variable_lr_bold_driver():
    """eta grows by alpha after an accepted step and shrinks by beta after a rejected one; E_aug
    never rises; a rejected step costs one error evaluation and no gradient."""
    widths, output, X, y = regression()
    weights = fastbp.init_weights(widths, seed=1)
    calls = {"gradient": 0, "error": 0}
    real_gradient, real_error = fastbp._api.gradient, fastbp._api.error

    def gradient(*a, **k):
        calls["gradient"] += 1
        return real_gradient(*a, **k)

    def error(*a, **k):
        calls["error"] += 1
        return real_error(*a, **k)

    mp = pytest.MonkeyPatch()
    mp.setattr(fastbp._api, "gradient", gradient)
    mp.setattr(fastbp._api, "error", error)
    # the epochs one by one through _api (the kernel's blocks of epochs, which make the same
    # calls inside, are compared with these bit for bit in tests/test_full_batch_epochs.py)
    mp.setattr(fastbp._methods, "KERNEL_EPOCHS", False)
    try:
        h = fastbp.fit(weights, X, y, output=output, method="variable-lr", learning_rate=2.0,
                       epochs=40, lr_increase=1.2, lr_decrease=0.6)
    finally:
        mp.undo()
    assert not all(h.accepted) and any(h.accepted)
    for k in range(len(h) - 1):
        assert h.learning_rate[k + 1] == pytest.approx(
            h.learning_rate[k] * (1.2 if h.accepted[k] else 0.6), rel=1e-15)
    E = [h.start["E_aug"]] + h.E_aug
    for k in range(len(h)):
        assert E[k + 1] < E[k] if h.accepted[k] else E[k + 1] == E[k]
    assert calls["gradient"] == 1 + sum(h.accepted)
    assert calls["error"] == 1 + len(h)


def test_cg_and_steepest_find_least_squares_on_a_quadratic():
    """No hidden layer, linear output: E_in is quadratic in the weights. The line search is then
    exact, and CG reaches the least-squares solution in about as many steps as there are weights."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((50, 3))
    y = X @ [0.5, -1.0, 2.0] + 0.3 + 0.1 * rng.standard_normal(50)
    A = np.hstack([np.ones((50, 1)), X])
    w_star = np.linalg.lstsq(A, y, rcond=None)[0]
    weights = fastbp.init_weights([3, 1], seed=0)
    h = fastbp.fit(weights, X, y, output="linear", method="cg", epochs=8)
    np.testing.assert_allclose(weights[0][:, 0], w_star, rtol=1e-6)
    assert len(h) <= 8
    weights = fastbp.init_weights([3, 1], seed=0)
    h = fastbp.fit(weights, X, y, output="linear", method="steepest", epochs=200, tol=1e-14)
    np.testing.assert_allclose(weights[0][:, 0], w_star, rtol=1e-4)


def test_line_search_brackets_and_refines():
    for target in (1e-3, 0.37, 50.0):            # found from below (halving) and above (doubling)
        phi = lambda t: (t - target) ** 2 + 1  # noqa: E731, B023 (used within this iteration)
        eta, E = _methods.line_search(phi, phi(0.0), 1.0, 20)
        assert eta == pytest.approx(target, rel=1e-6) and E == pytest.approx(1.0)
    # A non-quadratic: the bisection safeguard still converges.
    eta, _ = _methods.line_search(lambda t: abs(t - 0.3) ** 1.5, 0.3 ** 1.5, 1.0, 40)
    assert eta == pytest.approx(0.3, abs=1e-4)
    assert _methods.line_search(lambda t: 1.0 + t, 1.0, 1.0, 20) == (0.0, 1.0)  # no descent


# ------------------------------------------------------------------------------------------------
# SGD is exactly the lecture's update rule

def test_per_sample_sgd_matches_the_lecture_loop_exactly():
    """batch_size=1: for each n in a fresh seeded permutation, w <- w - eta grad e_n(w)."""
    widths, output, X, y = regression(12)
    w0 = fastbp.init_weights(widths, seed=2)
    weights = copies(w0)
    fastbp.fit(weights, X, y, output=output, method="sgd", batch_size=1, learning_rate=0.05,
               epochs=3, seed=7)

    rng = np.random.default_rng(7)
    w = copies(w0)
    w_ref = copies(w0)
    for _epoch in range(3):
        for n in rng.permutation(len(X)):
            _, g = fastbp.gradient(w, X[n:n + 1], y[n:n + 1], output=output)
            w = [wl - 0.05 * gl for wl, gl in zip(w, g)]
            xs, deltas = reference.backprop(w_ref, X[n], y[n], output=output)
            w_ref = [wl - 0.05 * np.outer(xs[l], deltas[l]) for l, wl in enumerate(w_ref)]
    assert bitwise_equal(weights, w)
    for a, b in zip(weights, w_ref):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


def test_minibatch_sgd_with_momentum_and_decay_matches_its_formula_exactly():
    """Per step: g = mean gradient over the batch + 2 lambda/N w; v = mu v - eta g; w = w + v.
    N = 10 and batch 4: the last batch of each epoch holds the 2 samples left."""
    widths, output, X, y = regression(10)
    lam, mu, eta = 0.3, 0.7, 0.05
    w0 = fastbp.init_weights(widths, seed=2)
    weights = copies(w0)
    fastbp.fit(weights, X, y, output=output, method="sgd", batch_size=4, learning_rate=eta,
               momentum=mu, weight_decay=lam, epochs=2, shuffle=False)
    w = copies(w0)
    v = [np.zeros_like(a) for a in w]
    for _epoch in range(2):
        for start in (0, 4, 8):
            b = slice(start, start + 4)
            _, g = fastbp.gradient(w, X[b], y[b], output=output)
            g = [gl + (2 * lam / 10) * wl for gl, wl in zip(g, w)]
            v = [mu * vl - eta * gl for vl, gl in zip(v, g)]
            w = [wl + vl for wl, vl in zip(w, v)]
    assert bitwise_equal(weights, w)


def test_gd_is_full_batch_sgd():
    widths, output, X, y = regression(10)
    a = fastbp.init_weights(widths, seed=2)
    b = copies(a)
    fastbp.fit(a, X, y, output=output, method="gd", epochs=3, momentum=0.5)
    fastbp.fit(b, X, y, output=output, method="sgd", batch_size=10, shuffle=False, epochs=3,
               momentum=0.5)
    assert bitwise_equal(a, b)
    c = fastbp.init_weights(widths, seed=2)                  # a batch larger than N: the whole set
    fastbp.fit(c, X, y, output=output, method="sgd", batch_size=1000, shuffle=False, epochs=3,
               momentum=0.5)
    assert bitwise_equal(a, c)


# ------------------------------------------------------------------------------------------------
# Weight decay and check_gradient

@pytest.mark.parametrize("output", ["tanh", "linear"])
@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_check_gradient_with_weight_decay(output, lam):
    rng = np.random.default_rng(0)
    weights = fastbp.init_weights([3, 4, 2], seed=5)
    X = rng.standard_normal((7, 3))
    y = rng.uniform(-0.9, 0.9, (7, 2))
    assert fastbp.check_gradient(weights, X, y, output=output, weight_decay=lam) < 1e-6
    w32 = [w.astype(np.float32) for w in weights]
    assert fastbp.check_gradient(w32, X, y, output=output, weight_decay=lam, eps=1e-4) < 1e-2


def test_weight_decay_matches_its_formula():
    """grad E_aug = grad E_in + (2 lambda / N) w on every weight, bias rows included, and the
    finite differences of E_in + (lambda/N) sum w^2 agree with it."""
    rng = np.random.default_rng(1)
    weights = fastbp.init_weights([2, 3, 1], seed=5)
    X, y = rng.standard_normal((5, 2)), rng.uniform(-0.9, 0.9, 5)
    obj = _objective.DataObjective([2, 3, 1], np.dtype(np.float64), X, y.reshape(-1, 1), "tanh", 1,
                                   0.4)
    w = obj.flat(weights)
    g = np.empty_like(w)
    E_in, E_aug = obj.gradient(w, g)
    E_in0, g0 = fastbp.gradient(weights, X, y)
    assert E_in == E_in0
    assert E_aug == pytest.approx(E_in + 0.4 / 5 * float(w @ w), rel=1e-15)
    np.testing.assert_allclose(g, obj.flat(g0) + 2 * 0.4 / 5 * w, rtol=1e-15)
    assert fastbp.check_gradient(weights, X, y, weight_decay=0.4) < 1e-6


def test_weight_decay_shrinks_the_weights():
    widths, output, X, y = regression()
    plain = fastbp.init_weights(widths, seed=1)
    decayed = copies(plain)
    fastbp.fit(plain, X, y, output=output, method="cg", epochs=30)
    h = fastbp.fit(decayed, X, y, output=output, method="cg", epochs=30, weight_decay=2.0)
    norm = lambda ws: sum(float(np.sum(w ** 2)) for w in ws)  # noqa: E731
    assert norm(decayed) < 0.5 * norm(plain)
    assert h.E_aug[-1] == pytest.approx(h.E_in[-1] + 2.0 / len(X) * norm(decayed), rel=1e-12)


def test_check_gradient_catches_a_wrong_gradient(monkeypatch):
    rng = np.random.default_rng(0)
    weights = fastbp.init_weights([2, 3, 1], seed=5)
    X, y = rng.standard_normal((6, 2)), rng.uniform(-0.9, 0.9, 6)
    real = fastbp._api.gradient

    def off_by_ten_percent(*a, **k):
        E, grads = real(*a, **k)
        for g in grads:
            g *= 1.1
        return E, grads
    monkeypatch.setattr(fastbp._api, "gradient", off_by_ten_percent)
    assert fastbp.check_gradient(weights, X, y) > 0.05


# ------------------------------------------------------------------------------------------------
# Validation, early stopping, stopping rules

def test_early_stopping_restores_the_best_weights():
    """Validation targets are half the training targets: E_val falls while the outputs approach
    y/2, then rises as they go on to y, so the best epoch is in the middle."""
    widths, output, X, y = regression()
    weights = fastbp.init_weights(widths, seed=1)
    seen = {}
    h = fastbp.fit(weights, X, y, output=output, method="cg", epochs=200,
                   validation_data=(X, y / 2), early_stopping=True, patience=5,
                   callback=lambda hist: seen.update({hist.epoch[-1]: copies(weights)}))
    assert h.stop_reason == "early_stopping"
    assert 1 <= h.best_epoch < len(h) == h.best_epoch + 5
    assert h.E_val[h.best_epoch - 1] == min(h.E_val) < h.start["E_val"]
    assert bitwise_equal(weights, seen[h.best_epoch])
    assert fastbp.error(weights, X, y / 2, output=output) == min(h.E_val)


def test_early_stopping_can_restore_the_starting_weights():
    widths, output, X, y = regression()
    weights = fastbp.init_weights(widths, seed=1)
    w0 = copies(weights)
    h = fastbp.fit(weights, X, y, output=output, method="gd", epochs=50,
                   validation_data=(X, -3 * y), early_stopping=True, patience=3)
    assert h.stop_reason == "early_stopping" and h.best_epoch == 0 and len(h) == 3
    assert bitwise_equal(weights, w0)


def test_validation_fraction_is_seeded():
    widths, output, X, y = regression(30)
    runs = []
    for seed in (0, 0, 1):
        weights = fastbp.init_weights(widths, seed=1)
        h = fastbp.fit(weights, X, y, output=output, method="gd", epochs=3,
                       validation_fraction=0.2, seed=seed)
        runs.append((h.start["E_val"], h.E_val, weights))
    assert runs[0][0] == runs[1][0] and runs[0][1] == runs[1][1]
    assert bitwise_equal(runs[0][2], runs[1][2])
    assert runs[0][0] != runs[2][0]
    # The 6 held-out samples are not trained on: the same weights trained on the other 24 agree.
    rng = np.random.default_rng(0)
    perm = rng.permutation(30)
    train = np.sort(perm[6:])
    weights = fastbp.init_weights(widths, seed=1)
    fastbp.fit(weights, X[train], y[train], output=output, method="gd", epochs=3)
    assert bitwise_equal(weights, runs[0][2])


def test_tol_stops_on_a_small_relative_change():
    widths, output, X, y = regression()
    weights = fastbp.init_weights(widths, seed=1)
    h = fastbp.fit(weights, X, y, output=output, method="gd", epochs=5000, tol=1e-3)
    assert h.stop_reason == "tol" and len(h) < 5000
    E = [h.start["E_aug"]] + h.E_aug
    assert abs(E[-2] - E[-1]) <= 1e-3 * E[-2]
    assert all(abs(a - b) > 1e-3 * a for a, b in zip(E[:-2], E[1:-1]))


def test_callback_returning_false_stops():
    widths, output, X, y = xor()
    net = fastbp.Network(widths, seed=1)
    h = net.fit(X, y, method="gd", epochs=50, callback=lambda hist: len(hist) < 4)
    assert h.stop_reason == "callback" and len(h) == 4
    h = net.fit(X, y, method="gd", epochs=5, callback=lambda hist: None)   # None goes on
    assert h.stop_reason == "epochs" and len(h) == 5


def test_divergence_keeps_the_last_finite_weights():
    widths, output, X, y = regression()
    X = X * 1e3
    weights = fastbp.init_weights(widths, seed=1)
    seen = []
    with pytest.warns(RuntimeWarning, match="infinite or NaN"):
        h = fastbp.fit(weights, X, y, output=output, method="gd", learning_rate=1e6, epochs=100,
                       callback=lambda hist: seen.append(copies(weights)))
    assert h.stop_reason == "diverged"
    assert all(np.isfinite(w).all() for w in weights)
    assert len(h) == len(seen) and (not seen or bitwise_equal(weights, seen[-1]))


# ------------------------------------------------------------------------------------------------
# Ctrl-C

def test_ctrl_c_in_callback_keeps_the_completed_epoch():
    widths, output, X, y = xor()
    weights = fastbp.init_weights(widths, seed=1)
    seen = []

    def callback(hist):
        seen.append(copies(weights))
        if len(hist) == 3:
            raise KeyboardInterrupt
    h = fastbp.fit(weights, X, y, method="sgd", batch_size=1, epochs=10, callback=callback)
    assert h.interrupted and h.stop_reason == "interrupted" and len(h) == 3
    assert bitwise_equal(weights, seen[2])


@pytest.mark.parametrize("method", list(_methods.REGISTRY))
def test_ctrl_c_mid_epoch_rolls_back_to_the_last_epoch(method, monkeypatch):
    if method == "lbfgs":
        pytest.importorskip("scipy")
    widths, output, X, y = regression(8)
    weights = fastbp.init_weights(widths, seed=1)
    seen = []
    # sgd and adam run a whole epoch in one kernel call: Ctrl-C during it surfaces as the call
    # returns, with the weights of the working copy already moved; the other methods are stopped
    # between the gradient evaluations of an epoch
    mini_batch = method in ("sgd", "adam")
    name = "sgd_epoch" if mini_batch else "gradient"
    real = getattr(fastbp._api, name)
    count = [0]

    def interrupted(*a, **k):
        count[0] += 1
        result = real(*a, **k)
        if count[0] == (4 if mini_batch else 2 + 3):
            raise KeyboardInterrupt             # during the 4th epoch
        return result
    monkeypatch.setattr(fastbp._api, name, interrupted)
    # gd, variable-lr and rprop epoch by epoch through _api.gradient (Ctrl-C during their kernel
    # blocks: tests/test_full_batch_epochs.py)
    monkeypatch.setattr(_methods, "KERNEL_EPOCHS", False)
    extra = dict(batch_size=1) if mini_batch else {}
    if method not in ("rprop", "lbfgs"):
        extra["learning_rate"] = 0.01
    h = fastbp.fit(weights, X, y, output=output, method=method, epochs=20,
                   callback=lambda hist: seen.append(copies(weights)), **extra)
    assert h.interrupted
    assert 1 <= len(h) == len(seen) <= 4
    assert bitwise_equal(weights, seen[-1])
    assert fastbp.error(weights, X, y, output=output) == pytest.approx(h.E_in[-1], rel=1e-12)


def test_ctrl_c_during_the_commit_is_held_back():
    runs = []

    def block():
        runs.append(1)
        if len(runs) == 1:
            raise KeyboardInterrupt
    assert training._uninterrupted(block) is True and len(runs) == 2
    assert training._uninterrupted(lambda: None) is False


# ------------------------------------------------------------------------------------------------
# Reproducibility

@pytest.mark.parametrize("method", METHODS)
def test_same_seed_data_threads_give_bitwise_same_weights(method):
    widths, output, X, y = regression()
    results = []
    for threads in (1, 1, 2):
        weights = fastbp.init_weights(widths, seed=1)
        h = fastbp.fit(weights, X, y, output=output, method=method, epochs=15, seed=11,
                       num_threads=threads, validation_fraction=0.25, **SETTINGS[method])
        results.append((weights, h.E_in))
    assert bitwise_equal(results[0][0], results[1][0]) and results[0][1] == results[1][1]
    assert bitwise_equal(results[0][0], results[2][0])   # the kernel is thread-invariant too


def test_sgd_seed_changes_the_order():
    widths, output, X, y = regression()
    a, b = fastbp.init_weights(widths, seed=1), fastbp.init_weights(widths, seed=1)
    fastbp.fit(a, X, y, output=output, method="sgd", epochs=2, seed=1)
    fastbp.fit(b, X, y, output=output, method="sgd", epochs=2, seed=2)
    assert not bitwise_equal(a, b)
    c = fastbp.init_weights(widths, seed=1)
    fastbp.fit(c, X, y, output=output, method="sgd", epochs=2, seed=np.random.default_rng(1))
    assert bitwise_equal(a, c)


# ------------------------------------------------------------------------------------------------
# progress=True and its optional dependency

def test_progress_uses_tqdm(monkeypatch):
    bars = []

    class FakeBar:
        def __init__(self, total=None, **kw):
            self.total, self.updates, self.postfix, self.closed = total, 0, None, False
            bars.append(self)

        def update(self, n):
            self.updates += n

        def set_postfix(self, post, refresh=True):
            self.postfix = post

        def close(self):
            self.closed = True
    monkeypatch.setitem(sys.modules, "tqdm.auto", types.SimpleNamespace(tqdm=FakeBar))
    widths, output, X, y = regression()
    fastbp.fit(fastbp.init_weights(widths, seed=1), X, y, output=output, method="gd", epochs=7,
               progress=True, validation_fraction=0.2)
    (bar,) = bars
    assert bar.total == 7 and bar.updates == 7 and bar.closed
    assert set(bar.postfix) == {"E_in", "E_val"}


def test_progress_without_tqdm_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    widths, output, X, y = xor()
    weights = fastbp.init_weights(widths, seed=1)
    before = copies(weights)
    with pytest.raises(ImportError, match="tqdm.*pip install tqdm"):
        fastbp.fit(weights, X, y, progress=True)
    assert bitwise_equal(weights, before)


def test_progress_bar_is_tqdm_auto():
    """tqdm.auto: a notebook gets tqdm's widget, a terminal its text bar."""
    auto = pytest.importorskip("tqdm.auto")
    assert fastbp.training._import_tqdm() is auto.tqdm


def test_progress_with_the_real_tqdm(capsys):
    pytest.importorskip("tqdm")
    widths, output, X, y = xor()
    fastbp.fit(fastbp.init_weights(widths, seed=1), X, y, method="gd", epochs=3, progress=True)
    assert "3/3" in capsys.readouterr().err


def test_silent_by_default(capsys):
    widths, output, X, y = xor()
    fastbp.fit(fastbp.init_weights(widths, seed=1), X, y, method="gd", epochs=3)
    assert capsys.readouterr() == ("", "")


# ------------------------------------------------------------------------------------------------
# Network: predict, score, classification_error

def test_predict_score_classification_error():
    net = fastbp.Network([2, 3, 1], seed=0)
    X = np.array([[0.0, 1.0], [1.0, -1.0], [-2.0, 0.5], [0.3, 0.3]])
    out = net.predict(X)
    assert np.array_equal(out, net.forward(X))
    y = np.where(out[:, 0] > 0, 1.0, -1.0)
    assert net.classification_error(X, y) == 0.0
    y[[0, 2]] *= -1
    assert net.classification_error(X, y) == 0.5
    assert net.score(X, y) == net.error(X, y)
    with pytest.raises(ValueError, match=r"y\[1\] = 0"):
        net.classification_error(X, [1, 0, 1, -1])

    net = fastbp.Network([2, 4, 3], seed=0)
    out = net.predict(X)
    Y = -np.ones((4, 3))
    Y[np.arange(4), np.argmax(out, axis=1)] = 1
    assert net.classification_error(X, Y) == 0.0
    Y = np.roll(Y, 1, axis=1)
    assert net.classification_error(X, Y) == 1.0


# ------------------------------------------------------------------------------------------------
# save / load

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("output", ["tanh", "linear"])
def test_save_load_round_trip_bitwise(tmp_path, dtype, output):
    widths, _, X, y = multiclass()
    net = fastbp.Network([2, 5, 4, 3], output=output, dtype=dtype, seed=3)
    net.fit(X, y, method="gd", epochs=3)
    path = tmp_path / "model.npz"
    net.save(path)
    back = fastbp.load(path)
    assert back.widths == net.widths and back.output == output and back.dtype == np.dtype(dtype)
    assert bitwise_equal(back.weights, net.weights)
    assert np.array_equal(back.predict(X), net.predict(X))
    buffer = io.BytesIO()
    net.save(buffer)
    buffer.seek(0)
    assert bitwise_equal(fastbp.load(buffer).weights, net.weights)
    net.save(str(tmp_path / "no_suffix"))                  # written where it is told to be
    assert bitwise_equal(fastbp.load(str(tmp_path / "no_suffix")).weights, net.weights)


def write_npz(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def good_arrays():
    net = fastbp.Network([2, 3, 1], seed=0)
    return {"fastbp_format": np.array(1), "widths": np.array([2, 3, 1]), "output": np.array("tanh"),
            "dtype": np.array("float64"), "weights_0": net.weights[0], "weights_1": net.weights[1]}


def changed(**kw):
    arrays = good_arrays()
    for k, v in kw.items():
        if v is None:
            del arrays[k]
        else:
            arrays[k] = v
    return arrays


@pytest.mark.parametrize("arrays,pattern", [
    (changed(weights_1=None), r"widths must be an integer array of 2 layer widths"),
    (changed(dtype=None), r"missing dtype"),
    (changed(extra=np.zeros(2)), r"unexpected arrays \['extra'\]"),
    (changed(weights_1=np.zeros((3, 1))), r"weights_1 has shape \(3, 1\) but widths \[2, 3, 1\] "
                                          r"need \(4, 1\)"),
    (changed(weights_0=np.zeros((3, 3), dtype=np.float32)), r"weights_0 has dtype float32 but "
                                                           r"the file's dtype is float64"),
    (changed(weights_1=np.full((4, 1), np.nan)), r"weights\[1\] must be finite"),
    (changed(output=np.array("relu")),
     r"output must be one of 'tanh', 'linear', 'logistic', 'softmax', 'poisson', got 'relu'"),
    (changed(fastbp_format=np.array(7)), r"fastbp_format is 7"),
    (changed(widths=np.array([2, 0, 1])), r"widths\[1\] = d\(1\) must be at least 1"),
    (changed(widths=np.array([2.0, 3.0, 1.0])), r"widths must be an integer array"),
    (changed(widths=np.array([2, 3, 1], dtype=object)), r"widths must be an integer array"),
    (changed(output=np.array(["tanh"], dtype=object)), r"output must be a string scalar"),
    (changed(weights_0=None, widths=np.array([3, 1])), r"missing weights_0"),
], ids=["missing-layer", "missing-key", "extra-key", "shape", "dtype", "nan", "output",
        "format", "zero-width", "float-widths", "pickled-widths", "pickled-output", "gap"])
def test_load_refuses_malformed_files(tmp_path, arrays, pattern):
    path = write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match="cannot load a fastbp model from .*" + pattern):
        fastbp.load(path)


def test_load_refuses_what_is_not_an_npz(tmp_path):
    (tmp_path / "text.npz").write_text("not a model")
    with pytest.raises(ValueError, match="cannot load a fastbp model"):
        fastbp.load(tmp_path / "text.npz")
    np.save(tmp_path / "array.npy", np.zeros(3))
    with pytest.raises(ValueError, match="single array, not an .npz archive"):
        fastbp.load(tmp_path / "array.npy")
    np.save(tmp_path / "pickle.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="cannot load a fastbp model"):
        fastbp.load(tmp_path / "pickle.npy")
    good = write_npz(tmp_path / "good.npz", **good_arrays())
    data = good.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cannot load a fastbp model"):
        fastbp.load(tmp_path / "cut.npz")
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(ValueError, match="cannot load a fastbp model"):
        fastbp.load(tmp_path / "empty.npz")
    with pytest.raises(FileNotFoundError):
        fastbp.load(tmp_path / "missing.npz")


def test_load_checks_headers_before_reading(tmp_path):
    """A member whose header promises a huge array is refused from its header, unread."""
    huge = np.lib.format.header_data_from_array_1_0(np.zeros((1, 1)))
    huge["shape"] = (10 ** 6 + 1, 10 ** 6)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, huge)
    path = write_npz(tmp_path / "huge.npz", **changed(widths=np.array([10 ** 6, 10 ** 6]),
                                                       weights_0=None, weights_1=None))
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("weights_0.npy", header.getvalue() + b"\0" * 64)
    with pytest.raises(ValueError, match="weights_0 is truncated"):
        fastbp.load(path)


def test_save_does_not_clobber_on_failure(tmp_path):
    net = fastbp.Network([2, 3, 1], seed=0)
    path = tmp_path / "model.npz"
    net.save(path)
    before = path.read_bytes()
    net.weights = "broken"
    with pytest.raises(TypeError):
        net.save(path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["model.npz"]


# ------------------------------------------------------------------------------------------------
# Bad input: a clear exception, naming the argument, before any weight changes

def bad_fit(exc, pattern, weights=None, X=None, y=None, **kw):
    widths, output, X0, y0 = regression(10)
    weights = fastbp.init_weights(widths, seed=1) if weights is None else weights
    X = X0 if X is None else X
    y = y0 if y is None else y
    before = [copies(weights) if isinstance(weights, list) else weights, np.array(X, copy=True),
              np.array(y, copy=True)]
    kw.setdefault("output", output)
    with pytest.raises(exc, match=pattern):
        fastbp.fit(weights, X, y, **kw)
    if isinstance(weights, list) and all(isinstance(w, np.ndarray) for w in weights):
        assert bitwise_equal(weights, before[0])
    for a, b in ((X, before[1]), (y, before[2])):
        a = np.asarray(a)
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


@pytest.mark.parametrize("exc,pattern,kw", [
    (ValueError, r"method must be one of 'gd', 'sgd', 'variable-lr', 'steepest', 'cg', 'adam', "
                 r"'rprop', 'lbfgs', got 'newton'", dict(method="newton")),
    (ValueError, r"learning_rate must be > 0, got 0", dict(learning_rate=0)),
    (ValueError, r"learning_rate must be > 0, got -0.1", dict(learning_rate=-0.1)),
    (ValueError, r"learning_rate must be finite, got nan", dict(learning_rate=float("nan"))),
    (TypeError, r"learning_rate must be a real number, got '0.1'", dict(learning_rate="0.1")),
    (ValueError, r"batch_size must be at least 1, got 0", dict(batch_size=0)),
    (TypeError, r"batch_size must be an integer, got 2.5", dict(batch_size=2.5)),
    (TypeError, r"batch_size must be an integer, got True", dict(batch_size=True)),
    (ValueError, r"epochs must be at least 1, got 0", dict(epochs=0)),
    (ValueError, r"momentum must be < 1, got 1", dict(momentum=1)),
    (ValueError, r"momentum must be >= 0, got -0.5", dict(momentum=-0.5)),
    (ValueError, r"method 'cg' does not take the option momentum; its own options are "
                 r"learning_rate, line_search_steps, warm_start", dict(momentum=0.9, method="cg")),
    (ValueError, r"weight_decay must be >= 0, got -1", dict(weight_decay=-1)),
    (ValueError, r"validation_data\[0\] must have shape \(N, 1\) for d\(0\) = 1, got shape "
                 r"\(3, 2\)", dict(validation_data=(np.zeros((3, 2)), np.zeros(3)))),
    (ValueError, r"validation_data\[1\] has 2 rows but validation_data\[0\] has 3 samples",
     dict(validation_data=(np.zeros((3, 1)), np.zeros(2)))),
    (TypeError, r"validation_data must be a pair \(X_val, y_val\), got tuple of length 3",
     dict(validation_data=(1, 2, 3))),
    (ValueError, r"validation_data\[0\] must be finite",
     dict(validation_data=(np.full((3, 1), np.inf), np.zeros(3)))),
    (ValueError, r"give validation_data or validation_fraction, not both",
     dict(validation_data=(np.zeros((3, 1)), np.zeros(3)), validation_fraction=0.2)),
    (ValueError, r"validation_fraction must be < 1, got 1.0", dict(validation_fraction=1.0)),
    (ValueError, r"validation_fraction=0.99 of N = 10 samples leaves no training sample",
     dict(validation_fraction=0.99)),
    (ValueError, r"early_stopping=True needs a validation set", dict(early_stopping=True)),
    (ValueError, r"patience must be at least 1, got 0",
     dict(patience=0, early_stopping=True, validation_fraction=0.2)),
    (ValueError, r"tol must be >= 0, got -1e-05", dict(tol=-1e-5)),
    (TypeError, r"callback must be callable or None, got int", dict(callback=3)),
    (TypeError, r"progress must be True or False, got 'yes'", dict(progress="yes")),
    (TypeError, r"shuffle must be True or False, got 1", dict(shuffle=1)),
    (ValueError, r"num_threads must be a positive or negative integer or None, got 0",
     dict(num_threads=0)),
    (ValueError, r"seed must be a non-negative integer, got -1", dict(seed=-1)),
    (TypeError, r"seed must be a non-negative integer, a numpy Generator or None, got 'a'",
     dict(seed="a")),
    (ValueError, r"lr_increase must be > 1, got 0.9",
     dict(lr_increase=0.9, method="variable-lr")),
    (ValueError, r"lr_decrease must be < 1, got 1.0",
     dict(lr_decrease=1.0, method="variable-lr")),
    (ValueError, r"line_search_steps must be at least 0, got -1",
     dict(line_search_steps=-1, method="cg")),
    (ValueError, r"output must be one of 'tanh', 'linear', 'logistic', 'softmax', 'poisson', "
                 r"got 'relu'",
     dict(output="relu")),
    (ValueError, r"X must have shape \(N, 1\) for d\(0\) = 1, got shape \(10, 2\)",
     dict(X=np.zeros((10, 2)))),
    (ValueError, r"y has 9 rows but X has 10 samples", dict(y=np.zeros(9))),
    (ValueError, r"y must be finite, but y\[4, 0\] = nan",
     dict(y=np.where(np.arange(10) == 4, np.nan, 0.0))),
    (TypeError, r"X must hold real numbers \(integer or float\), got dtype <U1",
     dict(X=np.array([["a"]] * 10))),
])
def test_bad_fit_arguments(exc, pattern, kw):
    bad_fit(exc, pattern, **kw)


def test_bad_weights():
    widths, output, X, y = regression(10)
    w = fastbp.init_weights(widths, seed=1)
    bad_fit(TypeError, r"weights\[0\] must be a numpy array of float32 or float64, got list",
            weights=[w[0].tolist(), w[1]])
    bad_fit(TypeError, r"weights\[1\] must be a numpy array of float32 or float64, got dtype "
                       r"int64", weights=[w[0], np.ones((9, 1), dtype=np.int64)])
    ro = copies(w)
    ro[1].flags.writeable = False
    bad_fit(ValueError, r"weights\[1\] is read-only", weights=ro)
    shared = np.ones((5, 5))
    bad_fit(ValueError, r"weights\[1\] and weights\[0\] share memory",
            weights=[shared[:2, :4], shared[:, :1]])
    bad_fit(ValueError, r"weights\[1\] has shape \(3, 1\) but layer 2 needs \(9, 1\) for "
                        r"d\(1\) = 8", weights=[w[0], np.zeros((3, 1))])
    bad_fit(TypeError, r"weights must be a list of 2-D arrays", weights=w[0])


def test_zero_or_symmetric_weights_are_refused():
    widths, output, X, y = regression(10)
    zero = [np.zeros((2, 8)), np.zeros((9, 1))]
    bad_fit(ValueError, r"weights\[0\] and weights\[1\]\[1:\] are all zero: every unit of hidden "
                        r"layer 1 would output 0 .* stay identical", weights=zero)
    same = [np.full((2, 8), 0.3), np.full((9, 1), -0.2)]
    bad_fit(ValueError, r"the 8 units of hidden layer 1 are identical", weights=same)
    net = fastbp.Network([2, 4, 4, 1], weights=fastbp.init_weights([2, 4, 4, 1], seed=0))
    net.weights[1][:] = 0.5
    net.weights[2][:] = 0.5
    with pytest.raises(ValueError, match="the 4 units of hidden layer 2 are identical"):
        net.fit(np.zeros((3, 2)), np.zeros(3))
    # Zero weights that gradient descent can still break away from are fine: the output layer.
    w = fastbp.init_weights(widths, seed=1)
    w[1][:] = 0
    fastbp.fit(w, X, y, output=output, method="gd", epochs=2)
    assert w[1].any()


def test_bad_check_gradient_arguments():
    w = fastbp.init_weights([2, 3, 1], seed=0)
    X, y = np.zeros((4, 2)), np.zeros(4)
    with pytest.raises(ValueError, match=r"eps must be > 0, got 0"):
        fastbp.check_gradient(w, X, y, eps=0)
    with pytest.raises(ValueError, match=r"y must have shape \(4, 1\) or \(4,\)"):
        fastbp.check_gradient(w, X, np.zeros((4, 2)))


def test_bad_fit_arguments_through_network():
    net = fastbp.Network([1, 3, 1], seed=0)
    before = copies(net.weights)
    with pytest.raises(ValueError, match=r"method must be one of"):
        net.fit(np.zeros((3, 1)), np.zeros(3), method="newton")
    assert bitwise_equal(net.weights, before)
    with pytest.raises(TypeError, match=re.escape("fit() got an unexpected keyword argument")):
        net.fit(np.zeros((3, 1)), np.zeros(3), output="linear")


def test_sgd_batches_larger_than_a_chunk_match_their_formula_exactly():
    """A mini-batch larger than the kernels' chunk is summed chunk by chunk in float64, exactly as
    fastbp.gradient sums it."""
    from fastbp import _api
    widths = [3, 6, 2]
    chunk = _api._plan(widths, 10**6, 1, 8)[2]
    n, batch = 2 * chunk + 2 * 37, chunk + 37
    rng = np.random.default_rng(5)
    X = rng.standard_normal((n, 3))
    y = np.tanh(X[:, :2] * 0.7)
    w0 = fastbp.init_weights(widths, seed=4)
    weights = copies(w0)
    fastbp.fit(weights, X, y, method="sgd", batch_size=batch, learning_rate=0.1, epochs=2,
               shuffle=False)
    w = copies(w0)
    for _epoch in range(2):
        for start in range(0, n, batch):
            _, g = fastbp.gradient(w, X[start:start + batch], y[start:start + batch])
            w = [wl - 0.1 * gl for wl, gl in zip(w, g)]
    assert bitwise_equal(weights, w)
