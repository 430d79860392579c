"""Every bad argument gets a clear exception naming it, and leaves the caller's arrays as they
were."""
import re

import numpy as np
import pytest

import fastbp
from _helpers import assert_unchanged, copies, make_problem, raises_unchanged
from fastbp import reference

MODULES = pytest.mark.parametrize("module", [fastbp, reference], ids=["fastbp", "reference"])


@pytest.fixture
def good():
    return make_problem([3, 10, 2], 20)


@MODULES
def test_weights_wrong_shape_names_layer_and_expected_shape(module):
    weights, X, y = make_problem([3, 10, 2], 20)
    weights[1] = np.zeros((5, 2))
    msg = re.escape("weights[1] has shape (5, 2) but layer 2 needs (11, 2) for d(1) = 10")
    raises_unchanged(ValueError, msg, module.gradient, weights, X, y)


@MODULES
@pytest.mark.parametrize("bad, exc, pattern", [
    ("not a list", TypeError, r"weights must be a list"),
    ([], ValueError, r"at least one layer"),
    ([np.zeros(4)], ValueError, r"weights\[0\] must be 2-D"),
    ([np.zeros((4, 0))], ValueError, r"layer 1 needs at least one unit"),
    ([np.zeros((1, 3))], ValueError, r"at least 2 rows"),
    ([np.zeros((4, 3), dtype=bool)], TypeError, r"weights\[0\] must hold real numbers"),
    ([np.zeros((4, 3), dtype=complex)], TypeError, r"weights\[0\] must hold real numbers"),
    ([np.zeros((4, 3), dtype=np.float16)], TypeError, r"float32 or float64"),
    ([np.array([["a"] * 3] * 4)], TypeError, r"weights\[0\] must hold real numbers"),
    ([np.zeros((4, 3), np.float32), np.zeros((4, 1))], ValueError, r"mix float32 and float64"),
])
def test_bad_weights(module, bad, exc, pattern):
    _, X, y = make_problem([3, 3, 1], 5)
    before = copies(bad) if isinstance(bad, list) else None
    with pytest.raises(exc, match=pattern):
        module.gradient(bad, X, y[:, :1])
    if before:
        assert_unchanged(before, bad)


@MODULES
@pytest.mark.parametrize("where", ["weights", "X", "y"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused(module, where, value):
    weights, X, y = make_problem([3, 10, 2], 20)
    if where == "weights":
        weights[1][4, 1] = value
        pattern = r"weights\[1\] must be finite, but weights\[1\]\[4, 1\] = "
    elif where == "X":
        X[7, 2] = value
        pattern = r"X must be finite, but X\[7, 2\] = "
    else:
        y[3, 0] = value
        pattern = r"y must be finite, but y\[3, 0\] = "
    raises_unchanged(ValueError, pattern, module.gradient, weights, X, y)
    for fn in (module.error,):
        raises_unchanged(ValueError, pattern, fn, weights, X, y)


@MODULES
@pytest.mark.parametrize("X_shape, pattern", [
    ((20, 4), r"X must have shape \(N, 3\) for d\(0\) = 3, got shape \(20, 4\)"),
    ((20,), r"X must have shape \(N, 3\) for d\(0\) = 3, got shape \(20,\)"),
    ((0, 3), r"X holds no samples \(N = 0\)"),
    ((2, 20, 3), r"X must have shape \(N, 3\)"),
])
def test_bad_X_shape(module, X_shape, pattern, good):
    weights, _, y = good
    X = np.zeros(X_shape)
    raises_unchanged(ValueError, pattern, module.gradient, weights, X, y)


@MODULES
@pytest.mark.parametrize("y_shape, pattern", [
    ((20, 3), r"y must have shape \(20, 2\) for d\(L\) = 2, got shape \(20, 3\)"),
    ((20,), r"y must have shape \(20, 2\) for d\(L\) = 2, got shape \(20,\)"),
    ((19, 2), r"y has 19 rows but X has 20 samples"),
])
def test_bad_y_shape(module, y_shape, pattern, good):
    weights, X, _ = good
    raises_unchanged(ValueError, pattern, module.gradient, weights, X, np.zeros(y_shape))


@MODULES
@pytest.mark.parametrize("X", [np.zeros((20, 3), bool), np.zeros((20, 3), complex),
                               np.array([["x"] * 3] * 20), np.array([[None] * 3] * 20)])
def test_non_numeric_X_is_a_type_error(module, X, good):
    weights, _, y = good
    raises_unchanged(TypeError, r"X must hold real numbers", module.gradient, weights, X, y)


@MODULES
def test_ragged_X_is_a_type_error(module, good):
    weights, _, y = good
    with pytest.raises(TypeError, match=r"X must be an array of real numbers"):
        module.gradient(weights, [[1, 2, 3], [1, 2]], y[:2])


@MODULES
@pytest.mark.parametrize("kw, exc, pattern", [
    ({"output": "relu"}, ValueError,
     r"output must be one of 'tanh', 'linear', 'logistic', 'softmax', 'poisson', got 'relu'"),
    ({"num_threads": 0}, ValueError, r"num_threads must be .* got 0"),
    ({"num_threads": 1.5}, TypeError, r"num_threads must be an integer or None, got 1.5"),
    ({"num_threads": True}, TypeError, r"num_threads must be an integer or None, got True"),
    ({"reduction": "max"}, ValueError, r"reduction must be 'mean' or 'sum', got 'max'"),
    ({"accumulate": True}, ValueError, r"accumulate=True needs out="),
])
def test_bad_options(module, kw, exc, pattern, good):
    weights, X, y = good
    raises_unchanged(exc, pattern, module.gradient, weights, X, y, **kw)


@MODULES
@pytest.mark.parametrize("kw, exc, pattern", [
    ({"num_threads": 0}, ValueError, r"num_threads must be .* got 0"),
    ({"num_threads": 1.5}, TypeError, r"num_threads must be an integer or None, got 1.5"),
    ({"reduction": "max"}, ValueError, r"reduction must be 'mean' or 'sum', got 'max'"),
    ({"reduction": None}, ValueError, r"reduction must be 'mean' or 'sum', got None"),
])
def test_bad_options_of_error_and_forward(module, kw, exc, pattern, good):
    weights, X, y = good
    raises_unchanged(exc, pattern, module.error, weights, X, y, **kw)
    if "num_threads" in kw:
        raises_unchanged(exc, pattern, module.forward, weights, X, **kw)


@MODULES
def test_bad_out(module, good):
    weights, X, y = good
    ok = [np.full(w.shape, 7.0) for w in weights]
    cases = [
        ("nope", TypeError, r"out must be a list"),
        (ok[:1], ValueError, r"out must hold 2 arrays \(one per layer\), got 1"),
        ([ok[0], np.zeros((3, 3))], ValueError,
         r"out\[1\] must have shape \(11, 2\), got \(3, 3\)"),
        ([ok[0], np.zeros((11, 2), np.float32)], TypeError, r"out\[1\] must have dtype float64"),
    ]
    ro = [o.copy() for o in ok]
    ro[0].flags.writeable = False
    cases.append((ro, ValueError, r"out\[0\] is read-only"))
    for out, exc, pattern in cases:
        raises_unchanged(exc, pattern, module.gradient, weights, X, y, out=out)
    # a call failing on another argument leaves `out` untouched too
    raises_unchanged(ValueError, r"X must have shape", module.gradient, weights, X[:, :2], y,
                     out=ok, accumulate=True)
    assert all((o == 7.0).all() for o in ok)


@MODULES
def test_bad_forward_and_backprop(module, good):
    weights, X, y = good
    with pytest.raises(ValueError, match=r"X must have shape \(N, 3\)"):
        module.forward(weights, X[:, :2])
    with pytest.raises(ValueError, match=r"output must be"):
        module.forward(weights, X, output="sigmoid")
    with pytest.raises(ValueError,
                       match=r"x must have shape \(3,\) for d\(0\) = 3, got shape \(2,\)"):
        module.backprop(weights, X[0, :2], y[0])
    with pytest.raises(ValueError,
                       match=r"y must have shape \(2,\) for d\(L\) = 2, got shape \(3,\)"):
        module.backprop(weights, X[0], np.zeros(3))
    with pytest.raises(ValueError, match=r"x must be finite"):
        module.backprop(weights, [np.nan, 0, 0], y[0])


@pytest.mark.parametrize("widths, exc, pattern", [
    ([3], ValueError, r"at least two layers"),
    ([3, 0, 1], ValueError, r"widths\[1\] = d\(1\) must be at least 1, got 0"),
    ([3, 2.5, 1], TypeError, r"widths\[1\] must be an integer"),
    ("32", TypeError, r"widths must be a sequence"),
])
def test_bad_widths(widths, exc, pattern):
    with pytest.raises(exc, match=pattern):
        fastbp.init_weights(widths)
    with pytest.raises(exc, match=pattern):
        fastbp.Network(widths)


def test_bad_dtype_and_seed():
    with pytest.raises(ValueError, match=r"dtype must be 'float32' or 'float64', got int64"):
        fastbp.init_weights([2, 1], dtype="int64")
    with pytest.raises(TypeError, match=r"seed must be an integer"):
        fastbp.init_weights([2, 1], seed="abc")


def test_absurd_thread_count_is_clamped_with_a_warning(good):
    weights, X, y = good
    with pytest.warns(RuntimeWarning, match=r"num_threads=100000 is more than"):
        e, _ = fastbp.gradient(weights, X, y, num_threads=100000)
    assert e == fastbp.gradient(weights, X, y, num_threads=1)[0]


def test_negative_thread_count_counts_back(good):
    weights, X, y = good
    e1 = fastbp.gradient(weights, X, y, num_threads=1)[0]
    assert fastbp.gradient(weights, X, y, num_threads=-1)[0] == e1
    assert fastbp.gradient(weights, X, y, num_threads=-100)[0] == e1


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_found_anywhere_in_a_large_array(dtype, value):
    """The finiteness screen works in blocks of values: a bad value at a block edge, inside one or
    in the tail is found, and named where it is."""
    weights, X, y = make_problem([7, 3, 1], 1000, dtype=dtype)
    for flat in (0, 63, 64, 65, 4095, X.size - 1):
        bad = X.copy()
        bad.flat[flat] = value
        i, j = np.unravel_index(flat, X.shape)
        with pytest.raises(ValueError, match=rf"X must be finite, but X\[{i}, {j}\] = "):
            fastbp.gradient(weights, bad, y)


def test_float64_data_beyond_float32_is_named_not_called_infinite():
    weights, X, y = make_problem([3, 4, 1], 10, dtype="float32")
    big = X.astype(np.float64)
    big[2, 1] = 1e39
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # no NumPy overflow warning leaks out either
        with pytest.raises(ValueError, match=r"X\[2, 1\] = 1e\+39 does not fit in float32"):
            fastbp.gradient(weights, big, y)
    nan = X.astype(np.float64)
    nan[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"X must be finite, but X\[0, 0\] = nan"):
        fastbp.gradient(weights, nan, y)
