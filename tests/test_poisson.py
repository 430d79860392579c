"""output="poisson": x(L) = exp(s(L)), the Poisson deviance halved (scikit-learn's
MLPRegressor(loss="poisson")), delta(L) = x(L) - y. Against the reference, finite differences and
PyTorch's PoissonNLLLoss(log_input=True) autograd (|s| up to 50), on every activation, both
dtypes, 1 and 2 threads (bitwise), every training method; bad targets refused."""
import numpy as np
import pytest

import fastbp
from _helpers import bitwise_equal
from fastbp import reference

ACTIVATIONS = ["tanh", "relu", "logistic", "identity"]
SHAPES = [[3, 5, 2], [4, 1], [2, 3, 3, 1], [1, 1, 1], [6, 9, 4]]


def problem(widths, n, dtype, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    w = fastbp.init_weights(widths, seed=seed, dtype=dtype)
    w[-1] *= scale
    X = rng.standard_normal((n, widths[0])).astype(dtype)
    y = rng.poisson(2.0, (n, widths[-1])).astype(dtype)
    y[::7] = 0                  # zero counts: y log y = 0
    return w, X, y


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-12), ("float32", 1e-5)])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("widths", SHAPES)
def test_poisson_matches_the_reference_on_any_thread_count(widths, activation, dtype, tol):
    w, X, y = problem(widths, 1337, dtype)
    sw = np.random.default_rng(2).random(len(X)).astype(dtype)
    w64 = [a.astype(np.float64) for a in w]
    for weights in (None, sw):
        E_ref, g_ref = reference.gradient(w64, X.astype(np.float64), y.astype(np.float64),
                                          output="poisson", activation=activation,
                                          sample_weight=None if weights is None
                                          else weights.astype(np.float64))
        results = [fastbp.gradient(w, X, y, output="poisson", activation=activation,
                                   num_threads=t, sample_weight=weights) for t in (1, 2)]
        (E, g), (E2, g2) = results
        assert E == E2 and bitwise_equal(g, g2)
        assert abs(E - E_ref) <= tol * abs(E_ref)
        for a, b in zip(g, g_ref):
            assert np.max(np.abs(a - b)) <= tol * max(np.max(np.abs(b)), 1e-300)
        out = fastbp.forward(w, X, output="poisson", activation=activation)
        ref = reference.forward(w64, X.astype(np.float64), output="poisson",
                                activation=activation)
        np.testing.assert_allclose(out, ref, rtol=tol * 10)
        assert (out > 0).all()


def test_poisson_error_is_the_deviance_and_zero_at_a_perfect_fit():
    w, X, _ = problem([3, 4, 2], 200, "float64")
    y = fastbp.forward(w, X, output="poisson")
    assert abs(fastbp.error(w, X, y, output="poisson")) < 1e-13
    # y = 0 counts only x: e = x
    zeros = np.zeros_like(y)
    np.testing.assert_allclose(fastbp.error(w, X, zeros, output="poisson"),
                               y.sum(axis=1).mean(), rtol=1e-13)


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-12), ("float32", 1e-5)])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_poisson_gradient_equals_torch_poisson_nll_autograd(activation, dtype, tol):
    """PyTorch's PoissonNLLLoss(log_input=True): exp(s) - y s per output, which differs from the
    deviance by a constant in the weights, so the gradients agree; last-layer weights scaled so
    that |s(L)| reaches 50."""
    torch = pytest.importorskip("torch")
    widths = [4, 6, 2]
    w, X, y = problem(widths, 300, dtype, seed=3, scale=12.0)
    s_L = np.log(fastbp.forward([a.astype(np.float64) for a in w], X.astype(np.float64),
                                output="poisson", activation=activation))
    w[-1] *= np.float64(50.0 / np.max(np.abs(s_L)))
    s_L = np.log(fastbp.forward([a.astype(np.float64) for a in w], X.astype(np.float64),
                                output="poisson", activation=activation))
    assert 49 < np.max(np.abs(s_L)) <= 50.001
    tdt = torch.float64 if dtype == "float64" else torch.float32
    tw = [torch.tensor(a, dtype=tdt, requires_grad=True) for a in w]
    h = torch.tensor(X, dtype=tdt)
    act = torch.tanh if activation == "tanh" else torch.relu
    for l, W in enumerate(tw):
        s = h @ W[1:] + W[0]
        h = act(s) if l < len(tw) - 1 else s
    loss = torch.nn.PoissonNLLLoss(log_input=True, reduction="sum")(h, torch.tensor(y, dtype=tdt))
    (loss / len(X)).backward()
    _, g = fastbp.gradient(w, X, y, output="poisson", activation=activation)
    for a, W in zip(g, tw):
        b = W.grad.numpy()
        assert np.max(np.abs(a - b)) <= tol * np.max(np.abs(b))


def test_poisson_finite_differences():
    w, X, y = problem([3, 4, 1], 50, "float64", seed=4)
    assert fastbp.check_gradient(w, X, y, output="poisson") < 1e-6


@pytest.mark.parametrize("method", ["gd", "sgd", "adam", "variable-lr", "rprop", "cg",
                                    "steepest"])
def test_every_method_learns_a_poisson_regression(method):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 3))
    y = rng.poisson(np.exp(0.5 * X[:, :1] - 0.3 * X[:, 1:2]))
    w = fastbp.init_weights([3, 6, 1], seed=1)
    before = fastbp.error(w, X, y, output="poisson")
    opts = {"learning_rate": 0.05} if method in ("gd", "sgd", "adam") else {}
    hist = fastbp.fit(w, X, y, output="poisson", method=method, epochs=40, **opts)
    assert np.isfinite(hist.E_in[-1]) and hist.E_in[-1] < before


def test_poisson_targets_must_not_be_negative():
    w, X, y = problem([3, 4, 2], 20, "float64")
    y[5, 1] = -1.0
    before = y.copy()
    with pytest.raises(ValueError, match=r"y must be >= 0 for output='poisson'.*y\[5, 1\] = -1.0"):
        fastbp.gradient(w, X, y, output="poisson")
    with pytest.raises(ValueError, match=r">= 0 for output='poisson'"):
        reference.gradient(w, X, y, output="poisson")
    assert bitwise_equal([y], [before])


def test_network_with_a_poisson_output():
    net = fastbp.Network([3, 4, 1], output="poisson", seed=0)
    X = np.random.default_rng(0).standard_normal((10, 3))
    y = np.arange(10.0)
    assert net.score(X, y) == net.error(X, y) > 0
    with pytest.raises(ValueError, match="classification_error needs a classifier's output"):
        net.classification_error(X, y)
