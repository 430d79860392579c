"""The training methods: one class each, one registry.

A method is a `Method` subclass that says
- `name`, the `method=` of `fit`, and `options`: the options it takes beyond the common ones
  (fastbp._options.COMMON), each with its default; `fit` refuses any other;
- `carry`: the state that `warm_start` hands from one `fit` to the next (moments, velocities,
  step sizes, the learning rate reached);
- `start()`: what it needs at the starting weights (E, a gradient), and `epoch()`: one epoch,
  returning (learning rate used, accepted), or None once no step can change the weights.
The training loop (fastbp.training) does not know which method runs: it copies the method's
state before each epoch and commits it after (`copy_from`), so an interrupted epoch is dropped.
Adding a method is one class here and one line in REGISTRY.

Two families share their machinery:
- full-batch methods (`full_batch = True`) see only the flat objective (fastbp._objective):
  `error(w)` and `gradient(w, g)` over flat vectors; any objective works, in memory or on a cluster;
- mini-batch methods (sgd, adam) run their whole epoch in one call into the compiled kernel
  (fastbp._api.sgd_epoch), with no Python per mini-batch, on data in memory.
Every state vector is in the network's dtype: float32 networks train in float32.
"""
from __future__ import annotations

import math
from typing import ClassVar, TypeVar, cast

import numpy as np

from . import _api
from ._objective import dot

# Bracketing gives up after this many halvings (no decrease along the direction: converged) or
# doublings (the error keeps falling: take the best point found).
_MAX_HALVINGS = 60
_MAX_DOUBLINGS = 60


_M = TypeVar("_M", bound="Method")


class Method:
    name: ClassVar[str]
    options: ClassVar[dict] = {}
    full_batch: ClassVar[bool] = True
    carry: ClassVar[tuple] = ()
    # state copied by copy_from: flat arrays (None until used) and plain values
    arrays: ClassVar[tuple] = ("w", "g")
    scalars: ClassVar[tuple] = ("E", "lr")

    def __init__(self, objective, opts, rng, w0):
        self.obj, self.opts, self.rng = objective, opts, rng
        self.w = w0
        self.w_views = objective.views(w0)
        self.g = np.zeros_like(w0)
        self.g_views = objective.views(self.g)
        self.trial = np.empty_like(w0)
        self.trial_views = objective.views(self.trial)
        self.E = None            # (E_in, E_aug) at w, as the method last computed them
        self.lr = opts.learning_rate
        for name in self.arrays:
            if not hasattr(self, name):
                setattr(self, name, None)
        for name in self.scalars:
            if not hasattr(self, name):
                setattr(self, name, None)

    # --- state --------------------------------------------------------------------------------
    def clone(self) -> Method:
        other = type(self)(self.obj, self.opts, self.rng, self.w.copy())
        other.copy_from(self)
        return other

    def copy_from(self, other: Method) -> None:
        for name in self.arrays:
            src, dst = getattr(other, name), getattr(self, name)
            if src is None:
                setattr(self, name, None)
            elif dst is None or dst.shape != src.shape:
                setattr(self, name, src.copy())
            else:
                np.copyto(dst, src)
        for name in self.scalars:
            setattr(self, name, getattr(other, name))

    def state(self) -> dict:
        """The carried state, copied (what `History.state` holds for warm_start)."""
        out = {}
        for name in self.carry:
            value = getattr(self, name)
            out[name] = value.copy() if isinstance(value, np.ndarray) else value
        return out

    def restore(self, state: dict) -> None:
        """Take up the carried state of an earlier fit (checked by fastbp._options)."""
        for name in self.carry:
            value = state[name]
            setattr(self, name, value.astype(self.w.dtype) if isinstance(value, np.ndarray)
                    else value)

    # --- helpers for the full-batch methods ---------------------------------------------------
    def gradient(self):
        if not np.isfinite(self.w).all():       # a step overflowed: the trainer stops, warned
            self.E = (math.nan, math.nan)
        else:
            self.E = self.obj.gradient(self.w, self.g, self.w_views, self.g_views)
        return self.E

    def move(self, eta, d):
        """self.trial = w + eta d."""
        np.multiply(d, eta, out=self.trial)
        self.trial += self.w

    def error_at(self, eta, d):
        """(E_in, E_aug) at w + eta d, left in self.trial."""
        self.move(eta, d)
        if not np.isfinite(self.trial).all():
            return math.inf, math.inf           # never accepted: a line search looks elsewhere
        return self.obj.error(self.trial, self.trial_views)

    def accept_trial(self):
        """w <- trial (by swapping the buffers)."""
        self.w, self.trial = self.trial, self.w
        self.w_views, self.trial_views = self.trial_views, self.w_views

    # --- the protocol ---------------------------------------------------------------------------
    def start(self, state: dict | None = None) -> None:
        """Before the first epoch: E (and what else the method needs) at the starting weights;
        `state` is the carried state of an earlier fit (warm_start) or None."""
        self.gradient()
        if state is not None:
            self.restore(state)

    def epoch(self):
        """One epoch from self.w: (learning rate used, accepted), or None when converged."""
        raise NotImplementedError

    def run(self, trainer) -> str:
        """Epoch after epoch until the trainer says stop; returns the stop reason.
        `self` holds the committed state; each epoch runs on a copy, swapped in by the commit."""
        committed, work = self, self.clone()
        trainer.method = committed
        for _ in range(trainer.epochs):
            work.copy_from(committed)
            committed, work, stop = committed.python_epoch(work, trainer)
            if stop is not None:
                return stop
        return "epochs"

    def python_epoch(self: _M, work: _M, trainer) -> tuple[_M, _M, str | None]:
        """One epoch() on `work`, a copy of `self` (the committed state), ended by the trainer:
        (committed, work, stop), the two swapped when the trainer commits the epoch."""
        step = work.epoch()
        if step is None:
            return self, work, "converged"
        stop = trainer.end_epoch(work.w, work.E, *step)
        if stop == "diverged":
            return self, work, stop
        trainer.method = work
        return work, self, stop


# ---------------------------------------------------------------------------------------------
# Full-batch methods

# gd, variable-lr and rprop on data in memory run blocks of epochs in one kernel call each
# (KernelEpochs); False runs every epoch through the NumPy code of their epoch() (the tests
# compare the two, bit for bit).
KERNEL_EPOCHS = True
# A block is about this many flops (a few tens of ms), counting each epoch's fixed costs as
# _EPOCH_FLOPS: Ctrl-C, tol and a fit_many stop are seen between blocks.
_BLOCK_FLOPS = 1 << 25
_EPOCH_FLOPS = 1 << 16
_MAX_BLOCK = 1 << 16


class NoImprovement:
    """A callback that stops training when E_aug has not fallen below its best by more than `tol`
    for more than `patience` epochs in a row (scikit-learn's n_iter_no_change rule, on its loss
    curve, as fastbp.sklearn's full-batch solvers use it). Its verdict depends on E_aug alone, so
    KernelEpochs can replay it on a block's records (first_stop) and run the kernel's blocks of
    epochs under it, where any other callback makes the blocks one epoch long."""

    def __init__(self, tol: float, patience: int):
        self.tol, self.patience = tol, patience
        self.best, self.count = math.inf, 0

    def step(self, loss: float) -> bool:
        """One more epoch's E_aug; False: stop after it."""
        self.count, improved = no_improvement(self.count, self.best, loss, self.tol)
        if improved:
            self.best = loss
        return self.count <= self.patience

    def __call__(self, history) -> bool:
        return self.step(history.E_aug[-1])

    def first_stop(self, losses) -> int | None:
        """The number of the epoch (1, 2, ...) among the next `losses` after which the rule
        stops, or None; the rule's own state is left as it is."""
        replay = NoImprovement(self.tol, self.patience)
        replay.best, replay.count = self.best, self.count
        for epoch, loss in enumerate(losses, 1):
            if not replay.step(float(loss)):
                return epoch
        return None


class KernelEpochs(Method):
    """Runs the epochs of gd, variable-lr and rprop k at a time, each block one call into the
    compiled kernel (fastbp._api.full_batch_epochs), with bitwise the results of their epoch():
    the same gradients and errors (the kernel calls what fastbp.gradient and fastbp.error call,
    with the same plan), the same updates in the weights' dtype, and the trainer's rules inside
    the block: tol stops the block at its epoch, an epoch that diverges ends it and is redone
    here by epoch() (so the warning and the weights kept are as before), variable-lr's
    convergence ends it before the epoch.

    What only Python can do per epoch (a validation set, early stopping, a callback other than
    NoImprovement, which is replayed on the block's records) makes the blocks one epoch long. A
    Ctrl-C during a block is seen when the block returns: its epochs are committed (those up to
    NoImprovement's stop; a block that ran past it is dropped), then training stops
    ("interrupted"). The objective says whether and how the kernel computes it
    (Objective.kernel_loss: fastbp's E_aug on data in memory, or fastbp.sklearn's loss over it);
    the others (fastbp.distributed, one's own) run epoch()."""
    kernel_rule: ClassVar[str | None]
    epoch_flops: ClassVar[int] = 6      # flops per weight and sample of one epoch

    def kernel_arrays(self):
        """(v, steps, g_prev, trial) as the kernel takes them (None: unused)."""
        return None, None, None, None

    def block_size(self, trainer) -> int:
        callback = self.opts.callback
        if trainer.validation is not None or not (callback is None
                                                  or isinstance(callback, NoImprovement)):
            return 1
        per_epoch = self.epoch_flops * self.obj.size * self.obj.n_samples + _EPOCH_FLOPS
        return max(1, min(_MAX_BLOCK, _BLOCK_FLOPS // per_epoch))

    def kernel_epochs(self, k, E_prev, plan, records, result):
        """Up to k epochs in place; (epochs kept, status, whether Ctrl-C came)."""
        o = self.opts
        data, loss = self.obj.kernel_loss()

        def f(x):
            return 0.0 if x is None else float(x)

        params = np.array([f(o.momentum), f(o.lr_increase), f(o.lr_decrease),
                           f(o.step_increase), f(o.step_decrease), f(o.step_min),
                           f(o.step_max), plan[5], -1.0 if o.tol is None else o.tol])
        state = np.array([self.E[0], self.E[1], E_prev, math.nan if self.lr is None else self.lr])
        result[:] = 0
        interrupted = False
        try:
            _api.full_batch_epochs(plan, self.w_views, data.widths, data.X, data.y,
                                   self.kernel_rule, params, loss, self.w, self.g,
                                   *self.kernel_arrays(), state, k, records, result)
        except KeyboardInterrupt:       # the kernel ran, or did not start: result says which
            interrupted = True
        n, status = int(result[0]), int(result[1])
        self.E = (float(state[0]), float(state[1]))
        if self.lr is not None:
            self.lr = float(state[3])
        return n, status, interrupted

    def run(self, trainer) -> str:
        kernel = self.obj.kernel_loss() if KERNEL_EPOCHS and self.kernel_rule else None
        if kernel is None:
            return super().run(trainer)
        obj = kernel[0]
        committed, work = self, cast(KernelEpochs, self.clone())
        trainer.method = committed
        k_max = self.block_size(trainer)
        plan = _api.full_batch_plan(obj.widths, obj.X, obj.threads, obj.activation, obj.output,
                                    obj.sample_weight)
        records = (np.empty(k_max), np.empty(k_max), np.empty(k_max),
                   np.empty(k_max, dtype=np.uint8))
        result = np.zeros(2, dtype=np.int64)
        left = trainer.epochs
        limit = None        # after a block that diverged: the epochs before it, then it here
        cut = None          # a block past NoImprovement's stop: its epochs up to the stop, again
        rule = self.opts.callback if isinstance(self.opts.callback, NoImprovement) else None
        while left > 0:
            work.copy_from(committed)
            if limit == 0:
                limit = None
                committed, work, stop = committed.python_epoch(work, trainer)
                if stop is not None:
                    return stop
                left -= 1
                continue
            t_start = trainer.elapsed()
            k = cut if cut is not None else min(k_max, left) if limit is None else limit
            n, status, interrupted = work.kernel_epochs(k, trainer.E_prev, plan, records, result)
            if (k_max > 1 and rule is not None and cut is None
                    and status != _api.FULL_BATCH_DIVERGED):
                stop_at = rule.first_stop(records[1][:n])
                if stop_at is not None and stop_at < n:
                    if interrupted:         # not past the stop: this block is dropped
                        return "interrupted"
                    cut = stop_at           # the same epochs again, bit for bit, up to the stop
                    continue
            if status == _api.FULL_BATCH_DIVERGED:
                if interrupted:
                    return "interrupted"
                limit = n                   # redo the n good epochs, then the bad one here
                continue
            stop = None
            if n:
                if k_max == 1:          # the trainer's every check, as after epoch()
                    stop = trainer.end_epoch(work.w, work.E, float(records[2][0]),
                                             bool(records[3][0]))
                else:
                    stop = trainer.end_block(work.w, records, n, t_start)
                committed, work = work, committed
                trainer.method = committed
            if interrupted:
                return "interrupted"
            if stop is not None:
                return stop
            if status == _api.FULL_BATCH_CONVERGED:
                return "converged"
            if limit is not None:
                limit = 0
            left -= n
        return "epochs"


class Momentum:
    """The velocity v of gd and sgd (with momentum > 0), carried by warm_start."""
    carry = ("v",)
    arrays = ("w", "g", "v")

    def start(self, state=None):
        super().start(state)
        if self.v is None and self.opts.momentum:
            self.v = np.zeros_like(self.w)

    @staticmethod
    def rule(plain: str, momentum: float, nesterov: bool) -> str:
        """The kernel's step rule: "nesterov" for Nesterov's momentum (momentum > 0), else
        `plain` ("gd" or "sgd": the heavy ball with momentum > 0, the plain step without)."""
        return "nesterov" if nesterov and momentum else plain


def no_improvement(count: int, best: float, loss: float, tol: float) -> tuple[int, bool]:
    """scikit-learn's n_iter_no_change rule, one epoch of it: (the count of epochs in a row whose
    `loss` has not fallen below `best` by more than `tol`, whether `loss` is below `best`). A
    NaN loss resets the count and is not below, as in scikit-learn."""
    return (count + 1 if loss > best - tol else 0), bool(loss < best)


class GradientDescent(KernelEpochs, Momentum, Method):
    """gd: w <- w - eta grad E_aug(w); with momentum mu > 0, v <- mu v - eta g, w <- w + v
    (nesterov=True: w <- w + mu v - eta g). One full-batch gradient per epoch."""
    name = "gd"
    options = {"learning_rate": 0.1, "momentum": 0.0, "nesterov": False, "warm_start": False}

    @property
    def kernel_rule(self):
        return self.rule("gd", self.opts.momentum, self.opts.nesterov)

    def kernel_arrays(self):
        return (self.v if self.opts.momentum else None), None, None, None

    def epoch(self):
        lr, mu = self.lr, self.opts.momentum
        if mu:
            self.v *= mu
            self.v -= lr * self.g
            if self.opts.nesterov:
                self.w += mu * self.v - lr * self.g
            else:
                self.w += self.v
        else:
            self.w -= lr * self.g
        self.gradient()
        return lr, True


class VariableLR(KernelEpochs, Method):
    """variable-lr, the bold driver: try w - eta g; if E_aug falls accept it and eta <- alpha eta
    (lr_increase), else keep w and its cached gradient and eta <- beta eta (lr_decrease). A
    rejected step costs one error evaluation."""
    name = "variable-lr"
    options = {"learning_rate": 0.1, "lr_increase": 1.1, "lr_decrease": 0.5, "warm_start": False}
    carry = ("lr",)
    kernel_rule: ClassVar[str | None] = "variable-lr"
    epoch_flops = 8                     # a gradient and an error

    def kernel_arrays(self):
        return None, None, None, self.trial

    def start(self, state=None):
        # the error-mode E, which the trial steps are compared with, then the gradient
        E = self.obj.error(self.w, self.w_views)
        super().start(state)
        self.E = E

    def epoch(self):
        lr = self.lr
        E_try = self.error_at(-lr, self.g)
        if np.array_equal(self.trial, self.w):
            return None                         # the step no longer changes w: converged
        if E_try[1] < self.E[1]:
            self.accept_trial()
            self.gradient()
            self.E = E_try
            self.lr = lr * self.opts.lr_increase
            return lr, True
        self.lr = lr * self.opts.lr_decrease
        return lr, False


def line_search(phi, E0, eta, steps):
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
            try:
                u = b - 0.5 * ((b - a) ** 2 * (Eb - Ec) - (b - c) ** 2 * (Eb - Ea)) / den
            except OverflowError:               # a bracket of huge steps: bisect instead
                u = None
            if u is not None and (not (a < u < c) or abs(u - b) < 1e-3 * (c - a)):
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


class SteepestDescent(VariableLR):
    """steepest: w <- w + eta* d, d = -g, eta* from the line search (bracket by halving or
    doubling from the last eta*, then `line_search_steps` refinements); `learning_rate` is the
    first trial step."""
    name = "steepest"
    options = {"learning_rate": 0.1, "line_search_steps": 20, "warm_start": False}
    arrays = ("w", "g", "d")
    kernel_rule = None                  # its epochs are Python's (a line search)

    def line_step(self):
        """Move w to the line-search minimum along self.d; None when no step lowers E_aug."""
        found = {}

        def phi(eta):
            E = self.error_at(eta, self.d)
            found[eta] = E
            return E[1]

        eta, _ = line_search(phi, self.E[1], self.lr, self.opts.line_search_steps)
        if eta == 0.0:
            return None
        self.move(eta, self.d)                  # w + eta d, computed as phi computed it
        self.accept_trial()
        self.lr = eta
        return eta, found[eta]

    def epoch(self):
        self.d = -self.g
        step = self.line_step()
        if step is None:
            return None
        eta, E = step
        self.gradient()
        self.E = E
        return eta, True


class ConjugateGradients(SteepestDescent):
    """cg: Polak-Ribiere conjugate gradients with the line search; the direction restarts at -g
    when the coefficient goes negative, every Q steps (Q = number of weights), or when it is not a
    descent direction."""
    name = "cg"
    scalars = ("E", "lr", "since_restart")

    def start(self, state=None):
        super().start(state)
        self.d = -self.g
        self.since_restart = 0

    def epoch(self):
        if dot(self.d, self.g) >= 0:
            self.d = -self.g
            self.since_restart = 0
        step = self.line_step()
        if step is None:
            if self.since_restart == 0:
                return None
            self.d = -self.g                    # restart once before giving up
            self.since_restart = 0
            step = self.line_step()
            if step is None:
                return None
        eta, E = step
        g_old = self.g.copy()
        self.gradient()
        self.E = E
        gg = dot(g_old, g_old)
        beta = dot(self.g, self.g - g_old) / gg if gg > 0 else 0.0
        self.since_restart += 1
        if beta <= 0 or self.since_restart >= self.obj.size:
            beta = 0.0
            self.since_restart = 0
        self.d = beta * self.d - self.g
        return eta, True


class RPROP(KernelEpochs, Method):
    """rprop: iRPROP- (Igel and Huesken, 2000) on the sign of the full-batch gradient. Every
    weight has its own step Delta: where the gradient kept its sign, Delta <- min(Delta eta+,
    step_max); where it changed sign, Delta <- max(Delta eta-, step_min) and that gradient counts
    as 0 (no step now, no sign comparison next time); then w <- w - sign(g) Delta."""
    name = "rprop"
    options = {"step_initial": 0.1, "step_increase": 1.2, "step_decrease": 0.5,
               "step_min": 1e-6, "step_max": 50.0, "warm_start": False}
    carry = ("steps", "g_prev")
    arrays = ("w", "g", "steps", "g_prev")
    kernel_rule = "rprop"

    def kernel_arrays(self):
        return None, self.steps, self.g_prev, None

    def start(self, state=None):
        super().start(state)
        if self.steps is None:
            self.steps = np.full_like(self.w, self.opts.step_initial)
            self.g_prev = np.zeros_like(self.w)

    def epoch(self):
        o = self.opts
        g = self.g.copy()
        same = g * self.g_prev
        grow, shrink = same > 0, same < 0
        self.steps[grow] = np.minimum(self.steps[grow] * o.step_increase, o.step_max)
        self.steps[shrink] = np.maximum(self.steps[shrink] * o.step_decrease, o.step_min)
        g[shrink] = 0
        self.w -= np.sign(g) * self.steps
        self.g_prev = g
        self.gradient()
        return float("nan"), True


class LBFGS(Method):
    """lbfgs: L-BFGS on the flat float64 objective through scipy.optimize.minimize(method=
    "L-BFGS-B", jac=True), as scikit-learn's MLP calls it (options maxiter = epochs, maxfun =
    max_fun, gtol). One epoch is one L-BFGS iteration; the trainer runs in scipy's callback."""
    name = "lbfgs"
    options = {"max_fun": 15000, "gtol": 1e-5}

    def start(self, state=None):
        self.minimize = import_scipy_minimize()
        super().start(state)

    def run(self, trainer) -> str:
        trainer.method = self
        # flat float64 point -> (E_in, E_aug) at it, the last few
        seen: dict[bytes, tuple[float, float]] = {}

        def objective(x):
            np.copyto(self.w, x, casting="unsafe")
            E = self.gradient()
            key = x.tobytes()
            seen.clear() if len(seen) > 8 else None
            seen[key] = E
            return E[1], self.g.astype(np.float64)

        stop = [None]

        def callback(x):
            E = seen.get(x.tobytes())
            np.copyto(self.trial, x, casting="unsafe")
            if E is None:
                E = self.obj.error(self.trial, self.trial_views)
            stop[0] = trainer.end_epoch(self.trial, E, float("nan"), True)
            if stop[0] is not None:
                raise StopIteration

        result = self.minimize(objective, self.w.astype(np.float64), jac=True,
                               method="L-BFGS-B", callback=callback,
                               options={"maxiter": trainer.epochs, "maxfun": self.opts.max_fun,
                                        "gtol": self.opts.gtol})
        if stop[0] is not None:
            return stop[0]
        if result.nit >= trainer.epochs:
            return "epochs"
        if result.status == 1:
            return "max_fun"        # maxfun reached before maxiter
        return "converged"


def import_scipy_minimize():
    try:
        from scipy.optimize import minimize
    except ImportError:
        raise ImportError("method='lbfgs' runs scipy.optimize.minimize, and SciPy, an optional "
                          "dependency, is not installed: pip install \"fastbp[scipy]\" (or "
                          "pip install scipy)") from None
    return minimize


# ---------------------------------------------------------------------------------------------
# Mini-batch methods: the whole epoch in one kernel call

class MiniBatchMethod(Method):
    """What sgd and adam share: E at the start, the order of the samples of each epoch."""
    full_batch = False

    def start(self, state=None):
        self.E = self.obj.error(self.w, self.w_views)
        if state is not None:
            self.restore(state)

    def order(self):
        n = self.obj.n_samples
        return self.rng.permutation(n) if self.opts.shuffle else np.arange(n)

    def error_after_epoch(self):
        """E at the weights the kernel's epoch left; NaN when a step made them infinite or NaN
        (the error functions refuse such weights; the trainer then stops with a warning)."""
        if not np.isfinite(self.w).all():
            return math.nan, math.nan
        return self.obj.error(self.w, self.w_views)


class SGD(Momentum, MiniBatchMethod):
    """sgd: mini-batches of `batch_size` (1: the lecture's per-sample SGD; more than N: the whole
    set) in an order reshuffled every epoch from the seeded generator (shuffle=False: in data
    order). Step k, on the batch b = order[k B : (k+1) B], in the weights' dtype, layer by layer:
        g = (1/|b|) sum_{n in b} grad e_n(w)        (fastbp.gradient, reduction="mean")
        g = g + (2 lambda / N) * w                  (only when lambda > 0; N the training set)
        v = mu v - eta g;  w = w + v                (mu > 0; nesterov: w = w + (mu v - eta g))
        w = w - eta g                               (mu == 0)
    The whole epoch is one call into the compiled kernel, which does exactly these operations in
    this order: no Python runs per step. Each step of a megaflop or more is shared among
    `num_threads` threads (its samples, gradient sums and update; fastbp._api.shares_steps and
    the user guide, "Threads and processes"), with the same result bitwise; a smaller step runs
    on one thread."""
    name = "sgd"
    options = {"learning_rate": 0.1, "batch_size": 32, "shuffle": True, "momentum": 0.0,
               "nesterov": False, "warm_start": False}

    def epoch(self):
        obj, o = self.obj, self.opts
        rule = self.rule("sgd", o.momentum, o.nesterov)
        _api.sgd_epoch(self.w_views, obj.widths, obj.X, obj.y, self.order(),
                       min(o.batch_size, obj.n_samples), self.lr, o.momentum,
                       obj.views(self.v) if o.momentum else None, 2.0 * obj.decay, obj.output,
                       obj.activation, obj.sample_weight, rule=rule, num_threads=obj.threads)
        self.E = self.error_after_epoch()
        return self.lr, True


class Adam(MiniBatchMethod):
    """adam: Adam (Kingma and Ba, 2015) on the same mini-batches as sgd, with scikit-learn's bias
    correction. Step t (counted across epochs), on the batch's g (decay included as for sgd):
        m = beta1 m + (1 - beta1) g;  s = beta2 s + (1 - beta2) g^2
        lr_t = eta sqrt(1 - beta2^t) / (1 - beta1^t)      (in float64, then the weights' dtype)
        w = w - lr_t m / (sqrt(s) + eps)
    The whole epoch is one kernel call, its threads as for sgd. warm_start keeps m, s and t from
    the previous fit."""
    name = "adam"
    options = {"learning_rate": 0.001, "batch_size": 32, "shuffle": True, "beta1": 0.9,
               "beta2": 0.999, "eps": 1e-8, "warm_start": False}
    carry = ("m", "s", "t")
    arrays = ("w", "g", "m", "s")
    scalars = ("E", "lr", "t")

    def start(self, state=None):
        super().start(state)
        if self.m is None:
            self.m = np.zeros_like(self.w)
            self.s = np.zeros_like(self.w)
            self.t = 0

    def epoch(self):
        obj, o = self.obj, self.opts
        self.t, _, _ = _api.sgd_epoch(self.w_views, obj.widths, obj.X, obj.y, self.order(),
                                      min(o.batch_size, obj.n_samples), self.lr, o.beta1,
                                      obj.views(self.m), 2.0 * obj.decay, obj.output,
                                      obj.activation, obj.sample_weight, rule="adam",
                                      moment2=obj.views(self.s), beta2=o.beta2, eps=o.eps,
                                      steps=self.t, num_threads=obj.threads)
        self.E = self.error_after_epoch()
        return self.lr, True


REGISTRY: dict[str, type[Method]] = {m.name: m for m in (
    GradientDescent, SGD, VariableLR, SteepestDescent, ConjugateGradients, Adam, RPROP, LBFGS)}
