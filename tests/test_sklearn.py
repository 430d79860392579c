"""fastbp.sklearn: real scikit-learn estimators that compute scikit-learn's own MLP model."""
import functools
import pickle
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn import neural_network as sk  # noqa: E402
from sklearn.datasets import make_classification, make_multilabel_classification, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastbp import sklearn as fb  # noqa: E402

SK_VERSION = tuple(int(p) for p in sklearn.__version__.split(".")[:2])


@parametrize_with_checks([fb.MLPRegressor(), fb.MLPClassifier()])
def test_scikit_learn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


# ------------------------------------------------------------------------------------------------
# The same model as scikit-learn's

def regression(n_outputs=1):
    X, y = make_regression(n_samples=60, n_features=5, n_targets=n_outputs, noise=0.1,
                           random_state=0)
    return X / X.std(0), y / y.std(0)


def classification(n_classes, weights=None):
    X, y = make_classification(n_samples=80, n_features=6, n_informative=4,
                               n_classes=n_classes, weights=weights, random_state=0)
    return X, y


def multilabel():
    X, y = make_multilabel_classification(n_samples=60, n_features=5, n_classes=3,
                                          random_state=0)
    return X / X.std(0), y


def counts(n_outputs=1):
    """Poisson counts of a log-linear model of the features (loss="poisson")."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 5))
    rate = np.exp(0.4 * X[:, :n_outputs] - 0.2 * X[:, n_outputs:n_outputs + 1] + 0.3)
    y = rng.poisson(rate).astype(float)
    return X, y[:, 0] if n_outputs == 1 else y


PROBLEMS = {"regression": (fb.MLPRegressor, sk.MLPRegressor, regression),
            "poisson": (functools.partial(fb.MLPRegressor, loss="poisson"),
                        functools.partial(sk.MLPRegressor, loss="poisson"), counts),
            "poisson-2-outputs": (functools.partial(fb.MLPRegressor, loss="poisson"),
                                  functools.partial(sk.MLPRegressor, loss="poisson"),
                                  lambda: counts(2)),
            "regression-2-outputs": (fb.MLPRegressor, sk.MLPRegressor, lambda: regression(2)),
            "binary": (fb.MLPClassifier, sk.MLPClassifier, lambda: classification(2)),
            "4-classes": (fb.MLPClassifier, sk.MLPClassifier, lambda: classification(4)),
            # 85 % of one class: a split that does not stratify draws other validation sets
            "binary-imbalanced": (fb.MLPClassifier, sk.MLPClassifier,
                                  lambda: classification(2, weights=[0.85])),
            "multilabel": (fb.MLPClassifier, sk.MLPClassifier, multilabel)}

SOLVERS = {
    "sgd": dict(solver="sgd", learning_rate_init=0.05, momentum=0.9, nesterovs_momentum=False),
    "sgd-nesterov": dict(solver="sgd", learning_rate_init=0.05, momentum=0.9,
                         nesterovs_momentum=True),
    "sgd-invscaling": dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.1,
                           power_t=0.3),
    "sgd-adaptive": dict(solver="sgd", learning_rate="adaptive", learning_rate_init=0.05,
                         n_iter_no_change=2, tol=0.5),
    "adam": dict(solver="adam", learning_rate_init=0.01),
}


def fitted_pair(problem, params, **fit):
    ours, theirs, data = PROBLEMS[problem]
    X, y = data()
    a, b = ours(**params), theirs(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a.fit(X, y, **fit)
        b.fit(X, y, **fit)
    return a, b, X, y


def assert_same_model(a, b, rtol):
    assert len(a.coefs_) == len(b.coefs_) and a.n_iter_ == b.n_iter_ and a.t_ == b.t_
    for x, z in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert x.dtype == z.dtype and x.shape == z.shape
        np.testing.assert_allclose(x, z, rtol=rtol, atol=rtol * np.abs(z).max())
    assert a.out_activation_ == b.out_activation_ and a.n_outputs_ == b.n_outputs_
    assert a.n_layers_ == b.n_layers_ and a.n_features_in_ == b.n_features_in_


@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("epochs,rtol", [(1, 1e-12), (20, 1e-8)])
def test_stochastic_solvers_compute_scikit_learns_model(problem, solver, activation, epochs, rtol):
    params = dict(hidden_layer_sizes=(7, 5), activation=activation, batch_size=16, alpha=1e-3,
                  max_iter=epochs, random_state=3, **SOLVERS[solver])
    a, b, X, y = fitted_pair(problem, params)
    assert_same_model(a, b, rtol)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=rtol)
    assert a.loss_ == pytest.approx(b.loss_, rel=rtol) and a.best_loss_ == pytest.approx(
        b.best_loss_, rel=rtol)
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-6, atol=1e-8)
    if hasattr(b, "predict_proba"):
        np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-6, atol=1e-9)
        np.testing.assert_array_equal(a.classes_, b.classes_)


@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
def test_lbfgs_computes_scikit_learns_model(problem, activation):
    pytest.importorskip("scipy")
    params = dict(hidden_layer_sizes=(6,), activation=activation, solver="lbfgs", alpha=1e-3,
                  max_iter=20, random_state=1)
    a, b, X, y = fitted_pair(problem, params)
    assert_same_model(a, b, 1e-6)
    assert a.loss_ == pytest.approx(b.loss_, rel=1e-6)


@pytest.mark.parametrize("problem", ["regression", "4-classes", "binary-imbalanced"])
def test_early_stopping_splits_and_scores_as_scikit_learn(problem):
    """The validation split is scikit-learn's: stratified for one output column (a binary
    classifier; the imbalanced problem tells a stratified split from one that is not), random
    otherwise; the scores and the weights kept follow."""
    params = dict(hidden_layer_sizes=(8,), solver="adam", learning_rate_init=0.02, max_iter=30,
                  early_stopping=True, validation_fraction=0.2, n_iter_no_change=3,
                  random_state=0)
    a, b, X, y = fitted_pair(problem, params)
    assert_same_model(a, b, 1e-8)
    np.testing.assert_allclose(a.validation_scores_, b.validation_scores_, rtol=1e-8)
    assert a.best_validation_score_ == pytest.approx(b.best_validation_score_, rel=1e-8)
    assert a.best_loss_ is None and b.best_loss_ is None


@pytest.mark.skipif(SK_VERSION < (1, 7), reason="scikit-learn's MLP takes sample_weight from 1.7")
@pytest.mark.parametrize("problem", ["regression", "4-classes"])
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_sample_weight_as_scikit_learn(problem, solver):
    rng = np.random.default_rng(0)
    n = len(PROBLEMS[problem][2]()[0])
    sw = rng.uniform(0, 3, n)
    params = dict(hidden_layer_sizes=(6,), solver=solver, max_iter=10, random_state=0,
                  learning_rate_init=0.01)
    a, b, X, y = fitted_pair(problem, params, sample_weight=sw)
    assert_same_model(a, b, 1e-8)


def test_integer_sample_weights_equal_repetition():
    X, y = regression()
    counts = np.arange(len(X)) % 3
    params = dict(hidden_layer_sizes=(5,), solver="lbfgs", max_iter=15, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = fb.MLPRegressor(**params).fit(X, y, sample_weight=counts)
        b = fb.MLPRegressor(**params).fit(np.repeat(X, counts, 0), np.repeat(y, counts, 0))
    for x, z in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_allclose(x, z, rtol=1e-8, atol=1e-10)


# ------------------------------------------------------------------------------------------------
# In scikit-learn's workflows

def test_pipeline_grid_search_cross_val_score():
    X, y = classification(3)
    pipe = make_pipeline(StandardScaler(), fb.MLPClassifier(max_iter=30, random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(pipe, X, y, cv=3)
        grid = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(5,), (10,)],
                                   "mlpclassifier__alpha": [1e-4, 1e-2]}, cv=2, n_jobs=2)
        grid.fit(X, y)
    assert len(scores) == 3 and all(0 <= s <= 1 for s in scores)
    assert set(grid.best_params_) == {"mlpclassifier__hidden_layer_sizes",
                                      "mlpclassifier__alpha"}
    # what a grid point scored in a worker process is what it scores here
    point = grid.best_params_
    again = make_pipeline(StandardScaler(), fb.MLPClassifier(max_iter=30, random_state=0))
    again.set_params(**point)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        again_score = cross_val_score(again, X, y, cv=2).mean()
    assert again_score == pytest.approx(grid.best_score_, rel=1e-12)


@pytest.mark.parametrize("est", [fb.MLPRegressor(hidden_layer_sizes=(4,), max_iter=5),
                                 fb.MLPClassifier(hidden_layer_sizes=(4,), max_iter=5)])
def test_pickle_round_trip_predicts_identically(est, tmp_path):
    X, y = regression() if isinstance(est, fb.MLPRegressor) else classification(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    back = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    joblib = pytest.importorskip("joblib")
    path = tmp_path / "model.joblib"
    joblib.dump(est, path)
    np.testing.assert_array_equal(joblib.load(path).predict(X), est.predict(X))


def _threads_in_worker(_):
    from fastbp import _api
    return _api.available_threads()


def test_joblib_workers_share_the_cores_out():
    """In joblib's worker processes (GridSearchCV(n_jobs=k) runs its fits there) num_threads=None
    means cores / k threads: fastbp's default never oversubscribes the machine."""
    import os

    from joblib import Parallel, delayed
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = Parallel(n_jobs=2)(delayed(_threads_in_worker)(i) for i in range(2))
    assert all(1 <= t <= max(1, cores // 2) for t in threads)


def test_warm_start_and_partial_fit_as_scikit_learn():
    X, y = classification(3)
    params = dict(hidden_layer_sizes=(6,), solver="sgd", learning_rate_init=0.05, shuffle=False,
                  random_state=0, max_iter=3)
    pairs = []
    for cls in (fb.MLPClassifier, sk.MLPClassifier):
        est = cls(warm_start=True, **params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, y)
            est.fit(X, y)
        inc = cls(**params)
        for _ in range(4):
            inc.partial_fit(X, y, classes=np.unique(y))
        pairs.append((est, inc))
    assert_same_model(pairs[0][0], pairs[1][0], 1e-10)
    assert_same_model(pairs[0][1], pairs[1][1], 1e-10)
    # with shuffle=False, partial_fit k times is fit(max_iter=k)
    once = fb.MLPClassifier(**{**params, "max_iter": 4, "n_iter_no_change": 100})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        once.fit(X, y)
    for x, z in zip(once.coefs_, pairs[0][1].coefs_):
        np.testing.assert_array_equal(x, z)


def test_float32_trains_in_float32():
    X, y = classification(2)
    est = fb.MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X.astype(np.float32), y)
    assert all(c.dtype == np.float32 for c in est.coefs_ + est.intercepts_)
    assert est.predict_proba(X.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize("solver", ["gd", "variable-lr", "steepest", "cg", "rprop"])
def test_fastbp_solvers_fit_scikit_learns_loss(solver):
    X, y = classification(3)
    est = fb.MLPClassifier(hidden_layer_sizes=(8,), solver=solver, max_iter=60, random_state=0,
                           learning_rate_init=0.1)
    est.fit(X, y)
    assert est.n_iter_ == len(est.loss_curve_) <= 60
    assert est.loss_curve_[-1] < 0.7 * est.loss_curve_[0]
    assert est.score(X, y) > 0.6


def test_import_fastbp_does_not_import_scikit_learn():
    import os
    import subprocess
    import sys
    code = ("import sys, fastbp; w = fastbp.init_weights([2, 3, 1]); "
            "print(sorted(m for m in ('sklearn', 'scipy') if m in sys.modules))")
    # run from tests/, as pytest does, so that the installed fastbp is imported, not the source tree
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, "-c", code], cwd=here, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_epoch_shuffle_is_scikit_learns():
    """fastbp.sklearn draws each epoch's order itself (sklearn.utils.shuffle's checks cost a fifth
    of a small fit): the same orders as scikit-learn's shuffle, epoch after epoch."""
    from sklearn.utils import shuffle

    from fastbp.sklearn import _shuffled
    for n in (1, 2, 7, 1797):
        ours, theirs = np.random.RandomState(3), np.random.RandomState(3)
        a = b = np.arange(n)
        for _ in range(5):
            a, b = _shuffled(a, ours), shuffle(b, random_state=theirs)
            assert np.array_equal(a, b)
        assert ours.randint(1 << 30) == theirs.randint(1 << 30)


@pytest.mark.filterwarnings("ignore:Stochastic Optimizer")   # 3 epochs on purpose
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_large_batches_on_two_threads_equal_one(solver):
    """A mini-batch of several chunks is shared out among the threads, bitwise as on one."""
    from fastbp.sklearn import MLPClassifier
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5000, 6))
    y = (X[:, 0] + X[:, 1] ** 2 > 1).astype(int) + (X[:, 2] > 0.5)
    fits = [MLPClassifier(hidden_layer_sizes=(16,), solver=solver, batch_size=2500, max_iter=3,
                          random_state=0, num_threads=t).fit(X, y) for t in (1, 2)]
    for a, b in zip(fits[0].coefs_ + fits[0].intercepts_, fits[1].coefs_ + fits[1].intercepts_):
        assert np.array_equal(a, b)
    assert fits[0].loss_curve_ == fits[1].loss_curve_


LABELS = {"bool": np.array([False, True]), "int": np.array([-1, 7]),
          "str": np.array(["no", "yes"]), "object": np.array(["no", "yes"], dtype=object),
          "str-3": np.array(["a", "b", "c"]), "float": np.array([1.0, 2.0])}


@pytest.mark.parametrize("labels", LABELS.values(), ids=LABELS.keys())
@pytest.mark.parametrize("path", ["fit", "early-stopping", "partial_fit", "warm-start"])
def test_labels_keep_their_type_on_every_path(labels, path):
    X, y = classification(len(labels))
    y = labels[y]
    params = dict(hidden_layer_sizes=(4,), max_iter=5, random_state=0,
                  early_stopping=path == "early-stopping", warm_start=path == "warm-start")
    ours, theirs = fb.MLPClassifier(**params), sk.MLPClassifier(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for est in ours, theirs:
            try:
                if path == "partial_fit":
                    est.partial_fit(X, y, classes=labels)
                else:
                    est.fit(X, y)
                if path == "warm-start":
                    est.fit(X, y)
            except TypeError as e:
                # scikit-learn 1.7 on NumPy 1.x: its early stopping calls np.isnan on string
                # labels; ours has run and is checked against its own classes
                if est is ours or np.lib.NumpyVersion(np.__version__) >= "2.0.0":
                    raise
                a = ours.predict(X)
                assert a.dtype == ours.classes_.dtype
                pytest.skip(f"scikit-learn fails here itself on NumPy {np.__version__}: {e}")
    a, b = ours.predict(X), theirs.predict(X)
    assert a.dtype == b.dtype == ours.classes_.dtype == theirs.classes_.dtype
    assert type(a[0]) is type(b[0])
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("y", [[False, False, False, True], [1, 1, 1, 2], ["a", "a", "a", "b"]])
def test_label_errors_name_the_classes_as_scikit_learn(y):
    X = [[1, 2], [2, 3], [3, 4], [4, 5]]
    messages = []
    for est in fb.MLPClassifier(early_stopping=True), sk.MLPClassifier(early_stopping=True):
        with pytest.raises(ValueError, match="The least populated class") as info:
            est.fit(X, y)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    X, y = classification(2)
    labels = np.array(["a", "b"])
    for what in "partial_fit", "warm_start":
        messages = []
        for cls in fb.MLPClassifier, sk.MLPClassifier:
            est = cls(max_iter=2, warm_start=what == "warm_start")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                if what == "partial_fit":
                    est.partial_fit(X, labels[y], classes=labels)
                else:
                    est.fit(X, labels[y])
            with pytest.raises(ValueError, match="classes") as info:
                getattr(est, "partial_fit" if what == "partial_fit" else "fit")(
                    X, np.array(["a", "c"])[y])
            messages.append(str(info.value))
        assert messages[0] == messages[1]


# ------------------------------------------------------------------------------------------------
# Sparse X: computed sparse (fastbp._sparse), the same model as scikit-learn's

def sparsified(X):
    """X with most entries zero (each of its columns keeps its largest values), as CSR."""
    scipy_sparse = pytest.importorskip("scipy.sparse")
    kept = np.where(np.abs(X) > 0.8, X, 0.0)
    return scipy_sparse.csr_matrix(kept)


@pytest.fixture(params=[2.0, 0.0], ids=["nonzeros", "tiles"])
def sparse_path(request):
    """Both ways the kernels take a sparse X: from its nonzeros, and a tile written out dense."""
    from fastbp import _sparse
    old = _sparse.sparse_crossover(request.param)
    yield request.param
    _sparse.sparse_crossover(old)


def fitted_sparse_pair(problem, params):
    ours, theirs, data = PROBLEMS[problem]
    X, y = data()
    Xs = sparsified(X)
    a, b = ours(**params), theirs(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a.fit(Xs, y)
        b.fit(Xs, y)
    return a, b, Xs, y


@pytest.mark.parametrize("problem", ["regression", "poisson", "binary", "4-classes",
                                     "multilabel"])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("activation", ["logistic", "relu"])
@pytest.mark.parametrize("epochs,rtol", [(1, 1e-12), (20, 1e-8)])
def test_sparse_X_stochastic_solvers_compute_scikit_learns_model(sparse_path, problem, solver,
                                                                 activation, epochs, rtol):
    params = dict(hidden_layer_sizes=(7, 5), activation=activation, batch_size=16, alpha=1e-3,
                  max_iter=epochs, random_state=3, **SOLVERS[solver])
    a, b, Xs, y = fitted_sparse_pair(problem, params)
    assert_same_model(a, b, rtol)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=rtol)
    np.testing.assert_allclose(a.predict(Xs), b.predict(Xs), rtol=1e-6, atol=1e-8)
    if hasattr(b, "predict_proba"):
        np.testing.assert_allclose(a.predict_proba(Xs), b.predict_proba(Xs), rtol=1e-6,
                                   atol=1e-9)
        assert a.score(Xs, y) == b.score(Xs, y)


@pytest.mark.parametrize("problem", ["regression", "binary", "4-classes"])
def test_sparse_X_lbfgs_computes_scikit_learns_model(sparse_path, problem):
    params = dict(hidden_layer_sizes=(6,), activation="tanh", solver="lbfgs", alpha=1e-3,
                  max_iter=20, random_state=1)
    a, b, Xs, y = fitted_sparse_pair(problem, params)
    assert_same_model(a, b, 1e-6)
    assert a.loss_ == pytest.approx(b.loss_, rel=1e-6)


@pytest.mark.parametrize("kind", ["csr_matrix", "csc_matrix", "csr_array"])
@pytest.mark.parametrize("early_stopping", [False, True])
def test_sparse_X_is_never_made_dense(monkeypatch, kind, early_stopping):
    """fit, partial_fit, predict, predict_proba and score on a sparse X: no toarray or todense
    of it (or of a part of it) anywhere, and the same results as on its dense matrix."""
    scipy_sparse = pytest.importorskip("scipy.sparse")
    X, y = classification(3)
    Xs = getattr(scipy_sparse, kind)(sparsified(X))
    dense = Xs.toarray()
    params = dict(hidden_layer_sizes=(5,), max_iter=4, random_state=0,
                  early_stopping=early_stopping)

    original = {}

    def refuse(self, *args, **kwargs):
        # (scikit-learn's LabelBinarizer writes its own sparse label indicators out dense)
        if self.shape[1] == X.shape[1]:
            raise AssertionError("a sparse X was made dense")
        return original[type(self), "toarray"](self, *args, **kwargs)

    ref = fb.MLPClassifier(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref.fit(dense, y)
        for cls in (scipy_sparse.csr_matrix, scipy_sparse.csc_matrix, scipy_sparse.coo_matrix,
                    scipy_sparse.csr_array, scipy_sparse.csc_array, scipy_sparse.coo_array):
            original[cls, "toarray"] = cls.toarray
            monkeypatch.setattr(cls, "toarray", refuse)
            monkeypatch.setattr(cls, "todense", refuse)
        clf = fb.MLPClassifier(**params).fit(Xs, y)
        proba = clf.predict_proba(Xs)
        assert clf.score(Xs, y) == ref.score(dense, y)
        fb.MLPClassifier(**params | {"early_stopping": False}).partial_fit(
            Xs, y, classes=np.unique(y))
        reg = fb.MLPRegressor(**params).fit(Xs, y.astype(float))
        reg.predict(Xs)
    np.testing.assert_allclose(proba, ref.predict_proba(dense), rtol=1e-12, atol=1e-15)


def test_adam_is_scikit_learns_under_every_kernel_set():
    """Adam's update runs in the vectors of the kernel set in use (_simd_update.h): under each set
    this CPU runs (FASTBP_SIMD, a child interpreter), one epoch on a layer wider than a vector
    block computes scikit-learn's coefficients to 1e-12 (the update itself rounds as NumPy's; the
    sets differ only in the gradient's multiply-adds)."""
    import os
    import subprocess
    import sys

    from fastbp import _core
    code = (
        "import warnings, numpy as np, fastbp.sklearn as fb, fastbp\n"
        "from sklearn import neural_network as sk\n"
        "from sklearn.datasets import make_classification\n"
        "X, y = make_classification(n_samples=300, n_features=37, n_informative=8, n_classes=3,"
        " random_state=0)\n"
        "for dtype in (np.float64, np.float32):\n"
        "    p = dict(hidden_layer_sizes=(19,), max_iter=1, batch_size=50, random_state=0)\n"
        "    with warnings.catch_warnings():\n"
        "        warnings.simplefilter('ignore')\n"
        "        a = fb.MLPClassifier(**p).fit(X.astype(dtype), y)\n"
        "        b = sk.MLPClassifier(**p).fit(X.astype(dtype), y)\n"
        "    rtol = 1e-12 if dtype == np.float64 else 1e-5\n"
        "    for u, v in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):\n"
        "        np.testing.assert_allclose(u, v, rtol=rtol, atol=rtol * abs(v).max())\n"
        "print(fastbp._api.ISA)\n")
    here = os.path.dirname(os.path.abspath(__file__))
    names = {"avx512": "avx512", "avx2+fma": "avx2", "baseline": "baseline", "neon": "neon"}
    ran = []
    for name, runs in _core.kernel_sets():
        if not runs:
            continue
        env = dict(os.environ, FASTBP_SIMD=names[name])
        out = subprocess.run([sys.executable, "-c", code], cwd=here, env=env,
                             capture_output=True, text=True)
        assert out.returncode == 0, f"{name}: {out.stderr[-2000:]}"
        assert out.stdout.strip() == name
        ran.append(name)
    assert "baseline" in ran
