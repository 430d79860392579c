"""Reliability, numerics: saturated, huge and tiny values give results within their rounding
bounds, and float32 networks stay float32 (issue 5).
"""

import numpy as np
import pytest

import fastbp
from _helpers import (
    bitwise_equal,
    copies,
    exact,
    make_problem,
    rel_err,
    rounding_spread,
)
from fastbp import _api, reference

# ================================================================================================


# Numerics

@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("output", ["tanh", "linear"])
@pytest.mark.parametrize("w_scale, x_scale", [
    (1e3, 1e3), (1e6, 1.0), (1.0, 1e6), (1e6, 1e6),        # saturated: |s| from 1e3 up to 1e12
    (30.0, 1.0), (5.0, 5.0),                                # partly saturated, ill-conditioned
    (1e-150, 1e-150), (1e-300, 1.0), (1.0, 1e-300), (1e-20, 1e-20),   # tiny, subnormal products
], ids=lambda v: f"{v:g}")
def test_saturated_huge_and_tiny_values(dtype, output, w_scale, x_scale):
    """Finite results, as accurate as the precision and the problem allow. Measured against
    extended precision, fastbp's error (E_in, outputs, each gradient) is within the core tolerance
    (1e-12; float32 1e-5), or within 10x what one rounding of the data and of each tanh value moves
    the exact result (saturated tanh is ill-conditioned), or, for a gradient among dtype's
    subnormals, within 4 steps of dtype's smallest subnormal. The bounds come from the extended-
    precision computation and dtype alone, never from the reference (whose own error is no
    yardstick: it reached 1000 % of the norm in the float32 (1e3, 1e3) case)."""
    widths = [4, 8, 8, 3]
    rng = np.random.default_rng(int(np.log10(w_scale) * 7 + np.log10(x_scale)) % 1000)
    weights = [(rng.standard_normal(w.shape) * w_scale).astype(dtype)
               for w in fastbp.init_weights(widths, seed=1)]
    X = (rng.standard_normal((300, widths[0])) * x_scale).astype(dtype)
    y = rng.uniform(-1, 1, (300, widths[-1])).astype(dtype)
    tol = 1e-12 if dtype == "float64" else 1e-5

    e, grads = fastbp.gradient(weights, X, y, output=output, num_threads=2)
    out = fastbp.forward(weights, X, output=output)
    e_ex, g_ex, out_ex = exact(weights, X, y, output)
    spread = rounding_spread(weights, X, y, output, dtype, rng)

    assert np.isfinite(e) and all(np.isfinite(g).all() for g in grads) and np.isfinite(out).all()
    if output == "tanh":
        assert np.abs(out).max() <= 1
    assert abs(e - e_ex) / e_ex <= max(tol, 10 * spread[0]), (abs(e - e_ex) / e_ex, spread[0])
    assert rel_err(out, out_ex) <= max(tol, 10 * spread[1]), (rel_err(out, out_ex), spread[1])
    tiny = float(np.finfo(dtype).smallest_subnormal)
    for g, gx, sp in zip(grads, g_ex, spread[2]):
        assert g.dtype == np.dtype(dtype)
        # gradients among dtype's subnormals (the 1e-20 scales in float32) are stored in steps of
        # its smallest subnormal: a few of those steps are as close as dtype can get
        floor = 4 * tiny / max(float(np.abs(gx).max()), tiny)
        assert rel_err(g, gx) <= max(tol, 10 * sp, floor), (rel_err(g, gx), sp, floor)
    e1, g1 = fastbp.gradient(weights, X, y, output=output, num_threads=1)
    assert e1 == e and bitwise_equal(g1, grads)


def test_deeply_saturated_units_have_zero_sensitivity():
    """|s| ~ 1e6: tanh is exactly +-1, 1 - x^2 is exactly 0, so the gradient of the saturated
    layer's inputs is exactly 0, not NaN or a rounding residue."""
    weights = [np.array([[0.0], [1e6]]), np.array([[0.1], [0.5]])]
    X = np.array([[1.0], [-2.0], [3.0]])
    y = np.array([0.2, -0.3, 0.1])
    e, g = fastbp.gradient(weights, X, y)
    xs, ds = fastbp.backprop(weights, X[0], y[0])
    assert xs[1][1] == 1.0 and ds[0][0] == 0.0
    assert np.all(g[0] == 0.0)
    e_ref, g_ref = reference.gradient(weights, X, y)
    assert e == pytest.approx(e_ref, rel=1e-15) and bitwise_equal(g[0], g_ref[0])


@pytest.mark.parametrize("method", ["gd", "sgd", "variable-lr", "steepest", "cg"])
def test_float32_network_on_float64_data_stays_float32(method, monkeypatch):
    """Every kernel call fit makes gets float32 weights and data; the result is bitwise the one of
    fitting on data converted to float32 beforehand; the weights stay float32."""
    _, X, y = make_problem([3, 6, 2], 64, seed=2)
    Xv, yv = make_problem([3, 6, 2], 16, seed=3)[1:]
    seen = set()
    for name in ("gradient", "error", "sgd_epoch"):
        real = getattr(_api, name)

        def spy(*args, _real=real, _name=name, **kw):
            for a in list(args) + list(kw.values()):
                for b in (a if isinstance(a, (list, tuple)) else [a]):
                    if isinstance(b, np.ndarray) and b.dtype.kind == "f":
                        seen.add((_name, b.dtype.name))
            return _real(*args, **kw)
        monkeypatch.setattr(_api, name, spy)
    w64data = fastbp.init_weights([3, 6, 2], seed=1, dtype="float32")
    w32data = copies(w64data)
    kw = dict(method=method, epochs=5, learning_rate=0.05, validation_data=(Xv, yv))
    h = fastbp.fit(w64data, X, y, **kw)
    assert seen and {dt for _, dt in seen} == {"float32"}, seen
    h32 = fastbp.fit(w32data, X.astype(np.float32), y.astype(np.float32),
                     **dict(kw, validation_data=(Xv.astype(np.float32), yv.astype(np.float32))))
    assert all(w.dtype == np.float32 for w in w64data)
    assert bitwise_equal(w64data, w32data) and h.E_in == h32.E_in and h.E_val == h32.E_val
    net = fastbp.Network([3, 6, 2], dtype="float32", seed=1)
    net.fit(X, y, **kw)
    assert all(w.dtype == np.float32 for w in net.weights)
    assert net.forward(X).dtype == np.float32
    assert all(g.dtype == np.float32 for g in net.gradient(X, y)[1])


# ================================================================================================
