"""Training: `fit`, the loop every method runs in, stopping rules, history.

The methods themselves are classes in fastbp._methods (one each, one registry), their options one
checked object (fastbp._options.FitOptions), the objective they minimise fastbp._objective. Here is
what they share: the checks of the data, the validation set, committing each epoch, early
stopping, tol, the callback, the progress bar, Ctrl-C. Nothing here loops over samples.

How a call works, so that it can fail or be interrupted safely:
1. every argument is checked before anything else happens (ValueError / TypeError naming it);
2. training runs on a private flat copy of the weights;
3. at the end of each epoch the copy is committed into the caller's arrays, together with the
   epoch's line in the history. A Ctrl-C (KeyboardInterrupt) in the middle of an epoch drops that
   epoch: the caller's weights are those of the last completed epoch, and `fit` returns the history
   so far with `stop_reason == "interrupted"`.
   gd, variable-lr and rprop on data in memory run blocks of epochs in one kernel call each
   (fastbp._methods.KernelEpochs; one epoch per block with a callback or a validation set), with
   bitwise the results of epoch-by-epoch training: a block is committed at its end, one history
   line per epoch, and a Ctrl-C arriving during a block stops training after it (its epochs are
   complete and kept).

To train on data that is not in memory, give `train` an objective of your own (a subclass of
fastbp._objective.Objective: E_in and its gradient at per-layer weights) and, for E_val, another;
every full-batch method then runs unchanged (fastbp.distributed does this on a Dask cluster).
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import _api, _checks
from ._methods import import_scipy_minimize
from ._objective import DataObjective, Objective
from ._options import FitOptions
from ._sparse import SparseRows

_RECORD_FIELDS = ("epoch", "E_in", "E_aug", "E_val", "learning_rate", "accepted", "time")


@dataclass
class History:
    """What `fit` did, one entry per completed epoch (epochs counted from 1 in each call).

    `fit` makes it; the lists are its per-epoch records, all of the same length.

    Parameters
    ----------
    method : str
        The training method.
    epoch : list of int
        The epoch numbers, 1, 2, ...
    E_in : list of float
        In-sample error of the weights at the end of each epoch, on the training set.
    E_aug : list of float
        The objective minimised, E_in + (lambda/N) sum w^2 (equal to E_in without decay).
    E_val : list of float
        Error on the validation set (an empty list without one).
    learning_rate : list of float
        The step size used in the epoch (for steepest/cg: the one the line search found; for
        variable-lr: the one tried; NaN for rprop and lbfgs, which have none).
    accepted : list of bool
        False for a step that variable-lr rejected (always True for the other methods).
    time : list of float
        Wall-clock seconds since the start of the call, at the end of the epoch (for epochs run
        in one kernel call, spread evenly over the call's time).
    start : dict
        E_in, E_aug (and E_val) of the weights `fit` started from.
    stop_reason : str
        One of "epochs", "tol", "early_stopping", "callback", "converged", "diverged",
        "interrupted", "max_fun" (lbfgs: max_fun evaluations used up).
    best_epoch : int or None
        With early stopping, the epoch whose weights were restored (0: the start); else None.
    state : dict
        The method's state at the end (its moments, velocities, step sizes or learning rate):
        ``warm_start=history`` goes on from it.

    See Also
    --------
    fit : Returns a History.

    Examples
    --------
    >>> import numpy as np
    >>> import fastbp
    >>> X = np.array([[0.5, -1.0], [1.0, 2.0], [-0.5, 0.3], [2.0, 0.1]])
    >>> y = np.array([1.0, -1.0, 1.0, -1.0])
    >>> weights = fastbp.init_weights([2, 3, 1], seed=0)
    >>> history = fastbp.fit(weights, X, y, method="gd", epochs=3)
    >>> history.epoch, history.stop_reason, len(history)
    ([1, 2, 3], 'epochs', 3)
    >>> history.learning_rate
    [0.1, 0.1, 0.1]
    >>> history.E_in[-1] < history.start["E_in"]
    True
    """
    method: str
    epoch: list = field(default_factory=list)
    E_in: list = field(default_factory=list)
    E_aug: list = field(default_factory=list)
    E_val: list = field(default_factory=list)
    learning_rate: list = field(default_factory=list)
    accepted: list = field(default_factory=list)
    time: list = field(default_factory=list)
    start: dict = field(default_factory=dict)
    stop_reason: str = ""
    best_epoch: int | None = None
    state: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.epoch)

    @property
    def interrupted(self) -> bool:
        """Whether the fit was stopped by Ctrl-C (`stop_reason` is "interrupted").

        Examples
        --------
        >>> import numpy as np
        >>> import fastbp
        >>> X = np.array([[0.5, -1.0], [1.0, 2.0], [-0.5, 0.3], [2.0, 0.1]])
        >>> y = np.array([1.0, -1.0, 1.0, -1.0])
        >>> history = fastbp.fit(fastbp.init_weights([2, 3, 1]), X, y, method="gd", epochs=2)
        >>> history.interrupted
        False
        """
        return self.stop_reason == "interrupted"



def check_not_symmetric(weights) -> None:
    """Refuse weights from which gradient descent cannot break the symmetry of a hidden layer.

    If all columns of W(l) are equal (e.g. all zero) and so are all non-bias rows of W(l+1), the
    d(l) >= 2 units of hidden layer l compute the same value and get the same gradient: every method
    here keeps them identical forever, so the layer acts as one unit. If W(l) and the non-bias rows
    of W(l+1) are all zero, their gradients are zero too and the layer never learns at all.
    """
    for l in range(1, len(weights)):           # hidden layer l, fed by W(l) = weights[l-1]
        w_in, w_out = weights[l - 1], weights[l][1:]
        if not w_in.any() and not w_out.any():
            raise ValueError(
                f"weights[{l - 1}] and weights[{l}][1:] are all zero: every unit of hidden layer "
                f"{l} would output 0 and get a zero gradient, so its units would stay identical "
                f"(and unchanged) whatever the training; start from fastbp.init_weights(...), "
                f"small random weights")
        if w_in.shape[1] >= 2 and (w_in == w_in[:, :1]).all() and (w_out == w_out[:1]).all():
            raise ValueError(
                f"the {w_in.shape[1]} units of hidden layer {l} are identical (weights[{l - 1}] "
                f"has equal columns and weights[{l}] equal non-bias rows): they would get the "
                f"same gradient and stay identical whatever the training; start from "
                f"fastbp.init_weights(...), small random weights")


def _import_tqdm():
    try:  # tqdm.auto: a widget in a Jupyter notebook (when ipywidgets is there), text elsewhere
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError("progress=True shows a progress bar with tqdm, an optional "
                          "dependency that is not installed: pip install tqdm (or use "
                          "progress=False)") from None
    return tqdm


def _uninterrupted(block):
    """Run `block` (idempotent) to completion, re-running it after a KeyboardInterrupt; True if
    one arrived. This keeps the caller's weights and the history from seeing half an epoch."""
    interrupted = False
    while True:
        try:
            block()
            return interrupted
        except KeyboardInterrupt:
            interrupted = True


def _commit(targets, views):
    """Copy the working weights into the caller's arrays, finishing the copy even if Ctrl-C
    arrives during it; True if it did."""
    return _uninterrupted(lambda: [np.copyto(t, v) for t, v in zip(targets, views)])


class _Trainer:
    """What every method's epochs report to: commits, history, stopping rules, progress."""

    def __init__(self, targets, objective: Objective, validation: Objective | None,
                 opts: FitOptions, history: History, stop=None):
        self.targets, self.obj, self.validation = targets, objective, validation
        self.opts, self.history = opts, history
        self.epochs = opts.epochs
        self.t0 = time.perf_counter()
        self.E_prev = None           # E_aug of the committed weights
        # (E_val, epoch, flat weights) with early stopping
        self.best: tuple[float, int, np.ndarray] | None = None
        self.since_best = 0
        self.bar = None
        self.method: Any = None      # the method's committed state (set by Method.run)
        self.stop = stop             # a threading.Event: set, training stops after the epoch

    def E_val(self, w):
        return self.validation.error(w)[0] if self.validation is not None else None

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def end_block(self, w, records, n, t_start):
        """The kernel ran n epochs (fastbp._methods.KernelEpochs), leaving the weights at the flat
        w; records holds their E_in, E_aug, learning rates and accepted flags. Commit them as n
        end_epoch calls would have (a block of more than one epoch has no validation set and no
        callback but a NoImprovement rule, which stops it at its last epoch if at all; it never
        diverged; tol, if it held, held at its last epoch). The epochs' times
        are spread evenly over the block's. Returns why training must stop, or None."""
        opts, history = self.opts, self.history
        E_in, E_aug, lr, accepted = (r[:n].tolist() for r in records)
        accepted = [bool(a) for a in accepted]
        n_done = len(history.epoch)
        t_end = self.elapsed()
        columns = {"epoch": list(range(n_done + 1, n_done + n + 1)), "E_in": E_in,
                   "E_aug": E_aug, "learning_rate": lr, "accepted": accepted,
                   "time": [t_start + (t_end - t_start) * (i + 1) / n for i in range(n)]}
        views = self.obj.views(w)

        def commit_block():
            for t, v in zip(self.targets, views):
                np.copyto(t, v)
            for name, values in columns.items():
                column = getattr(history, name)
                del column[n_done:]
                column.extend(values)

        if _uninterrupted(commit_block) or (self.stop is not None and self.stop.is_set()):
            return "interrupted"
        E_prev = E_aug[-2] if n > 1 else self.E_prev
        self.E_prev = E_aug[-1]
        if self.bar is not None:
            self.bar.set_postfix({"E_aug" if opts.weight_decay else "E_in": f"{E_aug[-1]:.4g}"},
                                 refresh=False)
            self.bar.update(n)
        if (opts.tol is not None and accepted[-1]
                and abs(E_prev - E_aug[-1]) <= opts.tol * abs(E_prev)):
            return "tol"
        if opts.callback is not None:       # a NoImprovement (KernelEpochs.block_size)
            for loss in E_aug:
                if not opts.callback.step(loss):
                    return "callback"
        return None

    def end_epoch(self, w, E, lr_used, accepted):
        """The epoch that left the weights at the flat w with (E_in, E_aug) = E is done: commit
        it, unless it diverged. Returns why training must stop, or None to go on."""
        opts, history = self.opts, self.history
        E_in, E_aug = E
        epoch = len(history.epoch) + 1
        if not (math.isfinite(E_aug) and np.isfinite(w).all()):
            warnings.warn(f"fit stopped at epoch {epoch}: the error or the weights became "
                          f"infinite or NaN (learning_rate too large?); the weights are those "
                          f"of epoch {epoch - 1}", RuntimeWarning, stacklevel=4)
            return "diverged"
        E_val = self.E_val(w)
        record = (epoch, E_in, E_aug, E_val, lr_used, accepted, time.perf_counter() - self.t0)
        improved = self.best is not None and E_val < self.best[0]
        n_done = len(history.epoch)
        views = self.obj.views(w)

        # Commit: the caller's weights, the history line, the best weights so far. An interrupt
        # inside the block is held back until the block is done.
        def commit_epoch():
            for t, v in zip(self.targets, views):
                np.copyto(t, v)
            for name, value in zip(_RECORD_FIELDS, record):
                column = getattr(history, name)
                if value is not None:
                    del column[n_done:]
                    column.append(value)
            if improved:
                self.best = (E_val, epoch, w.copy())

        if _uninterrupted(commit_epoch) or (self.stop is not None and self.stop.is_set()):
            return "interrupted"
        E_prev, self.E_prev = self.E_prev, E_aug

        if self.bar is not None:
            post = {"E_aug" if opts.weight_decay else "E_in": f"{E_aug:.4g}"}
            if E_val is not None:
                post["E_val"] = f"{E_val:.4g}"
            self.bar.set_postfix(post, refresh=False)
            self.bar.update(1)
        if self.best is not None:
            self.since_best = 0 if improved else self.since_best + 1
            if self.since_best >= opts.patience:
                return "early_stopping"
        if opts.tol is not None and accepted and abs(E_prev - E_aug) <= opts.tol * abs(E_prev):
            return "tol"
        if opts.callback is not None and opts.callback(history) is False:
            return "callback"
        return None


def train(targets: list[np.ndarray], objective: Objective, opts: FitOptions,
          validation: Objective | None = None, rng: Any = None, stop=None) -> History:
    """Run `opts.method` on `objective` from the weights in `targets`, updated in place.

    The loop every method runs in, for objectives of one's own (e.g. data that is not in
    memory): `fit` checks its arguments and calls this.

    Parameters
    ----------
    targets : list of ndarray
        The caller's weight arrays W(1), ..., W(L), writeable, of the objective's shapes and
        dtype; updated in place at the end of every epoch.
    objective : fastbp._objective.Objective
        E_in and its gradient at the weights. The mini-batch methods ("sgd", "adam") need a
        `fastbp._objective.DataObjective`, data in memory.
    opts : FitOptions
        The method and its options, from `FitOptions.check`.
    validation : fastbp._objective.Objective or None, default=None
        The objective whose E_in is E_val; None: no validation set.
    rng : numpy.random.Generator or None, default=None
        The generator of the mini-batches' order.
    stop : threading.Event or None, default=None
        Ends training after the epoch during which it is set (stop_reason "interrupted").

    Returns
    -------
    History
        What the training did, one entry per completed epoch.

    Raises
    ------
    ValueError
        If a mini-batch method is given an objective that is not a DataObjective, or
        `warm_start`'s state is of another method or network.

    See Also
    --------
    fit : The checked way in, for data in memory.

    Notes
    -----
    Everything must be checked already: `targets` writeable arrays of the objective's shapes
    and dtype, `opts` from `FitOptions.check`.

    Examples
    --------
    >>> import numpy as np
    >>> import fastbp
    >>> from fastbp._objective import DataObjective
    >>> from fastbp.training import FitOptions, train
    >>> X = np.array([[0.5, -1.0], [1.0, 2.0], [-0.5, 0.3], [2.0, 0.1]])
    >>> y = np.array([[1.0], [-1.0], [1.0], [-1.0]])
    >>> weights = fastbp.init_weights([2, 3, 1], seed=0)
    >>> objective = DataObjective([2, 3, 1], np.float64, X, y, "tanh", 1)
    >>> history = train(weights, objective, FitOptions.check("gd", epochs=5))
    >>> len(history), history.stop_reason
    (5, 'epochs')
    """
    cls = opts.method_class
    if not cls.full_batch and not isinstance(objective, DataObjective):
        raise ValueError(f"method {opts.method!r} works on mini-batches of data in memory; "
                         f"this objective offers full-batch errors and gradients only (use one "
                         f"of the full-batch methods)")
    warm = opts.warm_start
    carried = warm.state if warm not in (None, False, True) else None
    if carried is not None:
        _check_carried(carried, cls, objective.size)
    history = History(method=opts.method)
    trainer = _Trainer(targets, objective, validation, opts, history, stop)
    method = cls(objective, opts, rng, objective.flat(targets))
    trainer.method = method
    stop_reason = "epochs"
    try:
        method.start(carried)
        trainer.E_prev = method.E[1]
        history.start = {"E_in": method.E[0], "E_aug": method.E[1]}
        if validation is not None:
            E_val0 = trainer.E_val(method.w)
            history.start["E_val"] = E_val0
            if opts.early_stopping:
                trainer.best = (E_val0, 0, method.w.copy())
        if opts.progress:
            trainer.bar = _import_tqdm()(total=opts.epochs, unit="epoch", desc=f"fit {opts.method}")
        stop_reason = method.run(trainer)
    except KeyboardInterrupt:
        stop_reason = "interrupted"
    finally:
        if trainer.bar is not None:
            trainer.bar.close()
    best = trainer.best
    if best is not None:
        history.best_epoch = best[1]
        if best[1] != len(history):
            _commit(targets, objective.views(best[2]))
    history.stop_reason = stop_reason
    history.state = {"method": opts.method, **trainer.method.state()}
    return history


def _check_carried(state, cls, size):
    """warm_start's state must come from the same method and a network of the same shape."""
    if state.get("method") != cls.name:
        raise ValueError(f"warm_start is the history of a fit with method "
                         f"{state.get('method')!r}, not {cls.name!r}: its state does not apply")
    for name in cls.carry:
        value = state.get(name)
        if isinstance(value, np.ndarray) and value.shape != (size,):
            raise ValueError(f"warm_start's {name} has shape {value.shape}, but this network has "
                             f"{size} weights")
        if name not in state:          # (None is a state too: gd's v without momentum)
            raise ValueError(f"warm_start's history has no {name}: it did not end with a state "
                             f"of method {cls.name!r}")


def check_validation(opts: FitOptions, X, y, widths, dtype, rng):
    """(X, y, X_val, y_val): the validation set given, or a seeded fraction of (X, y) held out."""
    Xv = yv = None
    if opts.validation_data is not None:
        data = opts.validation_data
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise TypeError(f"validation_data must be a pair (X_val, y_val), got "
                            f"{type(data).__name__}"
                            + (f" of length {len(data)}" if isinstance(data, (tuple, list))
                               else ""))
        Xv = _checks.check_X(data[0], widths, dtype, name="validation_data[0]")
        yv = _checks.check_y(data[1], widths, dtype, Xv.shape[0], name="validation_data[1]",
                             x_name="validation_data[0]")
        return X, y, Xv, yv, None
    if opts.validation_fraction is not None:
        n = X.shape[0]
        n_val = max(1, int(round(opts.validation_fraction * n)))
        if n_val >= n:
            raise ValueError(f"validation_fraction={opts.validation_fraction!r} of N = {n} "
                             f"samples leaves no training sample")
        return X, y, None, None, n_val
    return X, y, None, None, None


def fit(weights: list[np.ndarray], X: ArrayLike, y: ArrayLike, output: str = "tanh",
        method: str = "sgd", *, activation: str = "tanh", sample_weight: ArrayLike | None = None,
        **options) -> History:
    r"""Train `weights` on (`X`, `y`), in place, from where they are.

    Parameters
    ----------
    weights : list of ndarray
        W(1), ..., W(L), float32 or float64 arrays, writeable; updated in place at the end of
        every epoch. A second call goes on training from where the first ended.
    X : array_like or scipy.sparse matrix of shape (N, d(0))
        The training inputs; a sparse one is computed sparse (CSR as it is,
        other formats converted once; never made dense).
    y : array_like of shape (N, d(L)) or (N,)
        The training targets.
    output : {"tanh", "linear", "logistic", "softmax", "poisson"}, default="tanh"
        The output activation theta_L and its error measure, as for `fastbp.gradient`.
    method : str, default="sgd"
        The training method: "sgd", "gd", "adam", "variable-lr", "steepest", "cg", "rprop" or
        "lbfgs" (see Notes).
    activation : {"tanh", "relu", "logistic", "identity"}, default="tanh"
        The activation theta of the hidden layers.
    sample_weight : array_like of shape (N,) or None, default=None
        Weights w_n >= 0 of the samples: they weight E_in and every method's gradients (each
        mini-batch's gradient is its weighted mean). With `validation_fraction` the held-out
        samples keep their weights, and E_val is weighted by them.
    **options
        The options of `fastbp.training.FitOptions` (see there): the common ones and the
        method's own; an option the method does not take is an error. Defaults:
        learning_rate 0.1 (adam 0.001), epochs 100, batch_size 32, shuffle True, momentum 0,
        beta1 0.9, beta2 0.999, eps 1e-8, lr_increase 1.1, lr_decrease 0.5,
        line_search_steps 20, step_initial 0.1, step_increase 1.2, step_decrease 0.5,
        step_min 1e-6, step_max 50, max_fun 15000, gtol 1e-5, seed 0.

    Returns
    -------
    History
        What the fit did, one entry per completed epoch.

    Raises
    ------
    ValueError
        If an argument or option is not valid, or the method does not take an option given.
        Every argument is checked before anything changes: an exception leaves the weights as
        they were.
    TypeError
        If an argument is of the wrong type or an option is unknown.

    Warns
    -----
    RuntimeWarning
        If the error becomes infinite or NaN: the epoch is dropped and fit stops
        (stop_reason "diverged").

    See Also
    --------
    fit_many : Train several networks at once, one per thread.
    Network.fit : The same on a Network, with random restarts.
    fastbp.training.FitOptions : Every option, checked.

    Notes
    -----
    One epoch is one step, except for sgd and adam: one pass over the training set.

    - "gd": batch gradient descent, w <- w - eta grad E_aug(w) (with momentum mu > 0:
      v <- mu v - eta g, w <- w + v; nesterov=True: w <- w + mu v - eta g);
    - "sgd": mini-batch SGD, batches of `batch_size` in an order reshuffled every epoch from the
      seeded generator (``shuffle=False``: in data order), optional momentum and nesterov; the
      whole epoch in one kernel call;
    - "adam": Adam on the same mini-batches (beta1, beta2, eps; scikit-learn's bias
      correction), the whole epoch in one kernel call;
    - "variable-lr": bold driver, if E_aug(w - eta g) < E_aug(w) accept and
      eta <- lr_increase eta, else keep w and its cached gradient and eta <- lr_decrease eta;
    - "steepest": steepest descent with a line search (bracket by halving/doubling from the
      last step, then `line_search_steps` refinements by quadratic fit or bisection);
    - "cg": Polak-Ribiere conjugate gradients with the same line search, restarted when the
      coefficient goes negative and at least every Q steps (Q = number of weights);
    - "rprop": iRPROP-, a step size per weight, grown by step_increase while the gradient keeps
      its sign, shrunk by step_decrease when it flips, within [step_min, step_max], starting at
      step_initial; full batch;
    - "lbfgs": L-BFGS-B from scipy.optimize (SciPy needed: pip install "fastbp[scipy]"), as
      scikit-learn's MLP uses it: maxiter = epochs, maxfun = max_fun, gtol.

    With weight decay lambda, the methods minimise

    .. math:: E_{aug}(w) = E_{in}(w) + \frac{\lambda}{N} \sum w^2

    over all the weights (bias rows included; N the number of training samples).

    A Ctrl-C stops after the last completed epoch (see `fastbp.training`'s module docstring):
    the weights are those of that epoch and the history says "interrupted" (gd, variable-lr
    and rprop run up to a few tens of ms of epochs per kernel call: Ctrl-C stops after those).
    The same seed, data, arguments and thread count give bitwise the same weights.

    Examples
    --------
    >>> import numpy as np
    >>> import fastbp
    >>> X = np.array([[0.5, -1.0], [1.0, 2.0], [-0.5, 0.3], [2.0, 0.1]])
    >>> y = np.array([1.0, -1.0, 1.0, -1.0])
    >>> weights = fastbp.init_weights([2, 3, 1], seed=0)
    >>> history = fastbp.fit(weights, X, y, method="gd", epochs=20, learning_rate=0.1)
    >>> len(history), history.stop_reason
    (20, 'epochs')
    >>> fastbp.error(weights, X, y) < history.start["E_in"]
    True
    """
    job = _check_fit(weights, X, y, output, method, options, activation=activation,
                     sample_weight=sample_weight)
    return train(*_start_fit(job))


@dataclass
class _FitJob:
    """One fit, every argument checked: what `_start_fit` needs to begin it."""
    targets: list
    widths: list
    dtype: Any
    X: Any
    y: Any
    Xv: Any
    yv: Any
    n_val: Any
    output: str
    threads: int
    opts: FitOptions
    activation: str = "tanh"
    sample_weight: Any = None


def _check_model_and_options(weights, output, method, options, activation):
    """The checks of a fit that read no data, made first: (options, weights checked, widths,
    dtype, output, activation). fastbp.distributed.fit makes them too."""
    opts = FitOptions.check(method, **options)
    checked, widths, dtype = _checks.check_trainable(weights)
    output = _checks.check_output(output)
    activation = _checks.check_activation(activation)
    _checks.check_output_width(output, widths)
    return opts, checked, widths, dtype, output, activation


def _check_start(opts, checked, widths, caller: str) -> None:
    """The checks of a fit made last, after the data's: weights gradient descent can train, a
    warm_start that applies, SciPy for lbfgs. `caller` names the public function in messages.
    fastbp.distributed.fit makes them too."""
    check_not_symmetric(checked)
    if opts.warm_start is True:
        raise ValueError(f"warm_start=True means Network.fit's own last fit; {caller} takes the "
                         f"History an earlier fit returned")
    if opts.warm_start not in (None, False):
        size = sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:]))
        _check_carried(opts.warm_start.state, opts.method_class, size)
    if opts.method == "lbfgs":
        import_scipy_minimize()         # a missing SciPy is refused before anything changes


def _check_fit(weights, X, y, output, method, options, num_threads=None, activation="tanh",
               sample_weight=None) -> _FitJob:
    """Every check of a fit, before anything changes or is drawn from a generator.
    num_threads (when not None) overrides the option: fit_many gives each network one thread."""
    opts, checked, widths, dtype, output, activation = _check_model_and_options(
        weights, output, method, options, activation)
    X = _checks.check_X(X, widths, dtype)
    y = _checks.check_y(y, widths, dtype, X.shape[0])
    _checks.check_targets(y, output)
    sample_weight = _checks.check_sample_weight(sample_weight, X.shape[0], dtype)
    threads = _checks.check_num_threads(opts.num_threads if num_threads is None else num_threads,
                                        _api.available_threads())
    X, y, Xv, yv, n_val = check_validation(opts, X, y, widths, dtype, None)
    if Xv is not None:
        _checks.check_targets(yv, output, name="validation_data[1]")
    _check_start(opts, checked, widths, "fastbp.fit")
    return _FitJob(list(weights), widths, dtype, X, y, Xv, yv, n_val, output, threads, opts,
                   activation, sample_weight)


def _start_fit(job: _FitJob):
    """The arguments of `train` for a checked fit; draws the validation split (from `seed`)."""
    X, y, Xv, yv, sw = job.X, job.y, job.Xv, job.yv, job.sample_weight
    sw_val = None
    rng = np.random.default_rng(job.opts.seed)
    if job.n_val:
        perm = rng.permutation(X.shape[0])
        val, train_rows = np.sort(perm[:job.n_val]), np.sort(perm[job.n_val:])
        if isinstance(X, SparseRows):
            Xv, X = X.take(val), X.take(train_rows)
        else:
            Xv, X = X[val], X[train_rows]
        yv, y = y[val], y[train_rows]
        if sw is not None:
            sw_val, sw = sw[val], sw[train_rows]
            for part, name in ((sw, "training"), (sw_val, "validation")):
                if not part.any():
                    raise ValueError(f"validation_fraction={job.opts.validation_fraction!r} "
                                     f"(seed {job.opts.seed!r}) left a {name} set whose "
                                     f"sample weights are all 0")
    objective = DataObjective(job.widths, job.dtype, X, y, job.output, job.threads,
                              job.opts.weight_decay, activation=job.activation, sample_weight=sw)
    validation = (DataObjective(job.widths, job.dtype, Xv, yv, job.output, job.threads,
                                activation=job.activation, sample_weight=sw_val)
                  if Xv is not None else None)
    return job.targets, objective, job.opts, validation, rng


def fit_many(weights: list, X: ArrayLike, y: ArrayLike, output: str | None = None,
             method: str = "sgd", options: list[dict] | None = None,
             num_threads: int | None = None, *, activation: str | None = None,
             sample_weight: ArrayLike | None = None, **common) -> list[History]:
    """Train K networks on (`X`, `y`) at once, one per thread.

    Parameters
    ----------
    weights : list of Network or list of list of ndarray
        K networks, each a `fastbp.Network` or a list of weight arrays (the two may be mixed),
        updated in place. A list of arrays weights[k] is trained as
        ``fit(weights[k], X, y, output, method, **common, **options[k])`` would train it; a
        Network as its ``fit(X, y, method, **common, **options[k])`` would (with its own output
        and activation; its `history` becomes the one returned for it, and
        ``warm_start=True`` goes on from its last fit).
    X : array_like or scipy.sparse matrix of shape (N, d(0))
        The training inputs, shared; a sparse one is computed sparse (CSR as it is,
        other formats converted once; never made dense).
    y : array_like of shape (N, d(L)) or (N,)
        The training targets, shared.
    output : {"tanh", "linear", "logistic", "softmax", "poisson"} or None, default=None
        The output activation theta_L and its error measure. None: each Network's own, and
        "tanh" for lists of arrays; given, it must agree with every Network's.
    method : str, default="sgd"
        The training method, as for `fit`.
    options : list of dict or None, default=None
        Each network's own options (e.g. another learning rate); None: none.
    num_threads : int or None, default=None
        The threads of the whole call (None: every core). Not a fit option here: K networks
        or more train side by side, one per thread; fewer share the threads out, each network
        num_threads // K of them for its steps and its E_in (its result is bitwise the same
        on any number).
    activation : {"tanh", "relu", "logistic", "identity"} or None, default=None
        The activation theta of the hidden layers. None: each Network's own, and "tanh" for
        lists of arrays; given, it must agree with every Network's.
    sample_weight : array_like of shape (N,) or None, default=None
        Weights w_n >= 0 of the samples, as for `fit`.
    **common
        The options common to all networks, as for `fit`.

    Returns
    -------
    list of History
        The K histories, in the order of `weights`.

    Raises
    ------
    TypeError
        If `weights` is not a non-empty list of networks, or a network's argument is of the
        wrong type (the message names the network).
    ValueError
        If `options` is not a list of K dicts, `num_threads` is given as a fit option, the
        networks share weight arrays, `output` or `activation` differs from a Network's, or a
        network's argument is not valid. Every network's arguments are checked before any
        network changes.

    See Also
    --------
    fit : One network.

    Notes
    -----
    The same seed, data and arguments give bitwise the same weights and history as that fit
    alone. The kernels release the GIL, so a mini-batch epoch (one kernel call) of one network
    runs while another's does: this is how several random restarts or a small grid of
    hyperparameters use every core, when one network's SGD steps are too small to share.

    Ctrl-C stops every network after its current epoch (each keeps its last completed epoch,
    its history says "interrupted"). A callback runs on the thread of its network.

    Examples
    --------
    >>> import numpy as np
    >>> import fastbp
    >>> X = np.array([[0.5, -1.0], [1.0, 2.0], [-0.5, 0.3], [2.0, 0.1]])
    >>> y = np.array([1.0, -1.0, 1.0, -1.0])
    >>> networks = [fastbp.init_weights([2, 3, 1], seed=k) for k in range(3)]
    >>> histories = fastbp.fit_many(networks, X, y, method="gd", epochs=5,
    ...                             options=[{"learning_rate": lr} for lr in (0.01, 0.1, 1.0)])
    >>> [len(h) for h in histories]
    [5, 5, 5]
    >>> nets = [fastbp.Network([2, 3, 1], seed=k) for k in range(2)]
    >>> histories = fastbp.fit_many(nets, X, y, method="gd", epochs=5)
    >>> nets[0].history is histories[0]
    True
    """
    if not isinstance(weights, (list, tuple)) or not weights:
        one = (" (one network: fit_many takes a list of them, fit_many([net, ...]))"
               if _checks.is_network(weights) else "")
        raise TypeError(f"weights must be a non-empty list of networks (each a Network or a list "
                        f"of weight arrays), got {type(weights).__name__}"
                        + (" of length 0" if isinstance(weights, (list, tuple)) else one))
    if all(isinstance(w, np.ndarray) and w.ndim == 2 for w in weights):
        raise TypeError(f"weights must be a list of networks (each a Network or a list of weight "
                        f"arrays), got a list of {len(weights)} 2-D arrays: the weights of one "
                        f"network? fit trains one network (fastbp.fit(weights, ...)); fit_many "
                        f"takes a list of them (fastbp.fit_many([weights, ...], ...))")
    K = len(weights)
    if options is None:
        options = [{}] * K
    if not isinstance(options, (list, tuple)) or len(options) != K or not all(
            isinstance(o, dict) for o in options):
        raise ValueError(f"options must be a list of {K} dicts, one per network, got "
                         f"{type(options).__name__}"
                         + (f" of length {len(options)}" if isinstance(options, (list, tuple))
                            else ""))
    if "num_threads" in common or any("num_threads" in o for o in options):
        raise ValueError("fit_many trains each network on one thread: give num_threads (how "
                         "many networks train side by side) to fit_many, not as a fit option")
    threads = _checks.check_num_threads(num_threads, _api.available_threads())
    # fewer networks than threads: each its share of them (steps shared as fit's, issue 23)
    per_network = max(1, threads // max(1, K))
    jobs, arrays = [], []
    for k, (w, own) in enumerate(zip(weights, options)):
        try:
            job_output, job_activation = output or "tanh", activation or "tanh"
            merged = {**common, **own}
            if _checks.is_network(w):
                job_output, job_activation = _units_of(w, output, activation)
                if merged.get("warm_start") is True:
                    if w.history is None:
                        raise ValueError("warm_start=True goes on from the network's last fit, "
                                         "but it has not been fitted yet")
                    merged["warm_start"] = w.history
                w = w.weights
            elif merged.get("warm_start") is True:
                raise ValueError("warm_start=True means a Network's own last fit; for a list of "
                                 "weight arrays give the History an earlier fit returned")
            jobs.append(_check_fit(w, X, y, job_output, method, merged, num_threads=per_network,
                                   activation=job_activation, sample_weight=sample_weight))
            arrays.append(w)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"network {k}: {exc}") from None
    every = [a for w in arrays for a in w]
    _checks.check_disjoint(every, "the networks' weight arrays")

    import threading
    from concurrent.futures import ThreadPoolExecutor, wait
    stop = threading.Event()
    # Each network's thread puts its history (or its error) in its own slot: what a network did
    # is kept even when Ctrl-C lands in the main thread between submitting it and noting it.
    results: list[Any] = [None] * K

    def run(k, job):
        try:
            results[k] = (None if stop.is_set()
                          else train(*_start_fit(job), stop=stop))
        except BaseException as exc:    # re-raised by the main thread
            results[k] = exc
            stop.set()                  # a network's error stops the others after their epoch

    pool = ThreadPoolExecutor(max_workers=max(1, min(K, threads)))
    try:
        futures = [pool.submit(run, k, job) for k, job in enumerate(jobs)]
        # waiting in short slices: the main thread then sees a Ctrl-C however it arrives
        # (a signal handled on another thread does not wake a blocked wait)
        while wait(futures, timeout=0.05).not_done:
            pass
    except KeyboardInterrupt:
        pass                            # the networks under way stop after their epoch
    finally:
        stop.set()                      # (all are done unless Ctrl-C or an error came)
        while True:                     # every started network finishes its epoch, through
            try:                        # further Ctrl-Cs
                pool.shutdown(wait=True)
                break
            except KeyboardInterrupt:
                stop.set()
    for r in results:
        if isinstance(r, BaseException):
            raise r
    histories = []
    for r, job, w in zip(results, jobs, weights):
        if r is None:                   # not started before Ctrl-C
            r = History(method=job.opts.method)
            r.stop_reason = "interrupted"
        elif _checks.is_network(w):
            w.history = r               # as its own fit would keep it (for warm_start=True)
        histories.append(r)
    return histories


def _units_of(net, output, activation) -> tuple[str, str]:
    """A Network's output and activation; `output` and `activation` given to fit_many (not None)
    must be the same."""
    for name, given, own in (("output", output, net.output),
                             ("activation", activation, net.activation)):
        if given is not None and given != own:
            raise ValueError(f"{name}={given!r} was given, but this Network's {name} is {own!r} "
                             f"(a Network's units are fixed when it is made: leave {name} out)")
    return net.output, net.activation
