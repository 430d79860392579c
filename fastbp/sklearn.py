"""scikit-learn estimators over fastbp's kernels: `MLPClassifier` and `MLPRegressor`.

    from fastbp.sklearn import MLPClassifier      # instead of sklearn.neural_network

They take scikit-learn's parameters with its defaults, expose its fitted attributes, and compute
scikit-learn's model: its initialisation (Glorot uniform from `check_random_state(random_state)`,
in its order), its loss (half the squared error averaged over samples and outputs; log-loss), its L2
term (alpha, on the weights and not the intercepts), its gradient (as its `_backprop` forms it),
its mini-batches (the same shuffling calls on the same random state), learning-rate schedules,
stopping rules, validation split and its L-BFGS call. fastbp's kernels compute the sums; this
module is the thin layer that turns them into scikit-learn's numbers:

    fastbp, W(l) = [intercepts_; coefs_],  E_in = sum_n w_n e_n / sum_n w_n  (w_n sample weights)
    squared error:  loss = E_in / (2 d(L)) + alpha/2 ||coefs||^2 / sum w,
                    grad = (1/2) dE_in/dW + alpha / sum w [0; coefs]
    log-loss:       loss = E_in + alpha/2 ||coefs||^2 / sum w,
                    grad = dE_in/dW + alpha / sum w [0; coefs]
    poisson:        the same, E_in fastbp's output="poisson" (half the Poisson deviance, the
                    output exp(s(L)): scikit-learn's loss="poisson")
(scikit-learn's squared-error gradient is that of half the error summed over outputs, not of its
loss, which averages over outputs: with several outputs the two differ by d(L), and fastbp follows
scikit-learn.)

On top of scikit-learn's solvers ("lbfgs", "sgd", "adam") fastbp's full-batch methods are there
too: solver="gd", "variable-lr", "steepest", "cg" or "rprop", on the same loss. `num_threads` is
fastbp's (None: every core this process may use, capped by OMP_NUM_THREADS; joblib's worker
processes, as in GridSearchCV(n_jobs=k), set that to cores / k, so nothing is oversubscribed).
The stochastic solvers compute a mini-batch of two chunks or more (a chunk is 512 to 2048 samples,
by the network) on every thread and a smaller one on one thread (the user guide's threads page).

scikit-learn is an optional dependency (pip install "fastbp[sklearn]"); `import fastbp` does not
import this module.
"""
from __future__ import annotations

import math
import warnings
from numbers import Integral, Real

import numpy as np

try:
    import sklearn  # noqa: F401
except ImportError:  # pragma: no cover - exercised in an environment without scikit-learn
    raise ImportError("fastbp.sklearn needs scikit-learn, an optional dependency that is not "
                      "installed: pip install \"fastbp[sklearn]\"") from None

import scipy.sparse
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from . import _api, _checks
from ._methods import Momentum, NoImprovement, no_improvement
from ._objective import DataObjective, Objective
from ._options import FitOptions
from .training import train

__all__ = ["MLPClassifier", "MLPRegressor"]

_STOCHASTIC = ("sgd", "adam")
_FULL_BATCH = ("lbfgs", "gd", "variable-lr", "steepest", "cg", "rprop")
# scikit-learn's output activations as fastbp's outputs
_OUTPUT = {"identity": "linear", "logistic": "logistic", "softmax": "softmax", "exp": "poisson"}


# ---------------------------------------------------------------------------------------------
# scikit-learn's loss over fastbp's kernels


def _shuffled(sample_idx, random_state):
    """sklearn.utils.shuffle(sample_idx, random_state=random_state) without its input checks
    (a permutation drawn by random_state.shuffle(np.arange(n)), as sklearn.utils.resample draws
    it): the same random numbers, the same order, none of the per-epoch cost (measured: a fifth
    of a digits fit). tests/test_sklearn.py holds the two equal."""
    permutation = np.arange(sample_idx.shape[0])
    random_state.shuffle(permutation)
    return sample_idx[permutation]


class _Model:
    """A fitted estimator's network as fastbp sees it: weights W(l) = [intercepts_; coefs_]."""

    def __init__(self, est, dtype, threads=None):
        self.activation = est.activation
        self.output = _OUTPUT[est.out_activation_]
        self.squared = est.out_activation_ == "identity"
        self.n_outputs = est.n_outputs_
        self.threads = threads          # the count _fit resolved (None: the kernels' default)
        self.dtype = np.dtype(dtype)

    def weights(self, coefs, intercepts):
        return [np.vstack([b[None, :], c]).astype(self.dtype, copy=False)
                for c, b in zip(coefs, intercepts)]

    def forward(self, weights, X):
        return _api.forward(weights, X, output=self.output, activation=self.activation)


class _LossObjective(Objective):
    """scikit-learn's loss as a flat objective, for fastbp's full-batch methods (lbfgs included),
    over an objective that computes fastbp's E_in and gradient (`inner`: the data in memory, or
    on a cluster): the data term is E_in scaled, the penalty alpha/2 ||coefs||^2 / sum w (the
    intercept rows excluded)."""

    def __init__(self, model: _Model, inner: Objective, sw_sum: float, alpha: float):
        super().__init__(inner.widths, model.dtype, inner.n_samples, 0.0)
        self.inner = inner
        self.alpha, self.sw_sum = alpha, sw_sum
        self.decay = alpha / sw_sum          # non-zero switches the penalty on in Objective
        self.mask = self.flat([np.vstack([np.zeros((1, b)), np.ones((a, b))])
                               for a, b in zip(self.widths[:-1], self.widths[1:])])
        self.scale = 0.5 if model.squared else 1.0
        self.loss_scale = 1.0 / (2 * model.n_outputs) if model.squared else 1.0

    def error_in(self, weights):
        return self.inner.error_in(weights) * self.loss_scale

    def gradient_in(self, weights, grads):
        E = self.inner.gradient_in(weights, grads)
        if self.scale != 1.0:
            for g in grads:
                g *= self.scale
        return E * self.loss_scale

    def kernel_loss(self):
        inner = self.inner.kernel_loss()
        if type(self) is not _LossObjective or inner is None or self.inner.decay:
            return None
        return inner[0], _api.loss_spec(alpha=self.alpha, total=self.sw_sum,
                                        grad_scale=self.scale, loss_scale=self.loss_scale)

    def penalty(self, w):
        c = w * self.mask
        return 0.5 * self.decay * float(np.multiply(c, c).sum())

    def add_penalty_gradient(self, w, g):
        g += self.decay * (w * self.mask)


# ---------------------------------------------------------------------------------------------
# scikit-learn's stochastic optimisers, on fastbp's weight arrays

class _SGD:
    """scikit-learn's SGD optimiser's state and schedules; its steps (v = mu v - lr g; w += v, or
    Nesterov's w += mu v - lr g) run in fastbp's kernel, a whole epoch per call."""

    def __init__(self, params, learning_rate_init, lr_schedule, momentum, nesterov, power_t):
        self.learning_rate_init = learning_rate_init
        self.learning_rate = float(learning_rate_init)
        self.lr_schedule, self.momentum, self.nesterov = lr_schedule, momentum, nesterov
        self.power_t = power_t
        self.velocities = [np.zeros_like(p) for p in params]

    def epoch(self, run):
        """One epoch of steps through run(**rule); returns what it returns."""
        steps, *loss = run(lr=self.learning_rate, momentum=self.momentum,
                           velocity=self.velocities,
                           rule=Momentum.rule("sgd", self.momentum, self.nesterov))
        return loss

    def iteration_ends(self, time_step):
        if self.lr_schedule == "invscaling":
            self.learning_rate = float(self.learning_rate_init) / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        if self.lr_schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(msg + " Setting learning rate to %f" % self.learning_rate)
        return False


class _Adam:
    """scikit-learn's Adam's state (t, the moments ms and vs); its steps run in fastbp's kernel
    (m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; lr_t = lr sqrt(1 - b2^t) / (1 - b1^t);
    w -= lr_t m / (sqrt(v) + eps)), a whole epoch per call."""

    def __init__(self, params, learning_rate_init, beta_1, beta_2, epsilon):
        self.learning_rate_init = learning_rate_init
        self.learning_rate = float(learning_rate_init)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.t = 0
        self.ms = [np.zeros_like(p) for p in params]
        self.vs = [np.zeros_like(p) for p in params]

    def epoch(self, run):
        self.t, *loss = run(lr=self.learning_rate_init, momentum=self.beta_1, velocity=self.ms,
                            rule="adam", moment2=self.vs, beta2=self.beta_2, eps=self.epsilon,
                            steps=self.t)
        b1, b2 = self.beta_1, self.beta_2
        self.learning_rate = (self.learning_rate_init * np.sqrt(1 - b2 ** self.t)
                              / (1 - b1 ** self.t)) if self.t else self.learning_rate
        return loss

    def iteration_ends(self, time_step):
        pass

    def trigger_stopping(self, msg, verbose):
        if verbose:
            print(msg + " Stopping.")
        return True


# ---------------------------------------------------------------------------------------------
# The estimators

# The parameters and fitted attributes both estimators have, documented once: _BaseMLP's
# subclasses get them in their docstrings (at the lines "<shared parameters>" and
# "<shared attributes>").
_PARAMETERS_DOC = """\
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        The i-th element is the number of units of the i-th hidden layer.
    activation : {"identity", "logistic", "tanh", "relu"}, default="relu"
        The activation of the hidden layers.
    solver : str, default="adam"
        The solver: scikit-learn's "lbfgs", "sgd" and "adam", and fastbp's full-batch methods
        "gd", "variable-lr", "steepest", "cg" and "rprop", all on scikit-learn's loss. fastbp's
        methods run `max_iter` epochs with `learning_rate_init` (and `momentum`,
        `nesterovs_momentum` for "gd"), stopping when the loss has not fallen by `tol` for
        `n_iter_no_change` epochs.
    alpha : float, default=0.0001
        Strength of the L2 term, on the weights and not the intercepts.
    batch_size : int or "auto", default="auto"
        Mini-batch size of the stochastic solvers; "auto" is min(200, n_samples).
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        The learning-rate schedule of solver "sgd", as scikit-learn's.
    learning_rate_init : float, default=0.001
        The initial learning rate (sgd, adam and fastbp's methods but rprop).
    power_t : float, default=0.5
        The exponent of the "invscaling" schedule.
    max_iter : int, default=200
        The most epochs (stochastic solvers, fastbp's methods) or iterations (lbfgs).
    shuffle : bool, default=True
        Shuffle the samples in every epoch (stochastic solvers).
    random_state : int, RandomState instance or None, default=None
        The initial weights, the shuffling and the validation split, drawn as scikit-learn
        draws them.
    tol : float, default=1e-4
        The tolerance of the stopping rules (lbfgs: its gtol).
    verbose : bool, default=False
        Print the loss after every epoch.
    warm_start : bool, default=False
        Start `fit` from the weights of the previous fit.
    momentum : float, default=0.9
        The momentum of solver "sgd" (and "gd"), in [0, 1].
    nesterovs_momentum : bool, default=True
        Nesterov's form of momentum.
    early_stopping : bool, default=False
        Hold out `validation_fraction` of the data and stop when its score has not improved by
        `tol` for `n_iter_no_change` epochs (stochastic solvers).
    validation_fraction : float, default=0.1
        The fraction held out for early stopping.
    beta_1 : float, default=0.9
        Adam's first-moment decay, in [0, 1).
    beta_2 : float, default=0.999
        Adam's second-moment decay, in [0, 1).
    epsilon : float, default=1e-8
        Adam's epsilon.
    n_iter_no_change : int, default=10
        The epochs without improvement the stopping rules wait.
    max_fun : int, default=15000
        The most loss evaluations of lbfgs.
    num_threads : int or None, default=None
        The threads of fastbp's kernels (None: every core this process may use, capped by
        OMP_NUM_THREADS; a negative count backwards from that). The stochastic solvers share
        each mini-batch step of a megaflop or more among the threads (6 x weights x batch
        size); a smaller one runs on one thread. The fit is bitwise the same either way.
"""

_ATTRIBUTES_DOC = """\
    coefs_ : list of ndarray
        The weights of each layer, coefs_[i] of shape (d(i), d(i+1)).
    intercepts_ : list of ndarray
        The biases of each layer, intercepts_[i] of shape (d(i+1),); fastbp's
        W(l) = [intercepts_[l-1]; coefs_[l-1]].
    loss_ : float
        The loss at the end of the last fit.
    loss_curve_ : list of float
        The loss after each epoch (stochastic solvers and fastbp's methods).
    n_iter_ : int
        The epochs or iterations run.
    n_layers_ : int
        The number of layers, L + 1.
    n_outputs_ : int
        The number of outputs d(L).
    out_activation_ : str
        The output activation.
"""


class _BaseMLP(BaseEstimator):
    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
        "solver": [StrOptions({"lbfgs", "sgd", "adam", "gd", "variable-lr", "steepest", "cg",
                               "rprop"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "num_threads": [Interval(Integral, None, None, closed="neither"), None],
    }

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__doc__:                  # the shared parameters and attributes written in
            cls.__doc__ = (cls.__doc__.replace("    <shared parameters>\n", _PARAMETERS_DOC)
                           .replace("    <shared attributes>\n", _ATTRIBUTES_DOC))

    # The parameters both estimators have, as scikit-learn's BaseMultilayerPerceptron holds them:
    # MLPClassifier's signature (it has no other parameter); MLPRegressor adds `loss` in front.
    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 num_threads=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.num_threads = num_threads

    # --- fitting --------------------------------------------------------------------------------
    def _hidden_layer_sizes(self) -> list:
        """hidden_layer_sizes as a list, each size checked (scikit-learn's check and message)."""
        hidden = self.hidden_layer_sizes
        hidden = list(hidden) if hasattr(hidden, "__iter__") else [hidden]
        if np.any(np.array(hidden) <= 0):
            raise ValueError("hidden_layer_sizes must be > 0, got %s." % hidden)
        return hidden

    def _fit(self, X, y, sample_weight=None, incremental=False):
        if _is_dask(X):
            return self._fit_dask(X, y, sample_weight)
        hidden = self._hidden_layer_sizes()
        # the thread count, resolved once for the whole fit (num_threads=0 refused here)
        threads = _checks.check_num_threads(self.num_threads, _api.available_threads)
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        # y keeps its type (a classifier's: the label indicators, bool) until the kernels take it,
        # so that the validation split stratifies on what scikit-learn's does (its messages
        # name the classes as scikit-learn's do)
        self.n_outputs_ = y.shape[1]
        layer_units = [X.shape[1]] + hidden + [self.n_outputs_]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(y, layer_units, X.dtype)
        elif [c.shape[0] for c in self.coefs_] + [self.coefs_[-1].shape[1]] != layer_units:
            raise ValueError(f"the layers {layer_units} of this fit differ from those of the "
                             f"fitted network")
        model = _Model(self, X.dtype, threads)
        if self.solver in _STOCHASTIC:
            self._fit_stochastic(model, X, y, sample_weight, incremental)
        else:
            self._fit_full_batch(model, layer_units, X, y.astype(X.dtype, copy=False),
                                 sample_weight)
        if not all(np.isfinite(w).all() for w in self.coefs_ + self.intercepts_):
            raise ValueError("Solver produced non-finite parameter weights. The input data may "
                             "contain large values and need to be preprocessed.")
        return self

    def _initialize(self, y, layer_units, dtype):
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        if not isinstance(self, ClassifierMixin):
            self.out_activation_ = "exp" if self.loss == "poisson" else "identity"
        elif self._label_binarizer.y_type_ == "multiclass":
            self.out_activation_ = "softmax"
        else:
            self.out_activation_ = "logistic"
        self.coefs_, self.intercepts_ = [], []
        factor = 2.0 if self.activation == "logistic" else 6.0
        for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            coef = self._random_state.uniform(-bound, bound, (fan_in, fan_out))
            intercept = self._random_state.uniform(-bound, bound, fan_out)
            self.coefs_.append(coef.astype(dtype, copy=False))
            self.intercepts_.append(intercept.astype(dtype, copy=False))
        self._best_coefs = [c.copy() for c in self.coefs_]
        self._best_intercepts = [i.copy() for i in self.intercepts_]
        if self.solver in _STOCHASTIC:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _set_weights(self, weights):
        self.coefs_ = [np.array(w[1:]) for w in weights]
        self.intercepts_ = [np.array(w[0]) for w in weights]

    def _split(self, X, y, sample_weight):
        """scikit-learn's validation split for early stopping (stratified for one-output
        classifiers), drawn from the estimator's random state."""
        stratify = y if isinstance(self, ClassifierMixin) and self.n_outputs_ == 1 else None
        arrays = (X, y) if sample_weight is None else (X, y, sample_weight)
        parts = train_test_split(*arrays, random_state=self._random_state,
                                 test_size=self.validation_fraction, stratify=stratify)
        X_train, X_val, y_train, y_val = parts[:4]
        sw_train, sw_val = (None, None) if sample_weight is None else parts[4:]
        if X_val.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                             "or the size of your dataset.")
        if isinstance(self, ClassifierMixin):
            y_val = self._label_binarizer.inverse_transform(y_val)
        return X_train, y_train, sw_train, X_val, y_val, sw_val

    def _fit_stochastic(self, model, X, y, sample_weight, incremental):
        weights = model.weights(self.coefs_, self.intercepts_)
        if not incremental or not hasattr(self, "_optimizer"):
            if self.solver == "sgd":
                self._optimizer = _SGD(weights, self.learning_rate_init, self.learning_rate,
                                       self.momentum, self.nesterovs_momentum, self.power_t)
            else:
                self._optimizer = _Adam(weights, self.learning_rate_init, self.beta_1,
                                        self.beta_2, self.epsilon)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        if early_stopping:
            X_train, y_train, sw_train, X_val, y_val, sw_val = self._split(X, y, sample_weight)
        else:
            X_train, y_train, sw_train = X, y, sample_weight
            X_val = y_val = sw_val = None
        n_samples = X_train.shape[0]
        sample_idx = np.arange(n_samples, dtype=int)
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                              "going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n_samples))
        widths = layer_units_of(weights)
        X_train = _kernel_input(X_train, widths)
        y_train = np.ascontiguousarray(y_train, dtype=X.dtype)
        if sw_train is not None:
            sw_train = np.ascontiguousarray(sw_train, dtype=X.dtype)
        loss_scale = 1.0 / (2 * model.n_outputs) if model.squared else 1.0

        def run(sample_idx):
            """The kernel's epoch over the batches of sample_idx, for the optimiser to call with
            its rule: scikit-learn's gradient (grad_scale, l2) and loss (its two parts)."""
            def kernel(**rule):
                return _api.sgd_epoch(weights, widths, X_train, y_train, sample_idx, batch_size,
                                      decay=0.0, output=model.output,
                                      activation=model.activation, sample_weight=sw_train,
                                      grad_scale=0.5 if model.squared else 1.0, l2=self.alpha,
                                      num_threads=model.threads, **rule)
            return kernel

        diverged = False
        try:
            self.n_iter_ = 0
            for _ in range(self.max_iter):
                if self.shuffle:
                    sample_idx = _shuffled(sample_idx, self._random_state)
                l2_part, error_part = self._optimizer.epoch(run(sample_idx))
                accumulated_loss = loss_scale * error_part + l2_part
                self.n_iter_ += 1
                self.loss_ = accumulated_loss / X_train.shape[0]
                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
                if not (diverged or math.isfinite(self.loss_)):
                    # scikit-learn's fit goes on as well (NumPy warns of the overflow there);
                    # early stopping then keeps the best weights, else fit raises at the end
                    diverged = True
                    warnings.warn(f"The loss became {self.loss_} at epoch {self.n_iter_}: the "
                                  f"weights overflowed (learning_rate_init too large?).",
                                  RuntimeWarning)
                self._set_weights(weights)
                self._update_no_improvement_count(early_stopping, X_val, y_val, sw_val)
                self._optimizer.iteration_ends(self.t_)
                if self._no_improvement_count > self.n_iter_no_change:
                    what = ("Validation score" if early_stopping else "Training loss")
                    msg = (f"{what} did not improve more than tol={self.tol:f} for "
                           f"{self.n_iter_no_change} consecutive epochs.")
                    if self._optimizer.trigger_stopping(msg, self.verbose):
                        break
                    self._no_improvement_count = 0
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and the "
                                  "optimization hasn't converged yet." % self.max_iter,
                                  ConvergenceWarning)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        if early_stopping:
            self.coefs_ = self._best_coefs
            self.intercepts_ = self._best_intercepts
        else:
            self._set_weights(weights)

    def _update_no_improvement_count(self, early_stopping, X, y, sample_weight):
        if early_stopping:
            score = self._score(X, y, sample_weight=sample_weight)
            self.validation_scores_.append(score)
            if self.verbose:
                print("Validation score: %f" % self.validation_scores_[-1])
            last = self.validation_scores_[-1]
            # the rule on the negated score (negation is exact: the same comparisons)
            self._no_improvement_count, improved = no_improvement(
                self._no_improvement_count, -self.best_validation_score_, -last, self.tol)
            if improved:
                self.best_validation_score_ = last
                self._best_coefs = [c.copy() for c in self.coefs_]
                self._best_intercepts = [i.copy() for i in self.intercepts_]
        else:
            self._no_improvement_count, improved = no_improvement(
                self._no_improvement_count, self.best_loss_, self.loss_curve_[-1], self.tol)
            if improved:
                self.best_loss_ = self.loss_curve_[-1]

    def _fit_full_batch(self, model, layer_units, X, y, sample_weight, inner=None, sw_sum=None):
        """lbfgs as scikit-learn runs it (scipy's L-BFGS-B: maxiter, maxfun, gtol = tol), and
        fastbp's own full-batch methods, all through fastbp.training.train on scikit-learn's
        loss over `inner`, fastbp's E_in (default: of X, y in memory). n_iter_ counts iterations
        (epochs), loss_ is the loss at the end."""
        weights = [np.array(w) for w in model.weights(self.coefs_, self.intercepts_)]
        if inner is None:
            # (DataObjective takes its sample weights in the network's dtype, as the kernels
            # read them)
            inner = DataObjective(layer_units, model.dtype, _kernel_input(X, layer_units), y,
                                  model.output, model.threads,
                                  activation=model.activation,
                                  sample_weight=None if sample_weight is None else
                                  np.ascontiguousarray(sample_weight, dtype=model.dtype))
            sw_sum = X.shape[0] if sample_weight is None else float(sample_weight.sum())
        objective = _LossObjective(model, inner, sw_sum, self.alpha)
        if self.solver == "lbfgs":
            opts = FitOptions.check("lbfgs", epochs=self.max_iter, max_fun=self.max_fun,
                                    gtol=self.tol, num_threads=self.num_threads)
        else:
            opts = self._fastbp_options(layer_units)
        history = train(weights, objective, opts)
        self.n_iter_ = len(history)
        self.loss_ = history.E_aug[-1] if len(history) else history.start["E_aug"]
        if self.solver != "lbfgs":
            self.loss_curve_ = list(history.E_aug)
            self.best_loss_ = min(self.loss_curve_, default=self.loss_)
        if self.solver == "lbfgs" and history.stop_reason in ("epochs", "max_fun"):
            limit = "max_iter" if history.stop_reason == "epochs" else "max_fun"
            warnings.warn(f"lbfgs failed to converge after {self.n_iter_} iteration(s) "
                          f"(stopped by {limit}). Increase the number of iterations to improve "
                          f"the convergence.", ConvergenceWarning)
        self._set_weights(weights)

    def _fastbp_options(self, layer_units):
        """FitOptions of fastbp's own full-batch solvers: max_iter epochs; stop when the loss has
        not fallen by tol for n_iter_no_change epochs, as scikit-learn's stochastic solvers do
        (a rule the kernel's blocks of epochs run under)."""
        own = {} if self.solver == "rprop" else {"learning_rate": self.learning_rate_init}
        if self.solver == "gd":
            own.update(momentum=self.momentum, nesterov=self.nesterovs_momentum)
        return FitOptions.check(self.solver, epochs=self.max_iter, num_threads=self.num_threads,
                                callback=NoImprovement(self.tol, self.n_iter_no_change),
                                **own)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix `X` and target(s) `y`.

        As scikit-learn's MLP fits it, on fastbp's kernels.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data (a sparse matrix is made dense).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The targets: class labels (or a label-indicator matrix) for a classifier, real
            values for a regressor.
        sample_weight : array-like of shape (n_samples,) or None, default=None
            Weights of the samples; None weights each sample 1.

        Returns
        -------
        self
            The fitted estimator.

        Raises
        ------
        ValueError
            If a parameter or the data are not valid (scikit-learn's checks), or the solver
            produced non-finite weights.

        Examples
        --------
        >>> import numpy as np
        >>> from fastbp.sklearn import MLPClassifier
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((40, 2))
        >>> y = (X[:, 0] + X[:, 1] > 0).astype(int)
        >>> clf = MLPClassifier(hidden_layer_sizes=(5,), solver="lbfgs", random_state=0)
        >>> clf.fit(X, y)
        MLPClassifier(hidden_layer_sizes=(5,), random_state=0, solver='lbfgs')
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def _fit_dask(self, X, y, sample_weight):
        """fit on Dask arrays (chunked by rows): the full-batch solvers, each loss and gradient
        computed where the chunks are by fastbp.distributed (the default Dask client's cluster),
        the solver on the client. The model is the one fit computes in memory, to rounding."""
        from . import distributed as fd
        if self.solver in _STOCHASTIC:
            raise ValueError(f"solver={self.solver!r} steps through mini-batches one after "
                             f"another, which a cluster cannot share out: with Dask arrays use a "
                             f"full-batch solver ({', '.join(map(repr, _FULL_BATCH))}), or "
                             f"dask_ml.wrappers.Incremental over partial_fit")
        hidden = self._hidden_layer_sizes()
        if X.ndim != 2:
            raise ValueError(f"X must be a 2-D Dask array, got {X.ndim} dimensions")
        first_pass = not hasattr(self, "coefs_") or not self.warm_start
        if first_pass:
            self.n_features_in_ = int(X.shape[1])
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is "
                             f"expecting {self.n_features_in_} features as input.")
        dtype = np.dtype(np.float32 if X.dtype == np.float32 else np.float64)
        Y = self._dask_targets(y, dtype, first_pass)
        self.n_outputs_ = int(Y.shape[1])
        layer_units = [int(X.shape[1])] + hidden + [self.n_outputs_]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(np.empty((0, self.n_outputs_)), layer_units, dtype)
        model = _Model(self, dtype)
        client = fd._client(None)
        sw_sum = (float(X.shape[0]) if sample_weight is None
                  else float(sample_weight.sum(dtype=np.float64).compute()))
        inner = fd.ClusterObjective(client, X.astype(dtype), Y, layer_units, dtype, model.output,
                                    activation=model.activation, sample_weight=sample_weight)
        try:
            self._fit_full_batch(model, layer_units, None, None, None, inner=inner,
                                 sw_sum=sw_sum)
        finally:
            inner.release()
        return self

    def _dask_targets(self, y, dtype, first_pass):
        """y as the network's targets, a Dask array (N, d(L)) of the network's dtype."""
        if not isinstance(self, ClassifierMixin):
            Y = y.astype(dtype)
            return Y.reshape(-1, 1) if Y.ndim == 1 else Y
        if first_pass or not hasattr(self, "_label_binarizer"):
            self._label_binarizer = LabelBinarizer()
            if y.ndim == 1:
                self._label_binarizer.fit(np.unique(y.compute()))
            else:                                       # a multilabel indicator matrix
                self._label_binarizer.fit(y[: min(len(y), 1000)].compute())
            self.classes_ = self._label_binarizer.classes_
        lb = self._label_binarizer
        width = 1 if len(lb.classes_) == 2 and lb.y_type_ != "multilabel-indicator" else (
            len(lb.classes_))
        chunks = (y.chunks[0], (width,))
        if y.ndim == 1:
            return y.map_blocks(lambda b: lb.transform(b).astype(dtype), new_axis=1,
                                chunks=chunks, dtype=dtype)
        return y.map_blocks(lambda b: lb.transform(b).astype(dtype), chunks=chunks, dtype=dtype)

    def _check_solver(self):
        if self.solver not in _STOCHASTIC:
            raise AttributeError("partial_fit is only available for stochastic optimizers. "
                                 "%s is not stochastic." % self.solver)
        return True

    # --- predicting ---------------------------------------------------------------------------
    def _forward_pass_fast(self, X, check_input=True):
        if _is_dask(X):               # computed where X's chunks are, a Dask array back
            return X.map_blocks(self._forward_pass_fast, dtype=self.coefs_[0].dtype,
                                chunks=(X.chunks[0], (self.n_outputs_,)))
        if check_input:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        if not all(np.isfinite(w).all() for w in self.coefs_ + self.intercepts_):
            return self._forward_pass_diverged(X)
        model = _Model(self, self.coefs_[0].dtype)
        return model.forward(model.weights(self.coefs_, self.intercepts_), X)

    def _forward_pass_diverged(self, X):
        """The outputs of a network whose weights hold NaN or infinity (a diverged stochastic
        fit: its validation scores, its predictions), which fastbp's kernels refuse: computed
        as scikit-learn computes them, in NumPy with its activations, so that they are NaN,
        infinite or saturated where scikit-learn's are."""
        from sklearn.neural_network._base import ACTIVATIONS
        activation = X
        for i, (coef, intercept) in enumerate(zip(self.coefs_, self.intercepts_)):
            activation = activation @ coef
            activation += intercept
            if i != self.n_layers_ - 2:
                ACTIVATIONS[self.activation](activation)
        ACTIVATIONS[self.out_activation_](activation)
        return activation

    def _score_with_function(self, X, y, sample_weight, score_function):
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return score_function(y, y_pred, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def _is_dask(a) -> bool:
    """A Dask array (told by its type's module: fastbp.sklearn does not import Dask)."""
    return type(a).__module__.split(".")[0] == "dask" and hasattr(a, "chunks")


def layer_units_of(weights):
    """[d(0), ..., d(L)] of fastbp weight arrays."""
    return [weights[0].shape[0] - 1] + [w.shape[1] for w in weights]


def _kernel_input(X, layer_units):
    """X as the kernels read it, converted once for a whole fit: a sparse X as its checked CSR
    arrays (fastbp._sparse.SparseRows: never a dense copy), a dense one C-contiguous."""
    if scipy.sparse.issparse(X):
        return _checks.check_X(X, layer_units, X.dtype)
    return np.ascontiguousarray(X)


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """A multi-layer perceptron classifier: scikit-learn's MLPClassifier, computed by fastbp.

    The same parameters and defaults and the same model as scikit-learn's
    `sklearn.neural_network.MLPClassifier`, its fitted attributes included; `num_threads` is
    fastbp's, and `solver` also takes fastbp's full-batch methods "gd", "variable-lr",
    "steepest", "cg" and "rprop". The module's docstring says how scikit-learn's loss and
    gradient are computed from fastbp's.

    Parameters
    ----------
    <shared parameters>

    Attributes
    ----------
    <shared attributes>
    classes_ : ndarray
        The class labels.

    See Also
    --------
    MLPRegressor : The regressor.
    fastbp.Network : The network of fastbp's own API, with its E_in.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbp.sklearn import MLPClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((40, 2))
    >>> y = (X[:, 0] + X[:, 1] > 0).astype(int)
    >>> clf = MLPClassifier(hidden_layer_sizes=(5,), solver="lbfgs", random_state=0).fit(X, y)
    >>> clf.classes_, [c.shape for c in clf.coefs_]
    (array([0, 1]), [(2, 5), (5, 1)])
    >>> clf.predict([[1.0, 1.0], [-1.0, -1.0]])
    array([1, 0])
    >>> clf.score(X, y)
    1.0
    """

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError("warm_start can only be used where `y` has the same classes "
                                     f"as in the previous call to fit. Previously got "
                                     f"{self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                                 f"{self.classes_}. 'y' has {classes}.")
        y = self._label_binarizer.transform(y).astype(bool)
        return X, y

    def predict(self, X):
        """Predict the classes of the samples in `X`.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_classes)
            The predicted classes ((n_samples, n_classes) for multilabel targets).

        Examples
        --------
        >>> import numpy as np
        >>> from fastbp.sklearn import MLPClassifier
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((40, 2))
        >>> y = (X[:, 0] + X[:, 1] > 0).astype(int)
        >>> clf = MLPClassifier(hidden_layer_sizes=(5,), solver="lbfgs", random_state=0).fit(X, y)
        >>> clf.predict([[1.0, 1.0], [-1.0, -1.0]])
        array([1, 0])
        """
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X, check_input=True):
        if _is_dask(X):               # the labels of each chunk, where it is
            multilabel = self._label_binarizer.y_type_ == "multilabel-indicator"
            if multilabel:
                return X.map_blocks(self._predict, dtype=self.classes_.dtype,
                                    chunks=(X.chunks[0], (len(self.classes_),)))
            return X.map_blocks(self._predict, dtype=self.classes_.dtype, drop_axis=1)
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return self._label_binarizer.inverse_transform(y_pred)

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, sample_weight, accuracy_score)

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Run one epoch over (`X`, `y`), from the current weights.

        Only for the stochastic solvers ("sgd", "adam").

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
            The class labels.
        sample_weight : array-like of shape (n_samples,) or None, default=None
            Weights of the samples; None weights each sample 1.
        classes : array-like of shape (n_classes,) or None, default=None
            Every class of the problem: needed on the first call, ignored afterwards.

        Returns
        -------
        self
            The fitted estimator.

        Raises
        ------
        AttributeError
            If the solver is not stochastic.

        Examples
        --------
        >>> import numpy as np
        >>> from fastbp.sklearn import MLPClassifier
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((40, 2))
        >>> y = (X[:, 0] + X[:, 1] > 0).astype(int)
        >>> clf = MLPClassifier(hidden_layer_sizes=(5,), random_state=0)
        >>> for _ in range(3):
        ...     clf = clf.partial_fit(X, y, classes=[0, 1])
        >>> clf.predict(X[:3]).shape
        (3,)
        """
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict_log_proba(self, X):
        """Predict the logarithm of the class probabilities: log(predict_proba(X)).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            The log-probability of each class, in the order of `classes_`.

        Examples
        --------
        >>> import numpy as np
        >>> from fastbp.sklearn import MLPClassifier
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((40, 2))
        >>> y = (X[:, 0] + X[:, 1] > 0).astype(int)
        >>> clf = MLPClassifier(hidden_layer_sizes=(5,), solver="lbfgs", random_state=0).fit(X, y)
        >>> log_proba = clf.predict_log_proba([[0.0, 0.0]])
        >>> log_proba.shape, bool(np.allclose(np.exp(log_proba).sum(), 1))
        ((1, 2), True)
        """
        y_prob = self.predict_proba(X)
        return np.log(y_prob, out=y_prob)

    def predict_proba(self, X):
        """Predict the probability of each class.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            The probability of each class, in the order of `classes_`.

        Examples
        --------
        >>> import numpy as np
        >>> from fastbp.sklearn import MLPClassifier
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((40, 2))
        >>> y = (X[:, 0] + X[:, 1] > 0).astype(int)
        >>> clf = MLPClassifier(hidden_layer_sizes=(5,), solver="lbfgs", random_state=0).fit(X, y)
        >>> proba = clf.predict_proba([[1.0, 1.0], [-1.0, -1.0]])
        >>> proba.shape, bool(np.allclose(proba.sum(axis=1), 1))
        ((2, 2), True)
        """
        check_is_fitted(self)
        y_pred = self._forward_pass_fast(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    # --- exchange with scikit-learn (fastbp._exchange) ----------------------------------------

    def to_sklearn(self, solver=None):
        """Return scikit-learn's own `sklearn.neural_network.MLPClassifier`, fitted as this one.

        Parameters
        ----------
        solver : {"lbfgs", "sgd", "adam"} or None, default=None
            The copy's solver (None: this estimator's, which must then be one of scikit-learn's;
            fastbp's own solvers "gd", "variable-lr", "steepest", "cg" and "rprop" need one).

        Returns
        -------
        sklearn.neural_network.MLPClassifier
            A new estimator with this one's parameters (but `num_threads`) and fitted state:
            ``coefs_``, ``intercepts_``, ``classes_``, ``n_iter_``, ``t_``,
            ``loss_``, ``loss_curve_``, ``out_activation_`` and the rest, and the stochastic
            solvers' state (velocities, Adam's moments and step count), so its predictions are
            this one's and a further ``partial_fit`` or warm-started ``fit`` goes on as this
            one's would. Nothing is shared with this estimator.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        ValueError
            If its solver is fastbp's own and `solver` is None, or `solver` is not one of
            scikit-learn's.

        See Also
        --------
        from_sklearn : The reverse.

        Examples
        --------
        >>> import numpy as np
        >>> from fastbp.sklearn import MLPClassifier
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((40, 2))
        >>> y = (X[:, 0] + X[:, 1] > 0).astype(int)
        >>> clf = MLPClassifier(hidden_layer_sizes=(5,), solver="lbfgs", random_state=0).fit(X, y)
        >>> theirs = clf.to_sklearn()
        >>> type(theirs).__module__
        'sklearn.neural_network._multilayer_perceptron'
        >>> bool(np.allclose(theirs.predict_proba(X), clf.predict_proba(X), rtol=1e-10))
        True
        """
        from ._exchange import to_sklearn
        return to_sklearn(self, (_SGD, _Adam), solver=solver)

    @classmethod
    def from_sklearn(cls, fitted, num_threads=None):
        """Make a fastbp MLPClassifier from a fitted scikit-learn one.

        Parameters
        ----------
        fitted : sklearn.neural_network.MLPClassifier
            A fitted estimator.
        num_threads : int or None, default=None
            The new estimator's `num_threads`.

        Returns
        -------
        MLPClassifier
            A new estimator with `fitted`'s parameters and fitted state (its optimiser's too),
            so that its predictions are `fitted`'s and a further ``partial_fit`` or
            warm-started ``fit`` goes on as `fitted`'s would, on fastbp's kernels. Nothing is
            shared with `fitted`.

        Raises
        ------
        TypeError
            If `fitted` is not a scikit-learn MLPClassifier.
        sklearn.exceptions.NotFittedError
            If it is not fitted.

        See Also
        --------
        to_sklearn : The reverse.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn import neural_network
        >>> from fastbp.sklearn import MLPClassifier
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((40, 2))
        >>> y = (X[:, 0] + X[:, 1] > 0).astype(int)
        >>> theirs = neural_network.MLPClassifier(hidden_layer_sizes=(5,), solver="lbfgs",
        ...                                       random_state=0).fit(X, y)
        >>> clf = MLPClassifier.from_sklearn(theirs)
        >>> bool(np.allclose(theirs.predict_proba(X), clf.predict_proba(X), rtol=1e-10))
        True
        """
        from ._exchange import from_sklearn
        return from_sklearn(cls, fitted, (_SGD, _Adam), num_threads=num_threads)


class MLPRegressor(RegressorMixin, _BaseMLP):
    """A multi-layer perceptron regressor: scikit-learn's MLPRegressor, computed by fastbp.

    The same parameters and defaults and the same model as scikit-learn's
    `sklearn.neural_network.MLPRegressor` (loss "squared_error" or "poisson"), its fitted
    attributes included; `num_threads` is fastbp's, and `solver` also takes fastbp's full-batch
    methods. The module's docstring says how scikit-learn's loss and gradient are computed from
    fastbp's.

    Parameters
    ----------
    loss : {"squared_error", "poisson"}, default="squared_error"
        The loss: half the squared error, averaged over samples and outputs; or half the Poisson
        deviance (the output exp(s): a log link), averaged over samples and summed over outputs,
        for counts or rates y >= 0.
    <shared parameters>

    Attributes
    ----------
    <shared attributes>

    See Also
    --------
    MLPClassifier : The classifier.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbp.sklearn import MLPRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, (40, 1))
    >>> y = np.sin(3 * X[:, 0])
    >>> reg = MLPRegressor(hidden_layer_sizes=(10,), activation="tanh", solver="lbfgs",
    ...                    max_iter=500, random_state=0).fit(X, y)
    >>> reg.predict(X[:3]).shape
    (3,)
    >>> reg.score(X, y) > 0.9
    True
    """

    _parameter_constraints: dict = {**_BaseMLP._parameter_constraints,
                                    "loss": [StrOptions({"squared_error", "poisson"})]}

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 num_threads=None):
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init,
            power_t=power_t, max_iter=max_iter, shuffle=shuffle, random_state=random_state,
            tol=tol, verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
            num_threads=num_threads)
        self.loss = loss

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=True, dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and (y < 0).any():
            raise ValueError("Some value(s) of y are negative which is not allowed for "
                             "loss='poisson' (counts or rates).")
        return X, y

    def predict(self, X):
        """Predict the targets of the samples in `X`.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The predicted values.

        Examples
        --------
        >>> import numpy as np
        >>> from fastbp.sklearn import MLPRegressor
        >>> rng = np.random.default_rng(0)
        >>> X = rng.uniform(-1, 1, (40, 1))
        >>> y = np.sin(3 * X[:, 0])
        >>> reg = MLPRegressor(hidden_layer_sizes=(10,), solver="lbfgs", max_iter=500,
        ...                    random_state=0).fit(X, y)
        >>> reg.predict(X[:3]).shape
        (3,)
        """
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if y_pred.shape[1] == 1:
            return y_pred.ravel()
        return y_pred

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, sample_weight, r2_score)

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Run one epoch over (`X`, `y`), from the current weights.

        Only for the stochastic solvers ("sgd", "adam").

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The targets.
        sample_weight : array-like of shape (n_samples,) or None, default=None
            Weights of the samples; None weights each sample 1.

        Returns
        -------
        self
            The fitted estimator.

        Raises
        ------
        AttributeError
            If the solver is not stochastic.

        Examples
        --------
        >>> import numpy as np
        >>> from fastbp.sklearn import MLPRegressor
        >>> rng = np.random.default_rng(0)
        >>> X = rng.uniform(-1, 1, (40, 1))
        >>> y = np.sin(3 * X[:, 0])
        >>> reg = MLPRegressor(hidden_layer_sizes=(5,), random_state=0)
        >>> reg = reg.partial_fit(X, y)
        >>> reg.n_iter_
        1
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    # --- exchange with scikit-learn (fastbp._exchange) ----------------------------------------

    def to_sklearn(self, solver=None):
        """Return scikit-learn's own `sklearn.neural_network.MLPRegressor`, fitted as this one.

        Parameters
        ----------
        solver : {"lbfgs", "sgd", "adam"} or None, default=None
            The copy's solver (None: this estimator's, which must then be one of scikit-learn's;
            fastbp's own solvers "gd", "variable-lr", "steepest", "cg" and "rprop" need one).

        Returns
        -------
        sklearn.neural_network.MLPRegressor
            A new estimator with this one's parameters (but `num_threads`) and fitted state:
            ``coefs_``, ``intercepts_``, ``n_iter_``, ``t_``,
            ``loss_``, ``loss_curve_``, ``out_activation_`` and the rest, and the stochastic
            solvers' state (velocities, Adam's moments and step count), so its predictions are
            this one's and a further ``partial_fit`` or warm-started ``fit`` goes on as this
            one's would. Nothing is shared with this estimator.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        ValueError
            If its solver is fastbp's own and `solver` is None, or `solver` is not one of
            scikit-learn's.

        See Also
        --------
        from_sklearn : The reverse.

        Examples
        --------
        >>> import numpy as np
        >>> from fastbp.sklearn import MLPRegressor
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((40, 2))
        >>> y = np.sin(3 * X[:, 0])
        >>> reg = MLPRegressor(hidden_layer_sizes=(5,), solver="lbfgs", max_iter=2000,
        ...                    random_state=0).fit(X, y)
        >>> theirs = reg.to_sklearn()
        >>> type(theirs).__module__
        'sklearn.neural_network._multilayer_perceptron'
        >>> bool(np.allclose(theirs.predict(X), reg.predict(X), rtol=1e-10))
        True
        """
        from ._exchange import to_sklearn
        return to_sklearn(self, (_SGD, _Adam), solver=solver)

    @classmethod
    def from_sklearn(cls, fitted, num_threads=None):
        """Make a fastbp MLPRegressor from a fitted scikit-learn one.

        Parameters
        ----------
        fitted : sklearn.neural_network.MLPRegressor
            A fitted estimator (loss 'squared_error' or 'poisson').
        num_threads : int or None, default=None
            The new estimator's `num_threads`.

        Returns
        -------
        MLPRegressor
            A new estimator with `fitted`'s parameters and fitted state (its optimiser's too),
            so that its predictions are `fitted`'s and a further ``partial_fit`` or
            warm-started ``fit`` goes on as `fitted`'s would, on fastbp's kernels. Nothing is
            shared with `fitted`.

        Raises
        ------
        TypeError
            If `fitted` is not a scikit-learn MLPRegressor.
        sklearn.exceptions.NotFittedError
            If it is not fitted.

        See Also
        --------
        to_sklearn : The reverse.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn import neural_network
        >>> from fastbp.sklearn import MLPRegressor
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((40, 2))
        >>> y = np.sin(3 * X[:, 0])
        >>> theirs = neural_network.MLPRegressor(hidden_layer_sizes=(5,), solver="lbfgs",
        ...                                      max_iter=2000, random_state=0).fit(X, y)
        >>> reg = MLPRegressor.from_sklearn(theirs)
        >>> bool(np.allclose(theirs.predict(X), reg.predict(X), rtol=1e-10))
        True
        """
        from ._exchange import from_sklearn
        return from_sklearn(cls, fitted, (_SGD, _Adam), num_threads=num_threads)


def skops_trusted_types() -> list[str]:
    """List the fastbp types to trust when loading these estimators with ``skops.io.load``.

    Returns
    -------
    list of str
        The names of `MLPClassifier`, `MLPRegressor` and of the two optimiser classes their
        stochastic solvers keep (``_optimizer``): all that a skops file of a fastbp estimator
        holds beyond the types skops trusts by default (NumPy's, scikit-learn's). skops builds
        these objects from their attributes without running any code of the file.

    Examples
    --------
    >>> import numpy as np
    >>> import skops.io
    >>> from fastbp.sklearn import MLPClassifier, skops_trusted_types
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((40, 2))
    >>> y = (X[:, 0] + X[:, 1] > 0).astype(int)
    >>> clf = MLPClassifier(hidden_layer_sizes=(5,), solver="lbfgs", random_state=0).fit(X, y)
    >>> data = skops.io.dumps(clf)
    >>> skops.io.get_untrusted_types(data=data)
    ['fastbp.sklearn.MLPClassifier']
    >>> same = skops.io.loads(data, trusted=skops_trusted_types())
    >>> bool((same.predict_proba(X) == clf.predict_proba(X)).all())
    True
    """
    return [f"{c.__module__}.{c.__qualname__}" for c in (MLPClassifier, MLPRegressor, _SGD, _Adam)]


__all__ += ["skops_trusted_types"]
