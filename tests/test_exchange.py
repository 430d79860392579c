"""Round trips with scikit-learn: to_sklearn / from_sklearn, skl2onnx on the exported estimator,
skops.

scikit-learn, skl2onnx, skops and onnxruntime are in the `test` extra: these tests run (no skip)
wherever the suite does. PyTorch's round trips are in test_torch.py.
"""
import warnings

import numpy as np
import onnxruntime
import pytest
import skl2onnx
import skops.io
import skops.io.exceptions
from sklearn import neural_network as sk
from sklearn.datasets import make_classification, make_multilabel_classification, make_regression
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from fastbp import sklearn as fb

# ------------------------------------------------------------------------------------------------
# scikit-learn


def regression(n_outputs=1):
    X, y = make_regression(n_samples=60, n_features=5, n_targets=n_outputs, noise=0.1,
                           random_state=0)
    return X / X.std(0), y / y.std(0)


def classification(n_classes):
    return make_classification(n_samples=80, n_features=6, n_informative=4, n_classes=n_classes,
                               random_state=0)


def multilabel():
    X, y = make_multilabel_classification(n_samples=60, n_features=5, n_classes=3,
                                          random_state=0)
    return X / X.std(0), y


PROBLEMS = {"regression": (fb.MLPRegressor, sk.MLPRegressor, regression),
            "regression-2-outputs": (fb.MLPRegressor, sk.MLPRegressor, lambda: regression(2)),
            "binary": (fb.MLPClassifier, sk.MLPClassifier, lambda: classification(2)),
            "4-classes": (fb.MLPClassifier, sk.MLPClassifier, lambda: classification(4)),
            "multilabel": (fb.MLPClassifier, sk.MLPClassifier, multilabel)}
SOLVERS = {
    "sgd": dict(solver="sgd", learning_rate_init=0.05, momentum=0.9),
    "sgd-invscaling": dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.1,
                           power_t=0.3, nesterovs_momentum=False),
    "adam": dict(solver="adam", learning_rate_init=0.01),
    "lbfgs": dict(solver="lbfgs"),
}
# the state a fit leaves (the public fitted attributes, and the private ones partial_fit and
# warm_start read); the optimiser is compared separately
STATE = ["coefs_", "intercepts_", "n_iter_", "t_", "loss_", "loss_curve_", "best_loss_",
         "validation_scores_", "best_validation_score_", "n_outputs_", "n_layers_",
         "out_activation_", "n_features_in_", "classes_", "_best_coefs", "_best_intercepts",
         "_no_improvement_count"]


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fn(*args, **kwargs)


def fitted(cls, problem, solver, activation="tanh", max_iter=4):
    X, y = PROBLEMS[problem][2]()
    est = cls(hidden_layer_sizes=(7, 5), activation=activation, batch_size=16, alpha=1e-3,
              max_iter=max_iter, random_state=3, **SOLVERS[solver])
    return quiet(est.fit, X, y), X, y


def assert_same_state(a, b, rtol):
    """a's fitted state equals b's: exactly what was copied, to rtol what each computed."""
    for key in STATE:
        assert hasattr(a, key) == hasattr(b, key), key
        if not hasattr(b, key):
            continue
        x, z = getattr(a, key), getattr(b, key)
        if isinstance(z, list) and z and isinstance(z[0], np.ndarray):
            assert len(x) == len(z)
            for p, q in zip(x, z):
                assert p.dtype == q.dtype and p.shape == q.shape
                np.testing.assert_allclose(p, q, rtol=rtol, atol=rtol * np.abs(q).max())
        elif isinstance(z, (float, list, np.ndarray)) and not isinstance(z, str):
            np.testing.assert_allclose(x, z, rtol=rtol)
        else:
            assert x == z, key
    assert type(a._label_binarizer) is type(b._label_binarizer) if hasattr(
        b, "_label_binarizer") else not hasattr(a, "_label_binarizer")


def optimizer_state(est):
    """(learning_rate, t, per-layer arrays [intercept; coefs]) of either library's optimiser."""
    opt = est._optimizer
    names = ("velocities",) if hasattr(opt, "velocities") else ("ms", "vs")
    layers = []
    for name in names:
        arrays = getattr(opt, name)
        if isinstance(est, (fb.MLPClassifier, fb.MLPRegressor)):
            layers += list(arrays)
        else:
            n = len(arrays) // 2
            layers += [np.vstack([b[None, :], c]) for c, b in zip(arrays[:n], arrays[n:])]
    return opt.learning_rate, getattr(opt, "t", None), layers


def assert_same_optimizer(a, b, rtol):
    assert hasattr(a, "_optimizer") == hasattr(b, "_optimizer")
    if hasattr(b, "_optimizer"):
        (lr_a, t_a, xs), (lr_b, t_b, zs) = optimizer_state(a), optimizer_state(b)
        assert lr_a == pytest.approx(lr_b, rel=rtol) and t_a == t_b and len(xs) == len(zs)
        for x, z in zip(xs, zs):
            np.testing.assert_allclose(x, z, rtol=rtol, atol=rtol * np.abs(z).max())


def assert_same_predictions(a, b, X, rtol=1e-12):
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=rtol, atol=rtol)
    if hasattr(b, "predict_proba"):
        np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=rtol,
                                   atol=rtol)
        np.testing.assert_array_equal(a.classes_, b.classes_)


@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize("solver", SOLVERS)
def test_to_sklearn_is_scikit_learns_estimator_fitted_the_same(problem, solver):
    ours_cls, theirs_cls, _ = PROBLEMS[problem]
    ours, X, y = fitted(ours_cls, problem, solver)
    theirs = ours.to_sklearn()
    assert type(theirs) is theirs_cls
    assert theirs.get_params() == {k: v for k, v in ours.get_params().items()
                                   if k != "num_threads"}
    assert_same_state(theirs, ours, 0)        # copied, bitwise
    assert_same_optimizer(theirs, ours, 0)
    assert theirs.coefs_[0] is not ours.coefs_[0]   # nothing shared
    assert_same_predictions(theirs, ours, X)
    # and a further epoch (partial_fit) or warm-started fit goes on as ours does
    if solver != "lbfgs":
        quiet(theirs.partial_fit, X, y)
        quiet(ours.partial_fit, X, y)
        assert_same_state(theirs, ours, 1e-10)
        assert_same_optimizer(theirs, ours, 1e-10)
    theirs.set_params(warm_start=True, max_iter=3)
    ours.set_params(warm_start=True, max_iter=3)
    quiet(theirs.fit, X, y)
    quiet(ours.fit, X, y)
    assert_same_state(theirs, ours, 1e-10 if solver != "lbfgs" else 1e-6)
    assert_same_predictions(theirs, ours, X, rtol=1e-8 if solver != "lbfgs" else 1e-5)


@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
def test_from_sklearn_goes_on_as_scikit_learn(problem, solver, activation):
    ours_cls, theirs_cls, _ = PROBLEMS[problem]
    theirs, X, y = fitted(theirs_cls, problem, solver, activation)
    ours = ours_cls.from_sklearn(theirs, num_threads=2)
    assert type(ours) is ours_cls and ours.num_threads == 2
    assert_same_state(ours, theirs, 0)
    assert_same_optimizer(ours, theirs, 0)
    assert_same_predictions(ours, theirs, X)
    if solver != "lbfgs":
        for _ in range(2):             # partial_fit: an epoch each, as scikit-learn's
            quiet(theirs.partial_fit, X, y)
            quiet(ours.partial_fit, X, y)
            assert_same_state(ours, theirs, 1e-10)
            assert_same_optimizer(ours, theirs, 1e-10)
    theirs.set_params(warm_start=True, max_iter=3)
    ours.set_params(warm_start=True, max_iter=3)
    quiet(theirs.fit, X, y)
    quiet(ours.fit, X, y)
    assert_same_state(ours, theirs, 1e-10 if solver != "lbfgs" else 1e-6)


def test_float32_round_trips_in_float32():
    X, y = classification(3)
    X = X.astype(np.float32)
    theirs = quiet(sk.MLPClassifier(hidden_layer_sizes=(5,), solver="adam", max_iter=3,
                                    random_state=0).fit, X, y)
    ours = fb.MLPClassifier.from_sklearn(theirs)
    assert all(c.dtype == np.float32 for c in ours.coefs_ + ours._optimizer.ms)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-5,
                               atol=1e-6)
    back = ours.to_sklearn()
    assert all(c.dtype == np.float32 for c in back.coefs_ + back._optimizer.vs)
    quiet(ours.partial_fit, X, y)
    quiet(theirs.partial_fit, X, y)
    for a, b in zip(ours.coefs_, theirs.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("solver", ["gd", "cg", "rprop"])
def test_fastbp_solvers_export_with_a_named_solver(solver):
    X, y = classification(3)
    ours = quiet(fb.MLPClassifier(hidden_layer_sizes=(6,), solver=solver, max_iter=10,
                                  random_state=0).fit, X, y)
    with pytest.raises(ValueError, match=f"solver='{solver}' is fastbp's own"):
        ours.to_sklearn()
    theirs = ours.to_sklearn(solver="lbfgs")
    assert theirs.solver == "lbfgs" and ours.solver == solver
    assert_same_predictions(theirs, ours, X)
    with pytest.raises(ValueError, match="solver must be one of scikit-learn's"):
        ours.to_sklearn(solver="cg")


def test_not_fitted_and_wrong_types():
    with pytest.raises(NotFittedError):
        fb.MLPClassifier().to_sklearn()
    with pytest.raises(NotFittedError):
        fb.MLPRegressor.from_sklearn(sk.MLPRegressor())
    X, y = classification(2)
    clf = quiet(sk.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2).fit, X, y)
    with pytest.raises(TypeError, match="MLPRegressor.from_sklearn needs a fitted "
                                        "sklearn.neural_network.MLPRegressor, got "
                                        "sklearn.neural_network._multilayer_perceptron."
                                        "MLPClassifier"):
        fb.MLPRegressor.from_sklearn(clf)
    with pytest.raises(TypeError, match="got fastbp.sklearn.MLPClassifier"):
        fb.MLPClassifier.from_sklearn(fb.MLPClassifier.from_sklearn(clf))


def test_a_poisson_regressor_goes_both_ways():
    """loss="poisson" (output exp(s)): from scikit-learn and back, predictions equal, and a
    further partial_fit epoch equal to scikit-learn's own."""
    Xr, yr = regression()
    y = np.abs(yr)
    poisson = quiet(sk.MLPRegressor(loss="poisson", hidden_layer_sizes=(3,), max_iter=2,
                                    random_state=0).fit, Xr, y)
    ours = fb.MLPRegressor.from_sklearn(poisson)
    assert ours.loss == "poisson" and ours.out_activation_ == "exp"
    np.testing.assert_allclose(ours.predict(Xr), poisson.predict(Xr), rtol=1e-12)
    back = ours.to_sklearn()
    np.testing.assert_allclose(back.predict(Xr), poisson.predict(Xr), rtol=1e-12)
    quiet(poisson.partial_fit, Xr, y)
    quiet(ours.partial_fit, Xr, y)
    for a, b in zip(ours.coefs_ + ours.intercepts_, poisson.coefs_ + poisson.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------------------------
# skl2onnx on the exported estimator, and skops

@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
def test_skl2onnx_converts_the_exported_classifier(n_classes, activation):
    X, y = classification(n_classes)
    ours = quiet(fb.MLPClassifier(hidden_layer_sizes=(8, 6), activation=activation,
                                  solver="adam", learning_rate_init=0.01, max_iter=50,
                                  random_state=0).fit, X, y)
    model = skl2onnx.to_onnx(ours.to_sklearn(), X[:1].astype(np.float32),
                             options={"zipmap": False})
    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    label, proba = session.run(None, {session.get_inputs()[0].name: X.astype(np.float32)})
    np.testing.assert_allclose(proba, ours.predict_proba(X), rtol=0, atol=1e-5)
    # labels agree wherever the two classes on top are not within float32 rounding of a tie
    p = np.sort(ours.predict_proba(X), axis=1)
    clear = p[:, -1] - p[:, -2] > 1e-5
    np.testing.assert_array_equal(label[clear], ours.predict(X)[clear])


def test_skl2onnx_converts_the_exported_regressor():
    # one output: skl2onnx 1.20 reshapes a two-output MLPRegressor's predictions to (2 N, 1)
    X, y = regression(1)
    ours = quiet(fb.MLPRegressor(hidden_layer_sizes=(8,), solver="lbfgs", random_state=0).fit,
                 X, y)
    model = skl2onnx.to_onnx(ours.to_sklearn(), X[:1].astype(np.float32))
    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    (pred,) = session.run(None, {session.get_inputs()[0].name: X.astype(np.float32)})
    want = ours.predict(X)[:, None]
    np.testing.assert_allclose(pred, want, rtol=0, atol=1e-5 * max(1, np.abs(want).max()))


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
@pytest.mark.parametrize("cls,problem", [(fb.MLPClassifier, "4-classes"),
                                         (fb.MLPRegressor, "regression")])
def test_skops_round_trip(cls, problem, solver, tmp_path):
    est, X, y = fitted(cls, problem, solver)
    path = tmp_path / "model.skops"
    skops.io.dump(est, path)
    untrusted = skops.io.get_untrusted_types(file=path)
    assert set(untrusted) <= set(fb.skops_trusted_types())
    with pytest.raises(skops.io.exceptions.UntrustedTypesFoundException):
        skops.io.load(path)
    back = skops.io.load(path, trusted=fb.skops_trusted_types())
    assert type(back) is cls
    assert_same_state(back, est, 0)
    assert_same_optimizer(back, est, 0)
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    if solver != "lbfgs":        # training goes on from the loaded state as from the saved one
        quiet(back.partial_fit, X, y)
        quiet(est.partial_fit, X, y)
        assert_same_state(back, est, 0)
