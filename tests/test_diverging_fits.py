"""A fit whose weights overflow (a learning rate far too large) ends as a fit, not with an
exception from its middle: fastbp's own (`Network.fit` with a validation set: the epoch is
dropped, a RuntimeWarning, the last finite weights or, with early stopping, the best ones) and
fastbp.sklearn's (as scikit-learn's: the fit goes on to its stopping rule, the validation scores
NaN, the best weights kept with early stopping, a ValueError at the end without)."""
import warnings

import numpy as np
import pytest

import fastbp
from _helpers import bitwise_equal, copies, regression

DIVERGING = {
    "sgd-nesterov": dict(method="sgd", learning_rate=1e6, momentum=0.9, nesterov=True),
    "adam": dict(method="adam", learning_rate=1e200, batch_size=2),
    "gd": dict(method="gd", learning_rate=1e6),
}


@pytest.mark.parametrize("settings", DIVERGING.values(), ids=DIVERGING.keys())
@pytest.mark.parametrize("validation", ["fraction", "data", "early-stopping"])
def test_network_fit_with_a_validation_set_ends_a_diverging_fit(settings, validation):
    widths, output, X, y = regression()
    X = X * 1e3
    options = {"fraction": dict(validation_fraction=0.25),
               "data": dict(validation_data=(X[:10], y[:10])),
               "early-stopping": dict(validation_fraction=0.25, early_stopping=True,
                                      patience=1000)}[validation]
    net = fastbp.Network(widths, output=output, seed=1)
    seen = []
    with pytest.warns(RuntimeWarning, match="infinite or NaN"):
        h = net.fit(X, y, epochs=100, callback=lambda hist: seen.append(copies(net.weights)),
                    **settings, **options)
    assert h.stop_reason == "diverged" and len(h) < 100
    assert len(h.E_val) == len(h) == len(seen)
    assert all(np.isfinite(w).all() for w in net.weights)
    if validation != "early-stopping":
        assert not seen or bitwise_equal(net.weights, seen[-1])   # the last finite epoch's
    else:                                                         # the best epoch's
        E_val = [h.start["E_val"]] + h.E_val
        assert h.best_epoch == int(np.nanargmin(E_val))
        if h.best_epoch:
            assert bitwise_equal(net.weights, seen[h.best_epoch - 1])


@pytest.mark.parametrize("method", ["steepest", "cg"])
@pytest.mark.parametrize("validation", [{}, dict(validation_fraction=0.25, early_stopping=True)])
def test_a_line_search_from_a_huge_step_ends_the_fit(method, validation):
    """The line search's quadratic fit over a bracket of steps near 1e300 overflows a Python
    float (OverflowError, before): it bisects instead."""
    rng = np.random.default_rng(0)
    X, y = rng.uniform(0, 8, (150, 4)), rng.integers(0, 3, (150, 1)) * 0.5
    net = fastbp.Network([4, 50, 1], output="tanh", activation="relu", seed=0)
    h = net.fit(X, y, method=method, learning_rate=1e300, epochs=5, **validation)
    assert h.stop_reason in ("epochs", "converged", "diverged", "early_stopping")
    assert all(np.isfinite(w).all() for w in net.weights)


sklearn = pytest.importorskip("sklearn")
from sklearn import neural_network as sk  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402

from fastbp import sklearn as fb  # noqa: E402

# scikit-learn's own case (its test_mlp_diverging_loss, for its issue 29504), and two more
SK_DIVERGING = {
    "identity": dict(activation="identity", learning_rate_init=1),
    "relu": dict(activation="relu", learning_rate_init=1),
    "tanh": dict(activation="tanh", learning_rate_init=50),
}


def diverging_pair(kind, settings, **params):
    X, y = load_iris(return_X_y=True)
    ours, theirs = ((fb.MLPRegressor, sk.MLPRegressor) if kind == "regressor"
                    else (fb.MLPClassifier, sk.MLPClassifier))
    params = dict(hidden_layer_sizes=100, solver="sgd", max_iter=20, n_iter_no_change=10,
                  random_state=0, **settings, **params)
    out = []
    for est in ours(**params), theirs(**params):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                est.fit(X, y)
                error = None
            except ValueError as e:
                error = str(e)
        out.append((est, error, {w.category for w in caught}))
    return out


@pytest.mark.parametrize("settings", SK_DIVERGING.values(), ids=SK_DIVERGING.keys())
@pytest.mark.parametrize("kind", ["regressor", "classifier"])
def test_a_diverging_early_stopping_fit_ends_as_scikit_learns(kind, settings):
    (a, error_a, warned_a), (b, error_b, warned_b) = diverging_pair(kind, settings,
                                                                     early_stopping=True)
    assert error_a is None and error_b is None
    assert a.n_iter_ == b.n_iter_ and a.t_ == b.t_
    # the same scores, NaN where scikit-learn's are (its test: a float NaN at the end)
    np.testing.assert_allclose(a.validation_scores_, b.validation_scores_, rtol=1e-9)
    assert all(isinstance(v, float) for v in a.validation_scores_)
    assert a.best_validation_score_ == pytest.approx(b.best_validation_score_, rel=1e-12)
    for x, z in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):   # the best weights
        assert np.isfinite(x).all()
        np.testing.assert_allclose(x, z, rtol=1e-9, atol=1e-12)
    # the loss: non-finite where scikit-learn's is; the same while finite (a regressor's; a
    # classifier's from its second epoch on has saturated probabilities, whose log-loss
    # scikit-learn clips at -log(eps) per sample and fastbp's kernels do not)
    finite = np.isfinite(b.loss_curve_)
    np.testing.assert_array_equal(np.isfinite(a.loss_curve_), finite)
    compared = finite if kind == "regressor" else np.arange(len(finite)) < 1
    np.testing.assert_allclose(np.array(a.loss_curve_)[compared],
                               np.array(b.loss_curve_)[compared], rtol=1e-9)
    assert (ConvergenceWarning in warned_a) == (ConvergenceWarning in warned_b)
    assert (RuntimeWarning in warned_a) == (RuntimeWarning in warned_b)
    X = load_iris().data
    if kind == "regressor":
        np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-9)
    else:
        np.testing.assert_array_equal(a.predict(X), b.predict(X))


def test_a_diverging_fit_without_early_stopping_raises_at_the_end_as_scikit_learns():
    (a, error_a, warned_a), (b, error_b, warned_b) = diverging_pair(
        "regressor", SK_DIVERGING["identity"])
    assert error_a == error_b and error_a.startswith("Solver produced non-finite parameter")
    assert a.n_iter_ == b.n_iter_ == 20 and len(a.loss_curve_) == 20
    assert np.isnan(a.loss_) and np.isnan(b.loss_)
    assert {ConvergenceWarning, RuntimeWarning} <= warned_a
    # the diverged network predicts as scikit-learn's does (NaN), where fastbp's kernels refuse
    # non-finite weights
    X = load_iris().data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pa, pb = a.predict(X), b.predict(X)
    np.testing.assert_array_equal(np.isnan(pa), np.isnan(pb))
