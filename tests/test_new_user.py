"""The public API walked as a new user walks it: the natural mistakes (a pandas DataFrame with a
column that is not numeric, a sparse matrix where only X may be sparse, a masked array, a
transposed y, class labels for a softmax network, a Network where weights are expected and the
reverse, an option named as another library names it) get a message that names the cause and
the way out, and change nothing."""
import re

import numpy as np
import pytest

import fastbp
from _helpers import bitwise_equal, copies, make_problem, raises_unchanged
from fastbp import reference

MODULES = pytest.mark.parametrize("module", [fastbp, reference], ids=["fastbp", "reference"])


@pytest.fixture
def problem():
    return make_problem([3, 4, 1], 30)


# ------------------------------------------------------------------------------------------------
# Sparse input: taken as it is (tests/test_sparse.py has the arithmetic), and refused by name
# where only dense arrays mean something

@MODULES
@pytest.mark.parametrize("kind", ["csr_matrix", "csc_matrix", "coo_matrix", "csr_array"])
def test_sparse_X_is_taken(module, kind, problem):
    sparse = pytest.importorskip("scipy.sparse")
    weights, X, y = problem
    Xs = getattr(sparse, kind)(X)
    before = Xs.copy()
    E, g = module.gradient(weights, Xs, y)
    E0, g0 = module.gradient(weights, X, y)
    assert E == pytest.approx(E0, rel=1e-12)
    for a, b in zip(g, g0):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(module.forward(weights, Xs), module.forward(weights, X),
                               rtol=1e-12)
    assert (Xs != before).nnz == 0


def test_sparse_input_everywhere_is_taken(problem):
    sparse = pytest.importorskip("scipy.sparse")
    weights, X, y = problem
    Xs, ys = sparse.csr_matrix(X), sparse.csr_matrix(y)
    # a sparse y is made dense (N x d(L) targets are small)
    assert fastbp.gradient(weights, X, ys)[0] == fastbp.gradient(weights, X, y)[0]
    net = fastbp.Network([3, 4, 1])
    net.fit(Xs, y, epochs=1)
    assert net.predict(Xs).shape == (30, 1)
    assert fastbp.check_gradient(weights, Xs, y) < 1e-6
    w = copies(weights)
    fastbp.fit(w, X, y, epochs=1, validation_data=(Xs, y))
    # only X may be sparse: sample weights and weights are refused by name, nothing written
    raises_unchanged(TypeError, r"sample_weight must be a dense array, got a scipy\.sparse",
                     fastbp.gradient, weights, Xs, y, sample_weight=sparse.csr_matrix(
                         np.ones((1, 30))))


# ------------------------------------------------------------------------------------------------
# pandas

def test_numeric_dataframe_and_series_are_accepted(problem):
    pd = pytest.importorskip("pandas")
    weights, X, y = problem
    E, g = fastbp.gradient(weights, pd.DataFrame(X, columns=list("abc")), pd.Series(y[:, 0]))
    E0, g0 = fastbp.gradient(weights, X, y)
    assert E == E0 and bitwise_equal(g, g0)


def test_dataframe_with_a_text_column_names_the_column(problem):
    pd = pytest.importorskip("pandas")
    weights, X, y = problem
    df = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "colour": ["red"] * 30})
    raises_unchanged(TypeError, r"X must hold real numbers .* got dtype object: the DataFrame's "
                                r"column 'colour' \(.*\) is not numeric; convert or drop it",
                     fastbp.gradient, weights, df, y)


def test_dataframe_with_missing_values_in_nullable_columns(problem):
    pd = pytest.importorskip("pandas")
    weights, X, y = problem
    df = pd.DataFrame((X * 10).round()).astype("Int64")
    df.iloc[3, 1] = pd.NA
    raises_unchanged(TypeError, r"columns 0 \(Int64\), 1 \(Int64\), 2 \(Int64\) are not "
                                r"numeric; .* fill the missing values, then "
                                r"\.to_numpy\(dtype=float\)",
                     fastbp.gradient, weights, df, y)
    # the way out the message names
    filled = df.fillna(0).to_numpy(dtype=float)
    assert np.isfinite(fastbp.gradient(weights, filled, y)[0])


def test_object_array_names_the_entry_that_is_not_a_number(problem):
    weights, X, y = problem
    bad = X.astype(object)
    bad[2, 1] = "1.5"
    raises_unchanged(TypeError, re.escape("X must hold real numbers (integer or float), got "
                                          "dtype object (X[2, 1] = '1.5', of type str, is not a "
                                          "real number)"), fastbp.forward, weights, bad)
    raises_unchanged(TypeError, re.escape("np.asarray(X, dtype=float)"), fastbp.forward, weights,
                     X.astype(object))


def test_boolean_input_says_how_to_convert(problem):
    weights, X, y = problem
    raises_unchanged(TypeError, re.escape("X must hold real numbers, got a boolean array "
                                          "(convert it to numbers first, e.g. X.astype(float))"),
                     fastbp.forward, weights, X > 0)


# ------------------------------------------------------------------------------------------------
# Masked arrays: the values under the mask were read silently

def test_masked_values_are_refused(problem):
    weights, X, y = problem
    masked = np.ma.masked_array(X, mask=np.zeros_like(X, dtype=bool))
    masked[4, 2] = np.ma.masked
    raises_unchanged(ValueError, r"X must hold no missing values, got a masked array with 1 "
                                 r"masked entry .* fill them \(X\.filled\(\.\.\.\)\)",
                     fastbp.gradient, weights, masked, y)
    # a masked array with nothing masked is its data
    E, _ = fastbp.gradient(weights, np.ma.masked_array(X), y)
    assert E == fastbp.gradient(weights, X, y)[0]


# ------------------------------------------------------------------------------------------------
# Shapes: a transposed X or y, a 1-D X for one feature, class labels for a softmax network

def test_transposed_y_and_X_are_suggested(problem):
    weights, X, y = problem
    raises_unchanged(ValueError, re.escape("y must have shape (30, 1) or (30,) for d(L) = 1, got "
                                           "shape (1, 30) (one row per sample: is it transposed? "
                                           "y.T has shape (30, 1))"),
                     fastbp.gradient, weights, X, y.T)
    raises_unchanged(ValueError, re.escape("X must have shape (N, 3) for d(0) = 3, got shape "
                                           "(3, 30) (one row per sample: is it transposed? X.T "
                                           "has shape (N, 3))"),
                     fastbp.gradient, weights, X.T, y)


def test_one_feature_as_a_1d_array():
    weights = fastbp.init_weights([1, 3, 1], seed=0)
    x = np.linspace(-1, 1, 10)
    raises_unchanged(ValueError, re.escape("got shape (10,) (one feature per row: "
                                           "X.reshape(-1, 1))"), fastbp.forward, weights, x)
    assert fastbp.forward(weights, x.reshape(-1, 1)).shape == (10, 1)


def test_class_labels_for_a_softmax_network():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 2))
    labels = np.arange(12) % 3
    net = fastbp.Network([2, 4, 3], output="softmax")
    before = copies(net.weights)
    with pytest.raises(ValueError, match=re.escape("got shape (12,) (class labels 0..2? give one "
                                                   "column per class: np.eye(3)[y] for 0/1 "
                                                   "targets")):
        net.fit(X, labels, epochs=1)
    assert bitwise_equal(net.weights, before)
    net.fit(X, np.eye(3)[labels], epochs=1)        # the way out the message names


# ------------------------------------------------------------------------------------------------
# A Network where weights are expected, and the reverse

@pytest.mark.parametrize("call", ["gradient", "error", "forward", "backprop", "fit",
                                  "check_gradient"])
def test_network_where_weights_are_expected(call, problem):
    _, X, y = problem
    net = fastbp.Network([3, 4, 1])
    args = (X[0], y[0]) if call == "backprop" else (X,) if call == "forward" else (X, y)
    with pytest.raises(TypeError, match=r"weights must be a list of 2-D arrays W\(1\), \.\.\., "
                                        r"W\(L\), got Network \(a Network holds its weights "
                                        r"with its units: call its own method"):
        getattr(fastbp, call)(net, *args)


def test_weights_where_widths_are_expected(problem):
    weights, _, _ = problem
    with pytest.raises(TypeError, match=re.escape("widths[0] must be an integer, got an array "
                                                  "of shape (4, 4): widths are the layer sizes "
                                                  "[d(0), ..., d(L)] (to start from weight "
                                                  "arrays you have, pass them as weights=: "
                                                  "Network(widths, weights=weights))")):
        fastbp.Network(weights)
    net = fastbp.Network([3, 4, 1], weights=weights)     # the way out the message names
    assert bitwise_equal(net.weights, weights)
    with pytest.raises(TypeError, match=r"widths\[0\] must be an integer, got an array"):
        fastbp.init_weights(weights)
    with pytest.raises(TypeError, match=r"got Network \(a Network holds its weights"):
        fastbp.Network([3, 4, 1], weights=fastbp.Network([3, 4, 1]))


# ------------------------------------------------------------------------------------------------
# Options named as other libraries name them

@pytest.mark.parametrize("given, meant", [("lr", "learning_rate"), ("max_iter", "epochs"),
                                          ("random_state", "seed"), ("verbose", "progress"),
                                          ("learning_rat", "learning_rate"),
                                          ("batchsize", "batch_size")])
def test_unknown_option_suggests_fastbps_name(given, meant, problem):
    weights, X, y = problem
    raises_unchanged(TypeError, re.escape(f"fit() got an unexpected keyword argument {given!r}; "
                                          f"did you mean {meant!r}?"),
                     fastbp.fit, weights, X, y, **{given: 1})


def test_unknown_option_far_from_any_name_has_no_suggestion(problem):
    weights, X, y = problem
    with pytest.raises(TypeError) as info:
        fastbp.fit(weights, X, y, zzzz=1)
    assert str(info.value) == "fit() got an unexpected keyword argument 'zzzz'"


def test_text_labels_point_to_the_classifier(problem):
    weights, X, _ = problem
    labels = np.array(["cat", "dog"] * 15)
    raises_unchanged(TypeError, re.escape("y must hold real numbers (integer or float), got dtype "
                                          "<U3 (text: class labels? fastbp's functions and "
                                          "Network need numbers, e.g. one column per class; "
                                          "fastbp.sklearn.MLPClassifier takes labels of any "
                                          "type)"), fastbp.gradient, weights, X, labels)


def test_one_sample_as_a_1d_array(problem):
    weights, X, _ = problem
    net = fastbp.Network([3, 4, 1], weights=weights)
    with pytest.raises(ValueError, match=re.escape("got shape (3,) (one sample? "
                                                   "X.reshape(1, -1))")):
        net.predict(X[0])
    assert net.predict(X[0].reshape(1, -1)).shape == (1, 1)


def test_validation_pair_of_different_lengths_names_both(problem):
    weights, X, y = problem
    raises_unchanged(ValueError, re.escape("validation_data[1] has 10 rows but validation_data[0] "
                                           "has 30 samples"),
                     fastbp.fit, weights, X, y, validation_data=(X, y[:10]))


@pytest.mark.parametrize("name, given, meant", [
    ("activation", "sigmoid", "logistic"), ("activation", "linear", "identity"),
    ("activation", "ReLU", "relu"), ("output", "sigmoid", "logistic"),
    ("output", "identity", "linear"), ("output", "Softmax", "softmax")])
def test_other_names_for_the_units_are_suggested(name, given, meant):
    widths = [2, 3, 3] if meant == "softmax" else [2, 3, 1]
    with pytest.raises(ValueError, match=re.escape(f"{name} must be one of") + ".*"
                       + re.escape(f"got {given!r} (did you mean {meant!r}?)")):
        fastbp.Network(widths, **{name: given})
    fastbp.Network(widths, **{name: meant})               # the way out the message names
