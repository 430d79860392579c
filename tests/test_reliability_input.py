"""Reliability, bad input: every malformed, hostile or oversized argument gives a clear
exception before anything is computed, never a crash or a hang (issue 5).
"""
import os
import time
import warnings

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import fastbp
from _helpers import (
    bitwise_equal,
    copies,
    make_problem,
    raises_unchanged,
    rss_bytes,
)
from fastbp import reference


def usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# ================================================================================================


# Bad input

def be(a):
    return np.asarray(a).astype(np.asarray(a).dtype.newbyteorder(">"))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_big_endian_everywhere_is_accepted_and_converted(dtype):
    """Big-endian weights, X, y and x give bitwise the native results in every public function;
    fit trains big-endian weights in place and leaves them big-endian."""
    weights, X, y = make_problem([3, 7, 2], 50, dtype=dtype)
    wb, Xb, yb = [be(w) for w in weights], be(X), be(y)
    assert wb[0].dtype.byteorder == ">" and wb[0].dtype.newbyteorder("=") == np.dtype(dtype)
    e, g = fastbp.gradient(weights, X, y)
    e_b, g_b = fastbp.gradient(wb, Xb, yb)
    assert e == e_b and bitwise_equal(g, g_b) and all(a.dtype == np.dtype(dtype) for a in g_b)
    assert np.array_equal(fastbp.forward(wb, Xb), fastbp.forward(weights, X))
    assert fastbp.error(wb, Xb, yb) == fastbp.error(weights, X, y)
    xs, ds = fastbp.backprop(weights, X[0], y[0])
    xs_b, ds_b = fastbp.backprop(wb, Xb[0], yb[0])
    assert bitwise_equal(xs, xs_b) and bitwise_equal(ds, ds_b)
    net = fastbp.Network([3, 7, 2], dtype=dtype, weights=wb)
    assert all(w.dtype == np.dtype(dtype) for w in net.weights)
    assert bitwise_equal(net.weights, weights)
    # fit: in place, in the caller's byte order
    native = copies(weights)
    h = fastbp.fit(native, X, y, method="gd", epochs=3)
    h_b = fastbp.fit(wb, Xb, yb, method="gd", epochs=3)
    assert h.E_in == h_b.E_in
    assert all(w.dtype.byteorder == ">" for w in wb) and bitwise_equal(wb, native)


N0 = r"X holds no samples \(N = 0\); need at least one"


@pytest.mark.parametrize("call", [
    lambda w, X, y: fastbp.forward(w, X),
    lambda w, X, y: fastbp.error(w, X, y),
    lambda w, X, y: fastbp.gradient(w, X, y, out=[np.zeros_like(a) for a in w]),
    lambda w, X, y: fastbp.fit(w, X, y),
    lambda w, X, y: fastbp.Network([3, 4, 1], weights=w).fit(X, y),
    lambda w, X, y: fastbp.Network([3, 4, 1], weights=w).predict(X),
    lambda w, X, y: fastbp.check_gradient(w, X, y),
    lambda w, X, y: reference.gradient(w, X, y),
], ids=["forward", "error", "gradient-out", "fit", "Network.fit", "predict", "check_gradient",
        "reference"])
def test_empty_batch_is_refused_everywhere(call):
    weights = fastbp.init_weights([3, 4, 1], seed=0)
    raises_unchanged(ValueError, N0, call, weights, np.zeros((0, 3)), np.zeros(0))


def test_empty_y_and_empty_sample():
    weights, X, y = make_problem([3, 4, 2], 5)
    raises_unchanged(ValueError, r"y must have shape \(5, 2\) for d\(L\) = 2, got shape \(5, 0\)",
                     fastbp.gradient, weights, X, np.zeros((5, 0)))
    raises_unchanged(ValueError, r"y has 0 rows but X has 5 samples", fastbp.error, weights, X,
                     np.zeros((0, 2)))
    raises_unchanged(ValueError, r"x must have shape \(3,\) for d\(0\) = 3, got shape \(0,\)",
                     fastbp.backprop, weights, np.zeros(0), y[0])
    raises_unchanged(ValueError, r"y must have shape \(2,\) for d\(L\) = 2, got shape \(0,\)",
                     fastbp.backprop, weights, X[0], np.zeros(0))


@pytest.mark.parametrize("weights, exc, pattern", [
    ([np.zeros((0, 3)), np.zeros((4, 1))], ValueError, r"weights\[0\] has shape \(0, 3\) but needs "
                                                       r"at least 2 rows"),
    ([np.zeros((4, 3)), np.zeros((4, 0))], ValueError, r"weights\[1\] has shape \(4, 0\): layer 2 "
                                                       r"needs at least one unit"),
    ([np.zeros((4, 3)), np.zeros((1, 1))], ValueError, r"weights\[1\] has shape \(1, 1\) but layer "
                                                       r"2 needs \(4, 1\) for d\(1\) = 3"),
    ([np.zeros((0, 0))], ValueError, r"weights\[0\]"),
], ids=["no-input-row", "zero-units", "no-rows-for-hidden", "empty"])
def test_zero_width_layers(weights, exc, pattern):
    X, y = np.zeros((2, 3)), np.zeros(2)
    for fn in (fastbp.gradient, fastbp.error, reference.gradient):
        raises_unchanged(exc, pattern, fn, weights, X, y)
    raises_unchanged(exc, pattern, fastbp.forward, weights, X)
    raises_unchanged(exc, pattern, fastbp.backprop, weights, X[0], y[0])
    raises_unchanged(exc, pattern, fastbp.fit, weights, X, y)
    with pytest.raises(exc, match=pattern):
        fastbp.Network([3, 3, 1], weights=weights)
    # and an input or target with no columns
    good = fastbp.init_weights([3, 3, 1])
    raises_unchanged(ValueError, r"X must have shape \(N, 3\) for d\(0\) = 3, got shape \(2, 0\)",
                     fastbp.gradient, good, np.zeros((2, 0)), y)


NON_NUMERIC = {
    "bool": np.zeros((4, 3), dtype=bool),
    "complex": np.zeros((4, 3), dtype=complex),
    "object-of-floats": np.zeros((4, 3)).astype(object),
    "object-of-None": np.full((4, 3), None),
    "str": np.full((4, 3), "1.0"),
    "bytes": np.full((4, 3), b"1.0"),
    "datetime": np.zeros((4, 3), dtype="M8[s]"),
    "timedelta": np.zeros((4, 3), dtype="m8[s]"),
    "structured": np.zeros((4, 3), dtype=[("a", "f8")]),
    "void": np.zeros((4, 3), dtype="V8"),
}


@pytest.mark.parametrize("kind", sorted(NON_NUMERIC))
@pytest.mark.parametrize("where", ["weights", "X", "y", "x", "out", "fit-X", "fit-y"])
def test_non_numeric_arrays_are_type_errors(kind, where):
    """Every array argument of every function: bool, complex, object (even of numbers), strings,
    dates and records are TypeErrors naming the argument; nothing is changed."""
    weights, X, y = make_problem([3, 3, 3], 4)
    bad = NON_NUMERIC[kind]
    if where == "weights":
        raises_unchanged(TypeError, r"weights\[1\] must", fastbp.gradient, [weights[0], bad], X, y)
        raises_unchanged(TypeError, r"weights\[1\] must", fastbp.forward, [weights[0], bad], X)
    elif where == "X":
        raises_unchanged(TypeError, r"X must", fastbp.forward, weights, bad)
        raises_unchanged(TypeError, r"X must", fastbp.error, weights, bad, y)
    elif where == "y":
        raises_unchanged(TypeError, r"y must", fastbp.gradient, weights, X, bad)
        raises_unchanged(TypeError, r"y must", fastbp.error, weights, X, bad)
    elif where == "x":
        raises_unchanged(TypeError, r"x must", fastbp.backprop, weights, bad[0], y[0])
        raises_unchanged(TypeError, r"y must", fastbp.backprop, weights, X[0], bad[0])
    elif where == "out":
        out = [np.zeros_like(weights[0]), bad]
        raises_unchanged(TypeError, r"out\[1\] must", fastbp.gradient, weights, X, y, out=out)
    elif where == "fit-X":
        raises_unchanged(TypeError, r"X must", fastbp.fit, weights, bad, y)
    else:
        raises_unchanged(TypeError, r"y must", fastbp.fit, weights, X, bad)


@pytest.mark.parametrize("weights, exc, pattern", [
    (None, TypeError, r"weights must be a list of 2-D arrays W\(1\), \.\.\., W\(L\), got NoneType"),
    ("weights", TypeError, r"weights must be a list of 2-D arrays .* got str"),
    (np.zeros((2, 4, 3)), TypeError, r"weights must be a list of 2-D arrays .* got ndarray"),
    ({0: np.zeros((4, 3))}, TypeError, r"weights must be a list of 2-D arrays .* got dict"),
    ({np.pi}, TypeError, r"weights must be a list of 2-D arrays .* got set"),
    ((w for w in [np.zeros((4, 3))]), TypeError, r"weights must be a list .* got generator"),
    (fastbp.Network([3, 1]), TypeError, r"weights must be a list .* got Network"),
    ([np.zeros((4, 3)), None], TypeError, r"weights\[1\] must hold real numbers .* got dtype "
                                          r"object"),
    ([np.zeros((4, 3)), 2.0], ValueError, r"weights\[1\] must be 2-D .* got shape \(\)"),
    ([np.zeros((4, 3)), np.zeros(4)], ValueError, r"weights\[1\] must be 2-D .* got shape \(4,\)"),
    ([np.zeros((4, 3)), np.zeros((1, 4, 1))], ValueError, r"weights\[1\] must be 2-D .* got "
                                                          r"shape \(1, 4, 1\)"),
    ([np.zeros((4, 3)), [[1.0], [2.0, 3.0]]], TypeError, r"weights\[1\] must be an array of real "
                                                         r"numbers; numpy could not convert it"),
    ([np.zeros((4, 3)), np.zeros((4, 1), dtype=np.longdouble)], TypeError, r"float32 or float64"),
], ids=["None", "str", "3-D-array", "dict", "set", "generator", "Network", "None-layer",
        "scalar-layer", "1-D-layer", "3-D-layer", "ragged-layer", "longdouble"])
def test_weights_that_are_not_a_list_of_2d_arrays(weights, exc, pattern):
    X, y = np.zeros((2, 3)), np.zeros(2)
    raises_unchanged(exc, pattern, fastbp.gradient, weights, X, y)
    raises_unchanged(exc, pattern, fastbp.forward, weights, X)
    raises_unchanged(exc, pattern, fastbp.backprop, weights, X[0], y[0])
    raises_unchanged(exc, pattern, fastbp.fit, weights, X, y)


def test_nested_lists_and_tuples_of_numbers_are_weights():
    weights, X, y = make_problem([2, 3, 1], 6)
    as_lists = tuple(w.tolist() for w in weights)
    assert bitwise_equal(fastbp.gradient(as_lists, X.tolist(), y[:, 0].tolist())[1],
                   fastbp.gradient(weights, X, y)[1])


def huge_view(shape, dtype=np.float64):
    """An array of `shape` that takes one element of memory (all strides zero)."""
    return as_strided(np.zeros(1, dtype=dtype), shape=shape, strides=(0,) * len(shape))


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_huge_batch_fails_cleanly_before_allocating(dtype):
    """X of 2**40 rows (a zero-stride view: no memory behind it) cannot be converted: a
    MemoryError at once, nothing allocated, nothing run, the caller's arrays untouched."""
    weights = fastbp.init_weights([3, 4, 1], dtype=dtype)
    X = huge_view((2 ** 40, 3))
    y = huge_view((2 ** 40,))
    rss0, t0 = rss_bytes(), time.perf_counter()
    for call in (lambda: fastbp.forward(weights, X), lambda: fastbp.error(weights, X, y),
                 lambda: fastbp.gradient(weights, X, y), lambda: fastbp.fit(weights, X, y)):
        with pytest.raises(MemoryError):
            call()
    assert time.perf_counter() - t0 < 5
    assert rss_bytes() - rss0 < 64 << 20
    # a y of 2**40 rows against a small X: the shape check comes first
    with pytest.raises(ValueError, match=r"y has 1099511627776 rows but X has 2 samples"):
        fastbp.gradient(weights, np.zeros((2, 3)), y)


@pytest.mark.parametrize("widths", [[2 ** 31, 2 ** 31], [1, 2 ** 40], [3, 2 ** 62, 1],
                                    [2 ** 25, 1], [1, 2 ** 25 + 1, 1]])
def test_widths_whose_sizes_overflow_are_refused(widths):
    """Widths past what the kernels index (or whose byte counts wrap) are a ValueError at once,
    naming the width: never a wrapped allocation, never an attempt to allocate them."""
    t0 = time.perf_counter()
    for make in (fastbp.init_weights, fastbp.Network, reference.init_weights):
        with pytest.raises(ValueError, match=r"widths\[\d\] = d\(\d\) = \d+ is more than"):
            make(widths)
    assert time.perf_counter() - t0 < 5


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_weights_too_wide_for_the_kernels_are_refused_before_conversion():
    """A layer of 2**25 units (zero-stride views, so that building them costs nothing): the kernels
    index a tile of a layer with a C int, which would wrap; refused before any copy is made."""
    d = 2 ** 25
    weights = [huge_view((2, d)), huge_view((d + 1, 1))]
    rss0 = rss_bytes()
    for call in (lambda: fastbp.gradient(weights, np.zeros((64, 1)), np.zeros(64)),
                 lambda: fastbp.forward(weights, np.zeros((64, 1))),
                 lambda: fastbp.Network([1, d, 1], weights=weights)):
        with pytest.raises(ValueError, match=r"(weights\[0\] has 33554432 columns: |widths\[1\] = )"
                                             r"d\(1\) = 33554432 is more than 16777216"):
            call()
    assert rss_bytes() - rss0 < 64 << 20


@pytest.mark.parametrize("fn", ["gradient", "error", "fit"])
@pytest.mark.parametrize("value, exc, pattern", [
    (0, ValueError, r"num_threads must be a positive or negative integer or None, got 0"),
    (np.int64(0), ValueError, r"num_threads must be a positive or negative integer or None, "
                              r"got 0"),
    (2.0, TypeError, r"num_threads must be an integer or None, got 2.0"),
    # NumPy scalars are shown by value and type, the same on NumPy 1.x (repr 2.0) and 2.x
    (np.float64(2), TypeError,
     r"num_threads must be an integer or None, got 2.0 \(numpy.float64\)"),
    ("2", TypeError, r"num_threads must be an integer or None, got '2'"),
    ([2], TypeError, r"num_threads must be an integer or None, got \[2\]"),
    (2j, TypeError, r"num_threads must be an integer or None, got 2j"),
    (np.bool_(True), TypeError, r"num_threads must be an integer or None, got True \(numpy.bool"),
])
def test_bad_num_threads_everywhere(fn, value, exc, pattern):
    weights, X, y = make_problem([3, 4, 1], 10)
    raises_unchanged(exc, pattern, getattr(fastbp, fn), weights, X, y, num_threads=value)


def os_threads():
    """Threads of this process as the OS sees them (OpenMP's included), or 0 where unknown."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 0


@pytest.mark.parametrize("value", [1025, 10 ** 6, 2 ** 70, np.int64(2 ** 40), np.uint64(2 ** 63)])
def test_absurd_num_threads_are_clamped_with_a_warning(value):
    """Clamped to the usable cores with a RuntimeWarning, for gradient, error and fit: the same
    results, and no more OS threads than cores (not thousands)."""
    weights, X, y = make_problem([8, 32, 32, 1], 3000)
    e, g = fastbp.gradient(weights, X, y, num_threads=None)
    started = os_threads()
    for fn in (fastbp.gradient, fastbp.error):
        with pytest.warns(RuntimeWarning, match=r"num_threads=\d+ is more than 1024; using \d+, "
                                                r"the number of usable cores"):
            result = fn(weights, X, y, num_threads=value)
        if fn is fastbp.gradient:
            assert result[0] == e and bitwise_equal(result[1], g)
        else:
            assert result == fastbp.error(weights, X, y)
    w = copies(weights)
    with pytest.warns(RuntimeWarning, match=r"num_threads=\d+ is more than 1024"):
        fastbp.fit(w, X, y, method="gd", epochs=2, num_threads=value)
    assert os_threads() <= started + usable_cores()


@pytest.mark.parametrize("value", [-1, -2, -1000, -(2 ** 70)])
def test_negative_num_threads_count_back_silently(value):
    weights, X, y = make_problem([8, 32, 32, 1], 3000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        e, g = fastbp.gradient(weights, X, y, num_threads=value)
    e1, g1 = fastbp.gradient(weights, X, y, num_threads=1)
    assert e == e1 and bitwise_equal(g, g1)


def test_float64_data_that_overflows_float32_is_refused():
    """A float32 network given float64 data beyond float32's range: ValueError naming the entry and
    its value (not "inf", which the user never wrote), and no NumPy overflow warning."""
    weights = fastbp.init_weights([2, 3, 1], dtype="float32")
    X = np.array([[1e39, 0.0], [0.0, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        raises_unchanged(ValueError, r"X\[0, 0\] = 1e\+39 does not fit in float32", fastbp.gradient,
                         weights, X, np.zeros(2))
        raises_unchanged(ValueError, r"y\[1, 0\] = -1e\+40 does not fit in float32",
                         fastbp.gradient, weights, X[1:].repeat(2, 0), np.array([0.0, -1e40]))


# ================================================================================================
