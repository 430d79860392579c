"""fit with every activation and output (issue 11's units): each method trains each pairing, and
sample weights weight what every method minimises."""
import numpy as np
import pytest

import fastbp
from _helpers import bitwise_equal, copies

METHODS = ["gd", "sgd", "adam", "variable-lr", "steepest", "cg", "rprop", "lbfgs"]
SETTINGS = {"gd": dict(learning_rate=0.5, momentum=0.5), "sgd": dict(learning_rate=0.1,
                                                                     batch_size=8),
            "adam": dict(learning_rate=0.02, batch_size=8), "variable-lr": {}, "steepest": {},
            "cg": {}, "rprop": {}, "lbfgs": {}}


def blobs(n_per=30, seed=0):
    """Three Gaussian blobs in the plane, one-hot targets."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 1.5], [-1.3, -0.75], [1.3, -0.75]])
    label = np.repeat(np.arange(3), n_per)
    X = centres[label] + 0.45 * rng.standard_normal((3 * n_per, 2))
    return X, np.eye(3)[label], label


def multilabel(n=80, seed=1):
    """Two independent labels: x0 > 0 and x0 + x1 > 0.3."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 2))
    return X, np.stack([X[:, 0] > 0, X[:, 0] + X[:, 1] > 0.3], axis=1).astype(float)


def ramp(n=60, seed=2):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 1))
    return X, np.abs(X[:, 0]) + 0.05 * rng.standard_normal(n)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_a_relu_softmax_classifier(method):
    if method == "lbfgs":
        pytest.importorskip("scipy")
    X, Y, label = blobs()
    net = fastbp.Network([2, 8, 3], output="softmax", activation="relu", seed=1)
    h = net.fit(X, Y, method=method, epochs=150, **SETTINGS[method])
    assert h.E_in[-1] < 0.5 * h.start["E_in"]
    accuracy = np.mean(np.argmax(net.predict_proba(X), axis=1) == label)
    assert accuracy >= 0.95                                     # the blobs barely overlap
    assert net.classification_error(X, Y) == pytest.approx(1 - accuracy)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("activation", ["tanh", "logistic"])
def test_every_method_trains_a_multilabel_logistic_output(method, activation):
    if method == "lbfgs":
        pytest.importorskip("scipy")
    X, Y = multilabel()
    net = fastbp.Network([2, 6, 2], output="logistic", activation=activation, seed=2)
    h = net.fit(X, Y, method=method, epochs=200, **SETTINGS[method])
    assert h.E_in[-1] < 0.6 * h.start["E_in"]
    assert net.classification_error(X, Y) <= 0.15


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("activation", ["relu", "identity"])
def test_every_method_trains_relu_regression(method, activation):
    if method == "lbfgs":
        pytest.importorskip("scipy")
    X, y = ramp()
    net = fastbp.Network([1, 10, 1], output="linear", activation=activation, seed=3)
    settings = dict(learning_rate=0.05, momentum=0.5) if method == "gd" else SETTINGS[method]
    h = net.fit(X, y, method=method, epochs=150, **settings)
    assert h.E_in[-1] < 0.5 * h.start["E_in"]
    if activation == "relu":                       # |x| is two ReLU pieces; identity is a line
        assert h.E_in[-1] < 0.05


# (not the line-search methods: weights and repetition round E_in differently in its last bits, and
# a line search's comparisons of nearly equal errors then take other branches)
@pytest.mark.parametrize("method", ["gd", "rprop", "lbfgs"])
def test_zero_weights_drop_samples_and_integer_weights_repeat_them(method):
    if method == "lbfgs":
        pytest.importorskip("scipy")
    X, Y, _ = blobs(10)
    counts = np.arange(len(X)) % 3                  # 0, 1 or 2 copies of each sample
    w0 = fastbp.init_weights([2, 5, 3], seed=4)
    weighted, repeated, dropped = copies(w0), copies(w0), copies(w0)
    h1 = fastbp.fit(weighted, X, Y, output="softmax", activation="relu", method=method,
                    epochs=10, sample_weight=counts)
    h2 = fastbp.fit(repeated, np.repeat(X, counts, 0), np.repeat(Y, counts, 0), output="softmax",
                    activation="relu", method=method, epochs=10)
    for a, b in zip(weighted, repeated):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(h1.E_in, h2.E_in, rtol=1e-10)
    keep = counts > 0
    fastbp.fit(dropped, X[keep], Y[keep], output="softmax", activation="relu", method=method,
               epochs=10, sample_weight=counts[keep])
    for a, b in zip(weighted, dropped):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_uniform_weights_are_no_weights_and_sgd_batches_are_weighted():
    X, Y, _ = blobs(10)
    w0 = fastbp.init_weights([2, 5, 3], seed=4)
    a, b = copies(w0), copies(w0)
    fastbp.fit(a, X, Y, output="softmax", activation="relu", method="adam", epochs=3,
               batch_size=7, learning_rate=0.01, sample_weight=np.full(len(X), 2.5))
    fastbp.fit(b, X, Y, output="softmax", activation="relu", method="adam", epochs=3,
               batch_size=7, learning_rate=0.01)
    for x, z in zip(a, b):
        np.testing.assert_allclose(x, z, rtol=1e-12, atol=1e-15)
    # one sgd step on a batch: its weighted mean gradient
    sw = np.linspace(0.5, 2, len(X))
    c = copies(w0)
    fastbp.fit(c, X, Y, output="softmax", activation="relu", method="sgd", epochs=1,
               batch_size=len(X), learning_rate=0.1, shuffle=False, sample_weight=sw)
    _, g = fastbp.gradient(w0, X, Y, output="softmax", activation="relu", sample_weight=sw)
    # (the kernel's epoch adds the batch's weights one by one, fastbp.gradient pairwise)
    for x, z in zip(c, [w - 0.1 * gl for w, gl in zip(w0, g)]):
        np.testing.assert_allclose(x, z, rtol=1e-14, atol=1e-16)


def test_validation_fraction_keeps_the_held_out_weights():
    X, Y, _ = blobs(10)
    sw = np.linspace(0.5, 2, len(X))
    w = fastbp.init_weights([2, 5, 3], seed=4)
    h = fastbp.fit(w, X, Y, output="softmax", activation="relu", method="gd", epochs=2,
                   validation_fraction=0.3, seed=5, sample_weight=sw)
    perm = np.random.default_rng(5).permutation(len(X))
    val = np.sort(perm[:9])
    assert h.E_val[-1] == fastbp.error(w, X[val], Y[val], output="softmax", activation="relu",
                                       sample_weight=sw[val])


def test_bad_units_and_weights_change_nothing():
    X, Y, _ = blobs(5)
    w = fastbp.init_weights([2, 4, 3], seed=0)
    before = copies(w)
    cases = [
        (ValueError, r"activation must be one of", dict(activation="gelu")),
        (ValueError, r"y must hold probabilities in \[0, 1\] for output=.softmax.",
         dict(y=Y * 2)),
        (ValueError, r"sample_weight", dict(sample_weight=-np.ones(len(X)))),
        (ValueError, r"sample_weight", dict(sample_weight=np.ones(len(X) - 1))),
        (ValueError, r"sample_weight", dict(sample_weight=np.zeros(len(X)))),
        (ValueError, r"validation_data\[1\]", dict(validation_data=(X, Y * 3))),
    ]
    for exc, pattern, kw in cases:
        y = kw.pop("y", Y)
        with pytest.raises(exc, match=pattern):
            fastbp.fit(w, X, y, output="softmax", method="gd", **kw)
        assert bitwise_equal(w, before)
    with pytest.raises(TypeError, match="a Network's activation is fixed"):
        fastbp.Network([2, 4, 3], output="softmax").fit(X, Y, activation="relu")
