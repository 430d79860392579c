"""Property tests (hypothesis): random networks, batches, dtypes, outputs, thread counts and array
layouts. fastbp agrees with fastbp.reference, does not care how the caller's arrays are laid out in
memory, and gives bitwise the same results on any number of threads.

The example budget is kept small (the whole file runs in well under a minute); a failure prints the
drawn case, which `@example(...)` or a fixed seed can replay.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastbp
from _helpers import rel_err, rounding_spread
from fastbp import _api, _checks, reference

SETTINGS = dict(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

LAYOUTS = ["C", "F", "strided", "negative", "readonly", "unaligned", "bigendian"]


def problem(widths, n, dtype, seed):
    """Weights, inputs and targets drawn with numpy from `seed` (hypothesis shrinks the seed)."""
    rng = np.random.default_rng(seed)
    weights = [(w * rng.uniform(0.5, 1.5)).astype(dtype)
               for w in fastbp.init_weights(widths, seed=seed, dtype="float64")]
    X = rng.standard_normal((n, widths[0])).astype(dtype)
    y = rng.uniform(-0.9, 0.9, (n, widths[-1])).astype(dtype)
    return weights, X, y


def relayout(a, layout):
    """The values of `a` in another memory layout (a new array or a view; `a` is not changed)."""
    a = np.asarray(a)
    if layout == "C":
        return np.array(a, order="C")
    if layout == "F":
        return np.array(a, order="F")
    if layout == "strided":           # every other row, every third column of a larger array
        big = np.zeros((2 * a.shape[0], 3 * a.shape[1]) if a.ndim == 2 else (2 * a.shape[0],),
                       dtype=a.dtype)
        view = big[::2, ::3] if a.ndim == 2 else big[::2]
        view[...] = a
        return view
    if layout == "negative":          # negative strides on every axis
        return np.array(a[(slice(None, None, -1),) * a.ndim], order="C")[
            (slice(None, None, -1),) * a.ndim]
    if layout == "readonly":
        b = a.copy()
        b.flags.writeable = False
        return b
    if layout == "unaligned":         # a view at an odd address, as from a packed file format
        buf = bytearray(a.nbytes + 1)
        b = np.frombuffer(buf, dtype=a.dtype, offset=1).reshape(a.shape)
        b[...] = a
        assert not b.flags.aligned or a.size == 0
        return b
    if layout == "bigendian":
        return a.astype(a.dtype.newbyteorder(">"))
    raise AssertionError(layout)


widths_st = st.lists(st.integers(1, 40), min_size=2, max_size=7)   # 1 to 6 layers of weights
dtype_st = st.sampled_from(["float64", "float32"])
output_st = st.sampled_from(["tanh", "linear"])
layout_st = st.sampled_from(LAYOUTS)
seed_st = st.integers(0, 2**32 - 1)


def assert_close(fast, ref, dtype, what, ref32=None, spread=0.0):
    """fast within the core tolerance of ref (float64: 1e-12; float32: 1e-5 against the float64
    result), unless the problem is worse conditioned than that: near saturation 1 - x^2 cancels, so
    a last-bit difference in tanh moves the gradient by more. Then fastbp must be within 10x of
    `spread` (what one rounding of the data and of each tanh value moves the exact result), or,
    in float32, within 10x of the reference's own float32 result."""
    tol = 1e-12 if dtype == "float64" else 1e-5
    tol = max(tol, 10 * spread)
    if ref32 is not None:
        tol = max(tol, 10 * rel_err(ref32, ref))
    assert rel_err(fast, ref) < tol, (what, rel_err(fast, ref), tol)


@settings(**SETTINGS)
@given(widths=widths_st, n=st.integers(1, 300), dtype=dtype_st, output=output_st, seed=seed_st,
       threads=st.sampled_from([None, 1, 2, 3, -1]))
def test_agrees_with_reference(widths, n, dtype, output, seed, threads):
    """float64 within 1e-12 of the reference (norm-wise), float32 within 1e-5 of it in float64."""
    weights, X, y = problem(widths, n, dtype, seed)
    # the oracle: the reference in float64 on exactly the values fastbp sees
    w64 = [w.astype(np.float64) for w in weights]
    X64, y64 = X.astype(np.float64), y.astype(np.float64)
    e_ref, g_ref = reference.gradient(w64, X64, y64, output=output)
    out_ref = reference.forward(w64, X64, output=output)
    if dtype == "float32":   # the same algorithm in float32: how well the problem is conditioned
        e32, g32 = reference.gradient(weights, X, y, output=output)
        out32 = reference.forward(weights, X, output=output)
    else:
        e32, g32, out32 = None, [None] * len(weights), None

    rng = np.random.default_rng(seed)
    sp_e, sp_out, sp_g = rounding_spread(weights, X, y, output, dtype, rng)

    e, grads = fastbp.gradient(weights, X, y, output=output, num_threads=threads)
    assert isinstance(e, float)
    assert_close(e, e_ref, dtype, "E_in", e32, sp_e)
    assert len(grads) == len(weights)
    for l, (g, gr, w, gr32, sp) in enumerate(zip(grads, g_ref, weights, g32, sp_g)):
        assert g.shape == w.shape and g.dtype == np.dtype(dtype)
        assert_close(g, gr, dtype, f"grads[{l}]", gr32, sp)
    assert_close(fastbp.error(weights, X, y, output=output, num_threads=threads), e_ref, dtype,
                 "error", e32, sp_e)
    out = fastbp.forward(weights, X, output=output)
    assert out.shape == (n, widths[-1]) and out.dtype == np.dtype(dtype)
    assert_close(out, out_ref, dtype, "forward", out32, sp_out)


@settings(**SETTINGS)
@given(widths=widths_st, dtype=dtype_st, output=output_st, seed=seed_st)
def test_backprop_agrees_with_reference(widths, dtype, output, seed):
    weights, X, y = problem(widths, 1, dtype, seed)
    xs, deltas = fastbp.backprop(weights, X[0], y[0], output=output)
    w64 = [w.astype(np.float64) for w in weights]
    xs_ref, deltas_ref = reference.backprop(w64, X[0].astype(float), y[0].astype(float), output)
    xs32, deltas32 = reference.backprop(weights, X[0], y[0], output)
    # delta(l) carries the conditioning of the gradient x(l-1) delta(l)^T
    _, _, sp_g = rounding_spread(weights, X, y, output, dtype, np.random.default_rng(seed))
    spreads = [0.0] * len(xs) + sp_g
    assert len(xs) == len(widths) and len(deltas) == len(widths) - 1
    for a, b, c, sp in zip(xs + deltas, xs_ref + deltas_ref, xs32 + deltas32, spreads):
        assert a.shape == b.shape
        assert_close(a, b, dtype, "backprop", c if dtype == "float32" else None, sp)


@settings(**SETTINGS)
@given(widths=widths_st, n=st.integers(1, 300), dtype=dtype_st, output=output_st, seed=seed_st,
       w_layouts=st.lists(layout_st, min_size=6, max_size=6), x_layout=layout_st,
       y_layout=layout_st, y_flat=st.booleans())
def test_layout_does_not_change_the_result(widths, n, dtype, output, seed, w_layouts, x_layout,
                                           y_layout, y_flat):
    """Fortran, strided, negative-stride, read-only, unaligned and big-endian arrays give bitwise
    the results of C-contiguous ones, and are left as they were."""
    weights, X, y = problem(widths, n, dtype, seed)
    if y_flat and widths[-1] == 1:
        y = y[:, 0]
    e, grads = fastbp.gradient(weights, X, y, output=output)
    out = fastbp.forward(weights, X, output=output)

    weights2 = [relayout(w, lay) for w, lay in zip(weights, w_layouts)]
    X2, y2 = relayout(X, x_layout), relayout(y, y_layout)
    before = [a.copy() for a in weights2 + [X2, y2]]
    e2, grads2 = fastbp.gradient(weights2, X2, y2, output=output)
    assert e2 == e
    for g, g2 in zip(grads, grads2):
        assert g2.dtype == np.dtype(dtype) and g2.flags.c_contiguous
        assert np.array_equal(g, g2)
    assert np.array_equal(fastbp.forward(weights2, X2, output=output), out)
    assert fastbp.error(weights2, X2, y2, output=output) == fastbp.error(weights, X, y, output)
    for b, a in zip(before, weights2 + [X2, y2]):
        assert a.dtype == b.dtype and np.array_equal(a, b)


@settings(**SETTINGS)
@given(widths=widths_st, n=st.integers(1, 300), dtype=dtype_st, seed=seed_st,
       layouts=st.lists(st.sampled_from(["F", "strided", "negative", "unaligned"]),
                        min_size=6, max_size=6),
       accumulate=st.booleans())
def test_out_of_any_layout(widths, n, dtype, seed, layouts, accumulate):
    """gradient(out=...) writes (or adds) the gradient into writeable arrays of any layout, with
    bitwise the result it gives for C-contiguous ones."""
    weights, X, y = problem(widths, n, dtype, seed)
    _, grads = fastbp.gradient(weights, X, y)
    # starting values of the gradient's size, so that how the sum is rounded shows
    rng = np.random.default_rng(seed)
    start = [(rng.standard_normal(w.shape) * np.abs(g).max()).astype(dtype)
             for w, g in zip(weights, grads)]
    out_c = [s.copy() for s in start]
    out = [relayout(s, lay) for s, lay in zip(start, layouts)]
    _, returned = fastbp.gradient(weights, X, y, out=out, accumulate=accumulate)
    assert all(r is o for r, o in zip(returned, out))
    fastbp.gradient(weights, X, y, out=out_c, accumulate=accumulate)
    for o, oc, g, s in zip(out, out_c, grads, start):
        assert np.array_equal(o, oc), "the result depends on the layout of out"
        if accumulate:
            tol = 1e-13 if dtype == "float64" else 1e-6
            assert rel_err(o, s.astype(float) + g) < tol
        else:
            assert np.array_equal(o, g)


def forced_plan(real_plan):
    """A plan with one tile per chunk and one chunk per thread and round: the most chunks, the
    most rounds and the parallel path even for small batches."""
    def plan(widths, n_samples, num_threads, itemsize, **kwargs):
        threads, tile, chunk, slots = real_plan(widths, n_samples, num_threads, itemsize,
                                                **kwargs)
        n_chunks = -(-n_samples // tile)
        # _plan takes num_threads as the caller gave it (None, negative, ...)
        wanted = _checks.check_num_threads(num_threads, _api.available_threads())
        return max(1, min(wanted, n_chunks)), tile, tile, 1
    return plan


@settings(**SETTINGS)
@given(widths=widths_st, n=st.integers(1, 300), dtype=dtype_st, output=output_st, seed=seed_st,
       forced=st.booleans())
def test_bitwise_identical_across_thread_counts(widths, n, dtype, output, seed, forced):
    weights, X, y = problem(widths, n, dtype, seed)
    with pytest.MonkeyPatch.context() as mp:
        if forced:
            mp.setattr(_api, "_plan", forced_plan(_api._plan))
        results = [fastbp.gradient(weights, X, y, output=output, num_threads=t)
                   for t in (1, 2, 3, 1, None)]
        errors = [fastbp.error(weights, X, y, output=output, num_threads=t) for t in (1, 2, 3)]
    e1, g1 = results[0]
    for e, g in results[1:]:
        assert e == e1
        assert all(np.array_equal(a, b) for a, b in zip(g, g1))
    assert errors[0] == errors[1] == errors[2]
    if forced:   # another chunking sums in another order, but still agrees with the reference
        w64 = [w.astype(np.float64) for w in weights]
        e_ref, g_ref = reference.gradient(w64, X.astype(float), y.astype(float), output=output)
        e32, g32 = reference.gradient(weights, X, y, output=output)
        f32 = dtype == "float32"
        rng = np.random.default_rng(seed)
        sp_e, _, sp_g = rounding_spread(weights, X, y, output, dtype, rng)
        assert_close(e1, e_ref, dtype, "E_in", e32 if f32 else None, sp_e)
        for g, gr, gr32, sp in zip(g1, g_ref, g32, sp_g):
            assert_close(g, gr, dtype, "grads", gr32 if f32 else None, sp)


@settings(**SETTINGS)
@given(widths=widths_st, n=st.integers(1, 300), seed=seed_st,
       x_kind=st.sampled_from(["int8", "int32", "int64", "uint16", "float32"]))
def test_integer_and_narrow_inputs_are_converted_to_the_weights_dtype(widths, n, seed, x_kind):
    weights, X, y = problem(widths, n, "float64", seed)
    if x_kind == "float32":
        X2 = X.astype(np.float32)
    else:
        X2 = np.clip(np.round(X * 3), 0 if x_kind.startswith("u") else -100, 100).astype(x_kind)
    y2 = np.sign(y).astype(np.int8)
    e, g = fastbp.gradient(weights, X2, y2)
    e_c, g_c = fastbp.gradient(weights, X2.astype(np.float64), y2.astype(np.float64))
    assert e == e_c and all(np.array_equal(a, b) and a.dtype == np.float64 for a, b in zip(g, g_c))
