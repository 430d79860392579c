"""Training: `fit` and its methods (gd, sgd, variable-lr, steepest, cg), stopping rules, history.

Everything here is Python over the public functions `gradient` and `error`; nothing loops over
samples. The one loop over steps that runs in the compiled kernel is a whole SGD epoch
(`_sgd_epoch`): mini-batch SGD pays no Python or dispatch cost per mini-batch.

The objective (Learning From Data, e-Chapter 7): with weight decay lambda >= 0 and N training
samples

    E_aug(w) = E_in(w) + (lambda / N) * sum of the squares of ALL weights, bias rows included,
    grad E_aug = grad E_in + (2 lambda / N) * w.

The book's sum runs over every w_ij(l), i = 0 (the bias) included, and so does this one: one rule,
no special rows. With lambda = 0, E_aug = E_in.

How a call works, so that it can fail or be interrupted safely:
1. every argument is checked before anything else happens (ValueError / TypeError naming it);
2. training runs on a private flat copy of the weights;
3. at the end of each epoch the copy is committed into the caller's arrays, together with the
   epoch's line in the history. A Ctrl-C (KeyboardInterrupt) in the middle of an epoch drops that
   epoch: the caller's weights are those of the last completed epoch, and `fit` returns the history
   so far with `stop_reason == "interrupted"`.
"""
from __future__ import annotations

import math
import numbers
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from numpy.typing import ArrayLike

from . import _api, _checks

METHODS = ("gd", "sgd", "variable-lr", "steepest", "cg")

# Bracketing gives up after this many halvings (no decrease along the direction: converged) or
# doublings (the error keeps falling: take the best point found).
_MAX_HALVINGS = 60
_MAX_DOUBLINGS = 60

_RECORD_FIELDS = ("epoch", "E_in", "E_aug", "E_val", "learning_rate", "accepted", "time")


@dataclass
class History:
    """What `fit` did, one entry per completed epoch (epochs counted from 1 in each call).

    - `E_in`: in-sample error of the weights at the end of the epoch, on the training set;
    - `E_aug`: the objective minimised, E_in + (lambda/N) sum w^2 (equal to E_in without decay);
    - `E_val`: error on the validation set (an empty list without one);
    - `learning_rate`: the step size used in the epoch (for steepest/cg: the one the line search
      found; for variable-lr: the one tried);
    - `accepted`: False for a step that variable-lr rejected (always True for the other methods);
    - `time`: wall-clock seconds since the start of the call, at the end of the epoch.
    `start` holds E_in, E_aug (and E_val) of the weights `fit` started from. `stop_reason` is one
    of "epochs", "tol", "early_stopping", "callback", "converged", "diverged", "interrupted".
    With early stopping, `best_epoch` is the epoch whose weights were restored (0: the start).
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

    def __len__(self) -> int:
        return len(self.epoch)

    @property
    def interrupted(self) -> bool:
        return self.stop_reason == "interrupted"


# ---------------------------------------------------------------------------------------------
# Argument checks (all of them run before any weight changes)

def _real(value, name, low=None, high=None, low_open=False, high_open=False):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (v > high or (high_open and v == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value!r}")
    return v


def _integer(value, name, low):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be at least {low}, got {value!r}")
    return int(value)


def _flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_trainable(weights):
    """weights as `fit` needs them: the checked arrays, widths and dtype, and the caller's arrays
    (writeable float ndarrays, sharing no memory), which `fit` updates in place."""
    checked, widths, dtype = _checks.check_weights(weights)
    for l, w in enumerate(weights):
        if not isinstance(w, np.ndarray) or w.dtype.kind != "f":
            got = type(w).__name__ if not isinstance(w, np.ndarray) else f"dtype {w.dtype}"
            raise TypeError(f"fit trains the weights in place, so weights[{l}] must be a numpy "
                            f"array of float32 or float64, got {got}")
        if not w.flags.writeable:
            raise ValueError(f"fit trains the weights in place, but weights[{l}] is read-only")
    _checks.check_disjoint(weights, "weights")
    return checked, widths, dtype


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


def _check_seed(seed):
    if seed is None or isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be a non-negative integer, a numpy Generator or None, "
                        f"got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _import_tqdm():
    try:
        from tqdm import tqdm
    except ImportError:
        raise ImportError("progress=True shows a progress bar with tqdm, an optional "
                          "dependency that is not installed: pip install tqdm (or use "
                          "progress=False)") from None
    return tqdm


@dataclass
class _Config:
    method: str
    learning_rate: float
    epochs: int
    batch_size: int
    shuffle: bool
    momentum: float
    weight_decay: float
    early_stopping: bool
    patience: int
    tol: float | None
    callback: object
    tqdm: object
    threads: int
    lr_increase: float
    lr_decrease: float
    line_search_steps: int


def _check_fit_args(weights, X, y, output, method, learning_rate, epochs, batch_size, shuffle,
                    momentum, weight_decay, validation_data, validation_fraction, early_stopping,
                    patience, tol, callback, progress, num_threads, seed, lr_increase, lr_decrease,
                    line_search_steps):
    checked, widths, dtype = _check_trainable(weights)
    output = _checks.check_output(output)
    X = _checks.check_X(X, widths, dtype)
    y = _checks.check_y(y, widths, dtype, X.shape[0])
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    cfg = _Config(
        method=method,
        learning_rate=_real(learning_rate, "learning_rate", low=0, low_open=True),
        epochs=_integer(epochs, "epochs", 1),
        batch_size=_integer(batch_size, "batch_size", 1),
        shuffle=_flag(shuffle, "shuffle"),
        momentum=_real(momentum, "momentum", low=0, high=1, high_open=True),
        weight_decay=_real(weight_decay, "weight_decay", low=0),
        early_stopping=_flag(early_stopping, "early_stopping"),
        patience=_integer(patience, "patience", 1),
        tol=None if tol is None else _real(tol, "tol", low=0),
        callback=callback,
        tqdm=_import_tqdm() if _flag(progress, "progress") else None,
        threads=_checks.check_num_threads(num_threads, _api.available_threads()),
        lr_increase=_real(lr_increase, "lr_increase", low=1, low_open=True),
        lr_decrease=_real(lr_decrease, "lr_decrease", low=0, high=1, low_open=True,
                          high_open=True),
        line_search_steps=_integer(line_search_steps, "line_search_steps", 0),
    )
    if cfg.momentum and method not in ("gd", "sgd"):
        raise ValueError(f"momentum applies to method 'gd' and 'sgd' only, got momentum="
                         f"{momentum!r} with method={method!r}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
    seed = _check_seed(seed)

    # Validation set: given, or a seeded fraction of (X, y) held out.
    if validation_data is not None and validation_fraction is not None:
        raise ValueError("give validation_data or validation_fraction, not both")
    Xv = yv = None
    n_val = 0
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise TypeError(f"validation_data must be a pair (X_val, y_val), got "
                            f"{type(validation_data).__name__}"
                            + (f" of length {len(validation_data)}"
                               if isinstance(validation_data, (tuple, list)) else ""))
        Xv = _checks.check_X(validation_data[0], widths, dtype, name="validation_data[0]")
        yv = _checks.check_y(validation_data[1], widths, dtype, Xv.shape[0],
                             name="validation_data[1]")
    elif validation_fraction is not None:
        fraction = _real(validation_fraction, "validation_fraction", low=0, high=1,
                         low_open=True, high_open=True)
        n = X.shape[0]
        n_val = max(1, int(round(fraction * n)))
        if n_val >= n:
            raise ValueError(f"validation_fraction={validation_fraction!r} of N = {n} samples "
                             f"leaves no training sample")
    if early_stopping and Xv is None and not n_val:
        raise ValueError("early_stopping=True needs a validation set: give validation_data or "
                         "validation_fraction")
    check_not_symmetric(checked)

    # Every check passed: only now draw from the generator (it may be the caller's).
    rng = np.random.default_rng(seed)
    if n_val:
        perm = rng.permutation(X.shape[0])
        val, train = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        Xv, yv, X, y = X[val], y[val], X[train], y[train]
    return cfg, checked, widths, dtype, output, X, y, Xv, yv, rng


# ---------------------------------------------------------------------------------------------
# The objective on flat weight vectors

def _error(weights, X, y, output, threads) -> float:
    return _api.error(weights, X, y, output=output, num_threads=threads)


def _sum_squares(w) -> float:
    """sum w^2 over a flat vector, in float64 and in a fixed order (no BLAS)."""
    return float(np.square(w, dtype=np.float64).sum())


def _dot(a, b) -> float:
    return float(np.multiply(a, b, dtype=np.float64).sum())


class _Objective:
    """E_in, E_aug and grad E_aug of flat weight vectors, for one data set."""

    def __init__(self, widths, dtype, X, y, output, threads, weight_decay):
        self.shapes = [(a + 1, b) for a, b in zip(widths[:-1], widths[1:])]
        self.size = sum(a * b for a, b in self.shapes)
        self.dtype = dtype
        self.X, self.y, self.output, self.threads = X, y, output, threads
        self.weight_decay = weight_decay
        self.decay = weight_decay / X.shape[0]         # lambda / N

    def views(self, flat):
        out, pos = [], 0
        for shape in self.shapes:
            n = shape[0] * shape[1]
            out.append(flat[pos:pos + n].reshape(shape))
            pos += n
        return out

    def flat(self, arrays):
        return np.concatenate([np.asarray(a, dtype=self.dtype).ravel() for a in arrays])

    def augment(self, E_in, w) -> float:
        return E_in + self.decay * _sum_squares(w) if self.decay else E_in

    def error(self, w, views=None):
        """(E_in, E_aug) at the flat weights w."""
        E_in = _error(views if views is not None else self.views(w), self.X, self.y,
                      self.output, self.threads)
        return E_in, self.augment(E_in, w)

    def gradient(self, w, g, w_views=None, g_views=None):
        """(E_in, E_aug) at w; writes grad E_aug into the flat g."""
        E_in, _ = _api.gradient(w_views if w_views is not None else self.views(w), self.X,
                                self.y, output=self.output, num_threads=self.threads,
                                out=g_views if g_views is not None else self.views(g))
        if self.decay:
            g += (2.0 * self.decay) * w
        return E_in, self.augment(E_in, w)


# ---------------------------------------------------------------------------------------------
# One epoch of each method. Each works on flat vectors in `state` and returns the epoch's record
# (E_in, E_aug, learning rate, accepted), or None when it has converged (no step possible).

def _sgd_epoch(weights, X, y, order, batch_size, lr, momentum, velocity, weight_decay, output,
               num_threads):
    """One epoch of mini-batch SGD, in place on `weights` (and `velocity`).

    weights      IN/OUT  list of C-contiguous arrays W(1..L), float32 or float64, updated in place
    X, y         IN      the N training samples, C-contiguous, in the weights' dtype; y is (N, d(L))
    order        IN      int64 array: a permutation of 0..N-1, the order samples are visited in
    batch_size   IN      B >= 1; the epoch has ceil(N / B) steps, the last batch holding the rest
    lr           IN      learning rate eta > 0
    momentum     IN      mu in [0, 1)
    velocity     IN/OUT  list of arrays shaped like weights (ignored, may be None, when mu == 0)
    weight_decay IN      lambda >= 0 (N in lambda/N is len(X), the whole training set)
    output       as for `gradient`
    num_threads  unused: the steps run one after another on one thread. Sharing a step of a
                 small network out among cores costs more than it saves: each step would hand
                 every layer's activations (a few KiB) from one core to the other, and on the
                 2-core development machine that alone took about as long as the whole step on
                 one core (measured; see the notes of issue 4). The result does not depend on it.

    Step k, on the batch b = order[k B : (k+1) B], in the weights' dtype, layer by layer:
        g = (1/|b|) sum_{n in b} grad e_n(w)       (fastbp.gradient, reduction="mean")
        g = g + (2 lambda / N) * w                 (only when lambda > 0)
        v = mu * v - eta * g;  w = w + v           (when mu > 0)
        w = w - eta * g                            (when mu == 0; the same as v = -eta g, w += v)
    With B = 1 this is the lecture's SGD: w <- w - eta grad e_n(w), one sample at a time.

    The whole epoch is one call into the compiled kernel (fastbp._core.sgd_epoch), which does
    exactly these operations, in this order, in the weights' dtype: no Python runs per step.
    """
    n = X.shape[0]
    c = 2.0 * weight_decay / n
    widths = [weights[0].shape[0] - 1] + [w.shape[1] for w in weights]
    _api.sgd_epoch(weights, widths, X, y, order, batch_size, lr, momentum, velocity, c, output)


class _State:
    """The flat working copy and what the methods carry from one epoch to the next."""

    def __init__(self, obj: _Objective, w0):
        self.obj = obj
        self.w = w0
        self.w_views = obj.views(self.w)
        self.g = np.zeros_like(w0)
        self.g_views = obj.views(self.g)
        self.trial = np.empty_like(w0)
        self.trial_views = obj.views(self.trial)
        self.E = None            # (E_in, E_aug) at w, as the method last computed them
        self.d = None            # search direction (cg)
        self.v = None            # velocity (gd, sgd with momentum)
        self.since_restart = 0   # cg steps since the last restart

    def copy_from(self, other: "_State"):
        np.copyto(self.w, other.w)
        np.copyto(self.g, other.g)
        self.E = other.E
        self.d = None if other.d is None else other.d.copy()
        self.v = None if other.v is None else other.v.copy()
        self.since_restart = other.since_restart

    def gradient(self):
        self.E = self.obj.gradient(self.w, self.g, self.w_views, self.g_views)
        return self.E

    def move(self, eta, d):
        """self.trial = w + eta d."""
        np.multiply(d, eta, out=self.trial)
        self.trial += self.w

    def error_at(self, eta, d):
        """(E_in, E_aug) at w + eta d, left in self.trial."""
        self.move(eta, d)
        return self.obj.error(self.trial, self.trial_views)

    def accept_trial(self):
        """w <- trial (by swapping the buffers)."""
        self.w, self.trial = self.trial, self.w
        self.w_views, self.trial_views = self.trial_views, self.w_views


def _prepare(state: _State, cfg: _Config):
    """Before the first epoch: what each method needs at the starting weights."""
    if cfg.method == "gd":
        state.gradient()
    elif cfg.method in ("variable-lr", "steepest", "cg"):
        # error-mode E (the one trial steps are compared with), then the gradient.
        E = state.obj.error(state.w, state.w_views)
        state.gradient()
        state.E = E
        state.d = -state.g
    else:
        state.E = state.obj.error(state.w, state.w_views)
    if cfg.momentum:
        state.v = np.zeros_like(state.w)


def _epoch_gd(state: _State, cfg: _Config, lr):
    if cfg.momentum:
        state.v *= cfg.momentum
        state.v -= lr * state.g
        state.w += state.v
    else:
        state.w -= lr * state.g
    state.gradient()
    return lr, True


def _epoch_sgd(state: _State, cfg: _Config, lr, rng):
    obj = state.obj
    n = obj.X.shape[0]
    order = rng.permutation(n) if cfg.shuffle else np.arange(n)
    velocity = obj.views(state.v) if cfg.momentum else None
    _sgd_epoch(state.w_views, obj.X, obj.y, order, min(cfg.batch_size, n), lr, cfg.momentum,
               velocity, cfg.weight_decay, obj.output, obj.threads)
    state.E = obj.error(state.w, state.w_views)
    return lr, True


def _epoch_variable_lr(state: _State, cfg: _Config, lr):
    """Bold driver: try w - eta g; accept (eta *= alpha) if E_aug falls, else keep w and the
    cached gradient (eta *= beta). A rejected step costs one error evaluation."""
    E_try = state.error_at(-lr, state.g)
    if np.array_equal(state.trial, state.w):
        return None                             # the step no longer changes w: converged
    if E_try[1] < state.E[1]:
        state.accept_trial()
        state.gradient()
        state.E = E_try
        return lr, True
    return lr, False


def _line_search(phi, E0, eta, steps):
    """argmin over eta > 0 of phi(eta) (phi(0) = E0): bracket a < b < c with phi(b) below both
    ends (by halving or doubling eta), then `steps` refinements by a safeguarded quadratic fit
    (bisection of the larger half when the parabola's vertex is unusable). Returns (eta, phi(eta)),
    or (0, E0) when no step along the direction lowers phi."""
    a, Ea = 0.0, E0
    b, Eb = eta, phi(eta)
    if not Eb < Ea:
        for _ in range(_MAX_HALVINGS):
            c, Ec = b, Eb
            b = b / 2
            Eb = phi(b)
            if Eb < Ea:
                break
        else:
            return 0.0, E0
    else:
        c = 2 * b
        Ec = phi(c)
        for _ in range(_MAX_DOUBLINGS):
            if not Ec < Eb:
                break
            a, Ea, b, Eb = b, Eb, c, Ec
            c = 2 * c
            Ec = phi(c)
        else:
            return b, Eb
    for _ in range(steps):
        u = None
        den = (b - a) * (Eb - Ec) - (b - c) * (Eb - Ea)
        if den != 0:
            u = b - 0.5 * ((b - a) ** 2 * (Eb - Ec) - (b - c) ** 2 * (Eb - Ea)) / den
            if not (a < u < c) or abs(u - b) < 1e-3 * (c - a):
                u = None
        if u is None:
            u = (a + b) / 2 if b - a > c - b else (b + c) / 2
        if not a < u < c or u == b:
            break                               # the bracket is down to rounding
        Eu = phi(u)
        if Eu < Eb:
            if u > b:
                a, Ea = b, Eb
            else:
                c, Ec = b, Eb
            b, Eb = u, Eu
        elif u > b:
            c, Ec = u, Eu
        else:
            a, Ea = u, Eu
    return b, Eb


def _line_step(state: _State, cfg: _Config, lr):
    """Move w to the line-search minimum along state.d; False when no step lowers E_aug."""
    found = {}

    def phi(eta):
        E = state.error_at(eta, state.d)
        found[eta] = E
        return E[1]

    eta, _ = _line_search(phi, state.E[1], lr, cfg.line_search_steps)
    if eta == 0.0:
        return None
    state.move(eta, state.d)                # w + eta d, computed as phi computed it
    state.accept_trial()
    return eta, found[eta]


def _epoch_steepest(state: _State, cfg: _Config, lr):
    state.d = -state.g
    step = _line_step(state, cfg, lr)
    if step is None:
        return None
    eta, E = step
    state.gradient()
    state.E = E
    return eta, True


def _epoch_cg(state: _State, cfg: _Config, lr):
    """Polak-Ribiere conjugate gradients with the line search; the direction restarts at -g when
    the coefficient goes negative, every Q steps (Q = number of weights), or when it is not a
    descent direction."""
    if _dot(state.d, state.g) >= 0:
        state.d = -state.g
        state.since_restart = 0
    step = _line_step(state, cfg, lr)
    if step is None:
        if state.since_restart == 0:
            return None
        state.d = -state.g                  # restart once before giving up
        state.since_restart = 0
        step = _line_step(state, cfg, lr)
        if step is None:
            return None
    eta, E = step
    g_old = state.g.copy()
    state.gradient()
    state.E = E
    gg = _dot(g_old, g_old)
    beta = _dot(state.g, state.g - g_old) / gg if gg > 0 else 0.0
    state.since_restart += 1
    if beta <= 0 or state.since_restart >= state.obj.size:
        beta = 0.0
        state.since_restart = 0
    state.d = beta * state.d - state.g
    return eta, True


# ---------------------------------------------------------------------------------------------
# fit

def _commit(targets, views):
    """Copy the working weights into the caller's arrays, finishing the copy even if Ctrl-C
    arrives during it; True if it did (the caller then raises KeyboardInterrupt)."""
    return _uninterrupted(lambda: [np.copyto(t, v) for t, v in zip(targets, views)])


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


def fit(weights: list[np.ndarray], X: ArrayLike, y: ArrayLike, output: str = "tanh",
        method: str = "sgd", learning_rate: float = 0.1, epochs: int = 100, batch_size: int = 32,
        shuffle: bool = True, momentum: float = 0.0, weight_decay: float = 0.0,
        validation_data: tuple[ArrayLike, ArrayLike] | None = None,
        validation_fraction: float | None = None, early_stopping: bool = False,
        patience: int = 10, tol: float | None = None,
        callback: Callable[[History], bool | None] | None = None, progress: bool = False,
        num_threads: int | None = None, seed: int | np.random.Generator | None = 0,
        lr_increase: float = 1.1, lr_decrease: float = 0.5,
        line_search_steps: int = 20) -> History:
    """Train `weights` (a list of float arrays W(1..L), updated in place) on (X, y).

    Continues from the current weights, so a second call goes on training. Returns a `History`.

    method:
      "gd"          batch gradient descent: w <- w - eta grad E_aug(w) (with momentum mu > 0:
                    v <- mu v - eta g, w <- w + v), one full-batch gradient per epoch;
      "sgd"         mini-batch SGD (see `_sgd_epoch`): batches of `batch_size` (1: the lecture's
                    per-sample SGD; larger than N: the whole set) in an order reshuffled every epoch
                    from the seeded generator (`shuffle=False`: in data order), optional momentum;
      "variable-lr" bold driver: if E_aug(w - eta g) < E_aug(w) accept and eta <- lr_increase eta
                    (alpha), else keep w and its cached gradient and eta <- lr_decrease eta (beta);
                    one epoch is one trial step;
      "steepest"    steepest descent: w <- w + eta* d, d = -g, eta* from a line search (bracket by
                    halving/doubling from the last eta*, then `line_search_steps` refinements by
                    quadratic fit or bisection); `learning_rate` is the first trial step;
      "cg"          Polak-Ribiere conjugate gradients with the same line search, restarted when the
                    coefficient goes negative and at least every Q steps (Q = number of weights).
    For every method one epoch is one step except for sgd (one pass over the training set).

    weight_decay lambda: minimise E_aug = E_in + (lambda/N) sum of all squared weights (bias rows
    included; N = number of training samples). validation_data=(X_val, y_val), or
    validation_fraction: that fraction of (X, y) held out at random (from `seed`) before training.
    early_stopping (needs a validation set): stop after `patience` epochs without a lower E_val
    and restore the weights with the lowest E_val (the starting weights included). tol: stop when
    |E_aug change| <= tol * E_aug of the previous epoch (rejected variable-lr steps don't count).
    callback(history) is called after every epoch; returning False stops (None goes on).
    progress=True shows a tqdm progress bar (tqdm is an optional dependency). num_threads as for
    `gradient`. seed: int, numpy Generator or None (None: not reproducible); the same seed, data and
    arguments give bitwise the same weights. Momentum and the line search's last step size start
    afresh at every call.

    Every argument is checked before anything changes; an exception leaves the weights as they
    were. A Ctrl-C stops after the last completed epoch (see the module docstring). If the error
    becomes infinite or NaN, the epoch is dropped and fit stops with a RuntimeWarning.
    """
    cfg, checked, widths, dtype, output, X, y, Xv, yv, rng = _check_fit_args(
        weights, X, y, output, method, learning_rate, epochs, batch_size, shuffle, momentum,
        weight_decay, validation_data, validation_fraction, early_stopping, patience, tol,
        callback, progress, num_threads, seed, lr_increase, lr_decrease, line_search_steps)
    obj = _Objective(widths, dtype, X, y, output, cfg.threads, cfg.weight_decay)
    history = History(method=cfg.method)
    t0 = time.perf_counter()
    targets = list(weights)

    state = _State(obj, obj.flat(checked))
    bar = None
    best = None            # (E_val, epoch, flat weights) with early stopping
    stop_reason = "epochs"
    try:
        _prepare(state, cfg)
        history.start = {"E_in": state.E[0], "E_aug": state.E[1]}
        if Xv is not None:
            E_val0 = _error(state.w_views, Xv, yv, output, cfg.threads)
            history.start["E_val"] = E_val0
            if cfg.early_stopping:
                best = (E_val0, 0, state.w.copy())
        if cfg.tqdm is not None:
            bar = cfg.tqdm(total=cfg.epochs, unit="epoch", desc=f"fit {cfg.method}")
        # `work` takes the epoch; `state` holds the last committed epoch. Swapping them is the
        # commit of the method's state, so an epoch interrupted half-way is simply dropped.
        work = _State(obj, state.w.copy())
        lr = cfg.learning_rate
        since_best = 0
        for epoch in range(1, cfg.epochs + 1):
            work.copy_from(state)
            if cfg.method == "gd":
                step = _epoch_gd(work, cfg, lr)
            elif cfg.method == "sgd":
                step = _epoch_sgd(work, cfg, lr, rng)
            elif cfg.method == "variable-lr":
                step = _epoch_variable_lr(work, cfg, lr)
            elif cfg.method == "steepest":
                step = _epoch_steepest(work, cfg, lr)
            else:
                step = _epoch_cg(work, cfg, lr)
            if step is None:
                stop_reason = "converged"
                break
            lr_used, accepted = step
            E_in, E_aug = work.E
            if not (math.isfinite(E_aug) and np.isfinite(work.w).all()):
                warnings.warn(f"fit stopped at epoch {epoch}: the error or the weights became "
                              f"infinite or NaN (learning_rate too large?); the weights are those "
                              f"of epoch {epoch - 1}", RuntimeWarning, stacklevel=2)
                stop_reason = "diverged"
                break
            E_val = _error(work.w_views, Xv, yv, output, cfg.threads) if Xv is not None else None
            E_prev = state.E[1]

            # Commit: the caller's weights, the history line, the best weights so far. An
            # interrupt inside the block is held back until the block is done.
            n_done = len(history.epoch)
            record = (epoch, E_in, E_aug, E_val, lr_used, accepted, time.perf_counter() - t0)
            improved = best is not None and E_val < best[0]

            def commit_epoch():
                nonlocal best
                for t, v in zip(targets, work.w_views):
                    np.copyto(t, v)
                for name, value in zip(_RECORD_FIELDS, record):
                    column = getattr(history, name)
                    if value is not None:
                        del column[n_done:]
                        column.append(value)
                if improved:
                    best = (E_val, epoch, work.w.copy())

            interrupted = _uninterrupted(commit_epoch)
            state, work = work, state
            if interrupted:
                raise KeyboardInterrupt

            if cfg.method == "variable-lr":
                lr = lr * (cfg.lr_increase if accepted else cfg.lr_decrease)
            elif cfg.method in ("steepest", "cg"):
                lr = lr_used
            if bar is not None:
                post = {"E_aug" if cfg.weight_decay else "E_in": f"{E_aug:.4g}"}
                if E_val is not None:
                    post["E_val"] = f"{E_val:.4g}"
                bar.set_postfix(post, refresh=False)
                bar.update(1)
            if best is not None:
                since_best = 0 if improved else since_best + 1
                if since_best >= cfg.patience:
                    stop_reason = "early_stopping"
                    break
            if cfg.tol is not None and accepted and abs(E_prev - E_aug) <= cfg.tol * abs(E_prev):
                stop_reason = "tol"
                break
            if cfg.callback is not None and cfg.callback(history) is False:
                stop_reason = "callback"
                break
    except KeyboardInterrupt:
        stop_reason = "interrupted"
    finally:
        if bar is not None:
            bar.close()
    if best is not None:
        history.best_epoch = best[1]
        if best[1] != len(history):
            _commit(targets, obj.views(best[2]))
    history.stop_reason = stop_reason
    return history
