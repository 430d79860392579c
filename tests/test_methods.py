"""The optimisers added to the lecture's five (adam, sgd with nesterov, rprop, lbfgs) and the method
protocol they share: each against a plain NumPy loop of its formulas, on the problems of
test_training.py, reproducible, refusing bad options."""
import ast
import math
import pathlib
import sys

import numpy as np
import pytest

import fastbp
from _helpers import bitwise_equal, copies, multiclass, regression, xor
from fastbp import _methods
from fastbp._objective import DataObjective

NEW = ["adam", "nesterov", "rprop", "lbfgs"]
SETTINGS = {"adam": dict(method="adam", learning_rate=0.05, batch_size=4),
            "nesterov": dict(method="sgd", learning_rate=0.05, batch_size=4, momentum=0.5,
                             nesterov=True),
            "rprop": dict(method="rprop"),
            "lbfgs": dict(method="lbfgs")}


def lbfgs_or_skip(name):
    if name == "lbfgs":
        pytest.importorskip("scipy")


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("problem,max_E_in", [(xor, 0.1), (regression, 0.25), (multiclass, 0.2)],
                         ids=["xor", "regression", "multiclass"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_new_method_reduces_E_in(name, problem, max_E_in, dtype):
    lbfgs_or_skip(name)
    widths, output, X, y = problem()
    net = fastbp.Network(widths, output=output, dtype=dtype, seed=1)
    history = net.fit(X, y, epochs=100, **SETTINGS[name])
    assert all(w.dtype == np.dtype(dtype) for w in net.weights)
    assert history.stop_reason in ("epochs", "converged")
    assert history.E_in[-1] < 0.5 * history.start["E_in"]
    assert history.E_in[-1] < max_E_in
    assert net.score(X, y) == pytest.approx(history.E_in[-1], rel=1e-5 if dtype == "float32"
                                            else 1e-12)


# ------------------------------------------------------------------------------------------------
# Each update rule is its formula, exactly

@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_adam_steps_match_their_formula_exactly(dtype):
    """Per step t (counted across epochs): g = mean gradient + 2 lambda/N w; m = b1 m + (1-b1) g;
    s = b2 s + (1-b2) g^2; lr_t = eta sqrt(1-b2^t)/(1-b1^t); w = w - lr_t m / (sqrt(s) + eps).
    N = 10, batch 4: the last batch of each epoch holds 2 samples."""
    widths, output, X, y = regression(10)
    X, y = X.astype(dtype), y.astype(dtype)
    lam, eta, b1, b2, eps = 0.3, 0.01, 0.8, 0.99, 1e-7
    w0 = fastbp.init_weights(widths, seed=2, dtype=dtype)
    weights = copies(w0)
    fastbp.fit(weights, X, y, output=output, method="adam", batch_size=4, learning_rate=eta,
               beta1=b1, beta2=b2, eps=eps, weight_decay=lam, epochs=3, shuffle=False)
    w = copies(w0)
    m = [np.zeros_like(a) for a in w]
    s = [np.zeros_like(a) for a in w]
    t = 0
    for _epoch in range(3):
        for start in (0, 4, 8):
            b = slice(start, start + 4)
            _, g = fastbp.gradient(w, X[b], y[b], output=output)
            g = [gl + (2 * lam / 10) * wl for gl, wl in zip(g, w)]
            t += 1
            lr_t = eta * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)      # a Python float
            m = [b1 * ml + (1 - b1) * gl for ml, gl in zip(m, g)]
            s = [b2 * sl + (1 - b2) * (gl * gl) for sl, gl in zip(s, g)]
            w = [wl - lr_t * ml / (np.sqrt(sl) + eps) for wl, ml, sl in zip(w, m, s)]
    assert all(a.dtype == np.dtype(dtype) for a in w)
    assert bitwise_equal(weights, w)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_nesterov_steps_match_their_formula_exactly(dtype):
    """scikit-learn's form: v = mu v - eta g; w = w + (mu v - eta g)."""
    widths, output, X, y = regression(10)
    X, y = X.astype(dtype), y.astype(dtype)
    lam, mu, eta = 0.2, 0.9, 0.05
    w0 = fastbp.init_weights(widths, seed=2, dtype=dtype)
    weights = copies(w0)
    fastbp.fit(weights, X, y, output=output, method="sgd", batch_size=4, learning_rate=eta,
               momentum=mu, nesterov=True, weight_decay=lam, epochs=2, shuffle=False)
    w = copies(w0)
    v = [np.zeros_like(a) for a in w]
    for _epoch in range(2):
        for start in (0, 4, 8):
            b = slice(start, start + 4)
            _, g = fastbp.gradient(w, X[b], y[b], output=output)
            g = [gl + (2 * lam / 10) * wl for gl, wl in zip(g, w)]
            v = [mu * vl - eta * gl for vl, gl in zip(v, g)]
            w = [wl + (mu * vl - eta * gl) for wl, vl, gl in zip(w, v, g)]
    assert bitwise_equal(weights, w)


def test_nesterov_full_batch_gd_matches_its_formula_exactly():
    widths, output, X, y = regression(10)
    mu, eta = 0.8, 0.1
    w0 = fastbp.init_weights(widths, seed=2)
    weights = copies(w0)
    fastbp.fit(weights, X, y, output=output, method="gd", learning_rate=eta, momentum=mu,
               nesterov=True, epochs=4)
    w = fastbp.Network(widths, output=output).weights
    flat = np.concatenate([a.ravel() for a in w0])
    v = np.zeros_like(flat)
    obj = DataObjective(widths, np.dtype(np.float64), X, y.reshape(-1, 1), output, 1)
    g = np.empty_like(flat)
    for _ in range(4):
        obj.gradient(flat, g)
        v = mu * v - eta * g
        flat = flat + (mu * v - eta * g)
    w = obj.views(flat)
    assert bitwise_equal(weights, w)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_rprop_matches_a_numpy_loop_of_irprop_minus(dtype):
    """iRPROP- per weight, with FANN's defaults (eta+ 1.2, eta- 0.5, Delta0 0.1, [1e-6, 50])."""
    widths, output, X, y = regression(20)
    X, y = X.astype(dtype), y.astype(dtype)
    w0 = fastbp.init_weights(widths, seed=3, dtype=dtype)
    weights = copies(w0)
    h = fastbp.fit(weights, X, y, output=output, method="rprop", epochs=12)
    assert len(h) == 12

    w = [a.copy() for a in w0]
    delta = [np.full_like(a, 0.1) for a in w]
    g_prev = [np.zeros_like(a) for a in w]
    for _epoch in range(12):
        _, grads = fastbp.gradient(w, X, y, output=output)
        for l in range(len(w)):
            g = grads[l].copy()
            for i in np.ndindex(g.shape):
                if g[i] * g_prev[l][i] > 0:
                    delta[l][i] = min(delta[l][i] * dtype_(dtype, 1.2), dtype_(dtype, 50.0))
                elif g[i] * g_prev[l][i] < 0:
                    delta[l][i] = max(delta[l][i] * dtype_(dtype, 0.5), dtype_(dtype, 1e-6))
                    g[i] = 0
                w[l][i] -= np.sign(g[i]) * delta[l][i]
            g_prev[l] = g
    assert bitwise_equal(weights, w)
    assert h.E_in[-1] == pytest.approx(fastbp.error(w, X, y, output=output), rel=1e-12)


def dtype_(dtype, value):
    return np.dtype(dtype).type(value)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_lbfgs_is_scipys_minimize_on_the_gradient(dtype):
    """The same start and problem handed to scipy.optimize.minimize directly: the same E_in."""
    optimize = pytest.importorskip("scipy.optimize")
    widths, output, X, y = multiclass()
    X, y = X.astype(dtype), y.astype(dtype)
    w0 = fastbp.init_weights(widths, seed=1, dtype=dtype)
    weights = copies(w0)
    h = fastbp.fit(weights, X, y, output=output, method="lbfgs", epochs=30, weight_decay=0.01)

    shapes = [a.shape for a in w0]
    n = len(X)

    def unflat(x):
        out, pos = [], 0
        for r, c in shapes:
            out.append(x[pos:pos + r * c].reshape(r, c).astype(dtype))
            pos += r * c
        return out

    def fun(x):
        w = unflat(x)
        E, g = fastbp.gradient(w, X, y, output=output)
        g = np.concatenate([(gl + (2 * 0.01 / n) * wl).ravel() for gl, wl in zip(g, w)])
        wf = np.concatenate([a.ravel() for a in w])
        return E + (0.01 / n) * float(np.square(wf, dtype=np.float64).sum()), g.astype(float)

    x0 = np.concatenate([a.ravel() for a in w0]).astype(float)
    res = optimize.minimize(fun, x0, jac=True, method="L-BFGS-B",
                            options={"maxiter": 30, "maxfun": 15000, "gtol": 1e-5})
    E_direct = fastbp.error(unflat(res.x), X, y, output=output)
    assert res.nit == len(h) == 30
    assert h.E_in[-1] == pytest.approx(E_direct, rel=1e-10)
    assert fastbp.error(weights, X, y, output=output) == h.E_in[-1]


def test_lbfgs_honours_validation_early_stopping_callback_and_ctrl_c():
    pytest.importorskip("scipy")
    widths, output, X, y = regression(40)
    Xv, yv = X[:10], y[:10] / 2
    w = fastbp.init_weights(widths, seed=1)
    h = fastbp.fit(w, X, y, output=output, method="lbfgs", epochs=200,
                   validation_data=(Xv, yv), early_stopping=True, patience=3)
    assert h.stop_reason == "early_stopping" and len(h.E_val) == len(h)
    assert fastbp.error(w, Xv, yv, output=output) == min([h.start["E_val"]] + h.E_val)

    seen = []
    w = fastbp.init_weights(widths, seed=1)
    h = fastbp.fit(w, X, y, output=output, method="lbfgs", epochs=50,
                   callback=lambda hist: seen.append(copies(w)) or len(hist) < 4)
    assert h.stop_reason == "callback" and len(h) == 4 and bitwise_equal(w, seen[-1])

    def interrupt(hist):
        seen.append(copies(w))
        if len(hist) == 3:
            raise KeyboardInterrupt
    seen.clear()
    w = fastbp.init_weights(widths, seed=1)
    h = fastbp.fit(w, X, y, output=output, method="lbfgs", epochs=50, callback=interrupt)
    assert h.interrupted and len(h) == 3 and bitwise_equal(w, seen[-1])


# ------------------------------------------------------------------------------------------------
# Reproducible, warm starts

@pytest.mark.parametrize("name", NEW)
def test_new_methods_are_bitwise_reproducible(name):
    lbfgs_or_skip(name)
    widths, output, X, y = multiclass()
    runs = []
    for _ in range(2):
        w = fastbp.init_weights(widths, seed=4)
        h = fastbp.fit(w, X, y, output=output, epochs=15, num_threads=2, **SETTINGS[name])
        runs.append((w, h.E_in))
    assert bitwise_equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]


@pytest.mark.parametrize("settings", [
    dict(method="adam", learning_rate=0.02, batch_size=3, shuffle=False),
    dict(method="sgd", learning_rate=0.02, batch_size=3, momentum=0.7, nesterov=True,
         shuffle=False),
    dict(method="gd", momentum=0.5),
    dict(method="rprop"),
    dict(method="variable-lr"),
    dict(method="gd"),
    dict(method="sgd", learning_rate=0.02, batch_size=3, shuffle=False),
], ids=["adam", "nesterov", "gd-momentum", "rprop", "variable-lr", "gd", "sgd"])
def test_warm_start_goes_on_exactly_where_the_last_fit_ended(settings):
    widths, output, X, y = regression(10)
    once = fastbp.init_weights(widths, seed=3)
    twice = copies(once)
    h10 = fastbp.fit(once, X, y, output=output, epochs=10, **settings)
    h4 = fastbp.fit(twice, X, y, output=output, epochs=4, **settings)
    h6 = fastbp.fit(twice, X, y, output=output, epochs=6, warm_start=h4, **settings)
    assert bitwise_equal(once, twice)
    assert h4.E_in + h6.E_in == h10.E_in
    if settings["method"] == "adam":
        assert h10.state["t"] == 10 * 4 and h6.state["t"] == 40
    if settings["method"] in ("gd", "sgd") and not settings.get("momentum"):
        return                          # no state to carry: warm_start changes nothing
    # without warm_start the state starts afresh, which here gives other weights
    fresh = copies(twice)
    fastbp.fit(fresh, X, y, output=output, epochs=2, **settings)
    again = copies(twice)
    fastbp.fit(again, X, y, output=output, epochs=2, warm_start=h6, **settings)
    assert not bitwise_equal(fresh, again)


def test_network_warm_start_uses_its_own_last_fit():
    widths, output, X, y = regression(10)
    a = fastbp.Network(widths, output=output, seed=2)
    b = fastbp.Network(widths, output=output, seed=2)
    a.fit(X, y, method="adam", epochs=6, shuffle=False, learning_rate=0.01)
    b.fit(X, y, method="adam", epochs=2, shuffle=False, learning_rate=0.01)
    b.fit(X, y, method="adam", epochs=4, shuffle=False, learning_rate=0.01, warm_start=True)
    assert bitwise_equal(a.weights, b.weights) and b.history.state["t"] == a.history.state["t"]
    fresh = fastbp.Network(widths, output=output, seed=2)
    with pytest.raises(ValueError, match="has not been fitted yet"):
        fresh.fit(X, y, method="adam", warm_start=True)


# ------------------------------------------------------------------------------------------------
# The protocol: a method is one class and one registry line

def test_a_new_method_is_one_class_and_one_registry_line(monkeypatch):
    class SignDescent(_methods.Method):
        """w <- w - eta sign(g): full batch, on the flat objective."""
        name = "sign"
        options = {"learning_rate": 0.01}

        def epoch(self):
            self.w -= self.lr * np.sign(self.g)
            self.gradient()
            return self.lr, True

    monkeypatch.setitem(_methods.REGISTRY, "sign", SignDescent)
    widths, output, X, y = xor()
    w = fastbp.init_weights(widths, seed=1)
    w0 = copies(w)
    h = fastbp.fit(w, X, y, output=output, method="sign", epochs=30, learning_rate=0.05)
    assert len(h) == 30 and h.E_in[-1] < h.start["E_in"]
    _, g = fastbp.gradient(w0, X, y, output=output)
    first = copies(w0)
    fastbp.fit(first, X, y, output=output, method="sign", epochs=1, learning_rate=0.05)
    assert bitwise_equal(first, [a - 0.05 * np.sign(b) for a, b in zip(w0, g)])
    with pytest.raises(ValueError, match="method 'sign' does not take the option momentum"):
        fastbp.fit(w, X, y, output=output, method="sign", momentum=0.5)


def test_mini_batch_methods_need_data_in_memory():
    from fastbp import training
    from fastbp._objective import Objective
    from fastbp._options import FitOptions

    class Remote(Objective):
        def error_in(self, weights):
            return 0.0

    w = fastbp.init_weights([2, 3, 1], seed=0)
    with pytest.raises(ValueError, match="method 'adam' works on mini-batches of data in memory"):
        training.train(w, Remote([2, 3, 1], np.float64, 4), FitOptions.check("adam"))


def test_the_package_has_no_import_cycles():
    """Every import between fastbp's modules, at module level or inside a function, points one
    way: the graph of fastbp/*.py is acyclic."""
    root = pathlib.Path(fastbp.__file__).parent
    modules = {p.stem: p for p in root.glob("*.py")}
    graph = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    edges.add(node.module.split(".")[0])
                else:
                    edges.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fastbp"):
                parts = node.module.split(".")
                edges.update([parts[1]] if len(parts) > 1 else [a.name for a in node.names])
            elif isinstance(node, ast.Import):
                edges.update(a.name.split(".")[1] for a in node.names
                             if a.name.startswith("fastbp."))
                if any(a.name == "fastbp" for a in node.names):
                    edges.add("__init__")
        graph[name] = {e for e in edges if e in modules and e != name} | (
            {"_core"} & edges)
    assert "_api" in graph["network"] and "_io" in graph["network"]   # the parser sees imports
    state = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                raise AssertionError(f"import cycle: {' -> '.join(path + [nxt])}")
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


# ------------------------------------------------------------------------------------------------
# Bad input: named, before anything changes

def bad(exc, pattern, **kw):
    widths, output, X, y = regression(10)
    w = fastbp.init_weights(widths, seed=1)
    before = copies(w)
    with pytest.raises(exc, match=pattern):
        fastbp.fit(w, X, y, output=output, **kw)
    assert bitwise_equal(w, before)


@pytest.mark.parametrize("exc,pattern,kw", [
    (ValueError, r"method must be one of 'gd', 'sgd', 'variable-lr', 'steepest', 'cg', 'adam', "
                 r"'rprop', 'lbfgs', got 'Adam'", dict(method="Adam")),
    (ValueError, r"method 'adam' does not take the option momentum; its own options are "
                 r"learning_rate, batch_size, shuffle, beta1, beta2, eps, warm_start",
     dict(method="adam", momentum=0.9)),
    (ValueError, r"method 'rprop' does not take the option learning_rate",
     dict(method="rprop", learning_rate=0.1)),
    (ValueError, r"method 'lbfgs' does not take the option batch_size",
     dict(method="lbfgs", batch_size=10)),
    (ValueError, r"method 'gd' does not take the option beta1", dict(method="gd", beta1=0.9)),
    (TypeError, r"fit\(\) got an unexpected keyword argument 'learnig_rate'",
     dict(method="adam", learnig_rate=0.1)),
    (ValueError, r"learning_rate must be > 0, got 0", dict(method="adam", learning_rate=0)),
    (ValueError, r"beta1 must be < 1, got 1", dict(method="adam", beta1=1)),
    (ValueError, r"beta2 must be >= 0, got -0.1", dict(method="adam", beta2=-0.1)),
    (ValueError, r"eps must be > 0, got 0", dict(method="adam", eps=0)),
    (ValueError, r"eps must be > 0, got -1e-08", dict(method="adam", eps=-1e-8)),
    (TypeError, r"nesterov must be True or False, got 1", dict(method="sgd", nesterov=1)),
    (ValueError, r"step_initial must be > 0, got 0", dict(method="rprop", step_initial=0)),
    (ValueError, r"step_increase must be > 1, got 1.0", dict(method="rprop", step_increase=1.0)),
    (ValueError, r"step_decrease must be < 1, got 1.5", dict(method="rprop", step_decrease=1.5)),
    (ValueError, r"step_min must be < step_max, got step_min=1.0 and step_max=0.5",
     dict(method="rprop", step_min=1.0, step_max=0.5)),
    (ValueError, r"step_initial must be <= step_max, got step_initial=60.0 and step_max=50.0",
     dict(method="rprop", step_initial=60)),
    (ValueError, r"max_fun must be at least 1, got 0", dict(method="lbfgs", max_fun=0)),
    (ValueError, r"gtol must be >= 0, got -1", dict(method="lbfgs", gtol=-1)),
    (TypeError, r"warm_start must be True, False or the History of an earlier fit, got dict",
     dict(method="adam", warm_start={})),
    (ValueError, r"warm_start=True means Network.fit's own last fit",
     dict(method="adam", warm_start=True)),
])
def test_bad_options(exc, pattern, kw):
    bad(exc, pattern, **kw)


def test_warm_start_from_another_method_or_network_is_refused():
    widths, output, X, y = regression(10)
    w = fastbp.init_weights(widths, seed=1)
    h = fastbp.fit(w, X, y, output=output, method="sgd", momentum=0.5, epochs=1)
    bad(ValueError, r"warm_start is the history of a fit with method 'sgd', not 'adam'",
        method="adam", warm_start=h)
    other = fastbp.init_weights([1, 3, 1], seed=1)
    h = fastbp.fit(other, X, y, output=output, method="adam", epochs=1)
    bad(ValueError, r"warm_start's m has shape \(10,\), but this network has 25 weights",
        method="adam", warm_start=h)


def test_lbfgs_without_scipy_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.optimize", None)
    bad(ImportError, r"pip install \"fastbp\[scipy\]\"", method="lbfgs")



@pytest.mark.parametrize("settings", [
    dict(method="adam", learning_rate=1e200, batch_size=2),
    dict(method="sgd", learning_rate=1e6, momentum=0.9, nesterov=True),
], ids=["adam", "nesterov"])
def test_divergence_stops_with_the_last_finite_weights(settings):
    widths, output, X, y = regression()
    X = X * 1e3
    weights = fastbp.init_weights(widths, seed=1)
    seen = []
    with pytest.warns(RuntimeWarning, match="infinite or NaN"):
        h = fastbp.fit(weights, X, y, output=output, epochs=100,
                       callback=lambda hist: seen.append(copies(weights)), **settings)
    assert h.stop_reason == "diverged"
    assert all(np.isfinite(w).all() for w in weights)
    assert len(h) == len(seen) and (not seen or bitwise_equal(weights, seen[-1]))


@pytest.mark.parametrize("method", ["gd", "rprop"])
def test_full_batch_steps_to_infinite_weights_stop_with_a_warning(method):
    """A step that overflows the weights themselves (not only the error) is caught as well."""
    widths, output, X, y = regression()
    weights = fastbp.init_weights(widths, seed=1)
    options = (dict(learning_rate=1e308) if method == "gd"
               else dict(step_initial=1e308, step_max=1.5e308, step_min=1.0))
    with pytest.warns(RuntimeWarning, match="infinite or NaN"):
        h = fastbp.fit(weights, X, y, output=output, method=method, epochs=20, **options)
    assert h.stop_reason == "diverged" and all(np.isfinite(w).all() for w in weights)
