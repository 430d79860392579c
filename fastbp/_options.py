"""The options of `fit`: one validated object, checked in one place.

Every method takes the COMMON options; the others belong to the methods that declare them
(fastbp._methods, each class's `options` with its defaults). `FitOptions.check(method, **kw)`
checks every value, refuses an option the method does not take (naming both), and fills in the
method's defaults; options that the method does not use stay None.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from . import _checks
from ._methods import REGISTRY

COMMON = {"epochs": 100, "weight_decay": 0.0, "validation_data": None,
          "validation_fraction": None, "early_stopping": False, "patience": 10, "tol": None,
          "callback": None, "progress": False, "num_threads": None, "seed": 0}


def _positive(name):
    return lambda v: _checks.check_real(v, name, low=0, low_open=True)


def _unit(name):           # [0, 1)
    return lambda v: _checks.check_real(v, name, low=0, high=1, high_open=True)


def _flag(name):
    return lambda v: _checks.check_flag(v, name)


def _integer(name, low):
    return lambda v: _checks.check_integer(v, name, low)


def _optional(check):
    return lambda v: None if v is None else check(v)


def _callable_or_none(v):
    if v is not None and not callable(v):
        raise TypeError(f"callback must be callable or None, got {type(v).__name__}")
    return v


def _warm_start(v):
    # False, True (Network.fit: its last fit), or the History of an earlier fit
    if isinstance(v, (bool,)) or hasattr(v, "state"):
        return v
    raise TypeError(f"warm_start must be True, False or the History of an earlier fit, got "
                    f"{type(v).__name__}")


# How each option's value is checked (and normalised). Cross-option rules are in `check`.
_CHECKS: dict[str, Callable[[Any], Any]] = {
    "epochs": _integer("epochs", 1),
    "weight_decay": lambda v: _checks.check_real(v, "weight_decay", low=0),
    "validation_data": lambda v: v,                 # checked against the weights by `fit`
    "validation_fraction": _optional(lambda v: _checks.check_real(
        v, "validation_fraction", low=0, high=1, low_open=True, high_open=True)),
    "early_stopping": _flag("early_stopping"),
    "patience": _integer("patience", 1),
    "tol": _optional(lambda v: _checks.check_real(v, "tol", low=0)),
    "callback": _callable_or_none,
    "progress": _flag("progress"),
    "num_threads": lambda v: v,                     # checked against the machine by `fit`
    "seed": _checks.check_seed,
    "learning_rate": _positive("learning_rate"),
    "batch_size": _integer("batch_size", 1),
    "shuffle": _flag("shuffle"),
    "momentum": _unit("momentum"),
    "nesterov": _flag("nesterov"),
    "warm_start": _warm_start,
    "lr_increase": lambda v: _checks.check_real(v, "lr_increase", low=1, low_open=True),
    "lr_decrease": lambda v: _checks.check_real(v, "lr_decrease", low=0, high=1, low_open=True,
                                                high_open=True),
    "line_search_steps": _integer("line_search_steps", 0),
    "beta1": _unit("beta1"),
    "beta2": _unit("beta2"),
    "eps": _positive("eps"),
    "step_initial": _positive("step_initial"),
    "step_increase": lambda v: _checks.check_real(v, "step_increase", low=1, low_open=True),
    "step_decrease": lambda v: _checks.check_real(v, "step_decrease", low=0, high=1,
                                                  low_open=True, high_open=True),
    "step_min": _positive("step_min"),
    "step_max": _positive("step_max"),
    "max_fun": _integer("max_fun", 1),
    "gtol": lambda v: _checks.check_real(v, "gtol", low=0),
}


@dataclass(frozen=True)
class FitOptions:
    """The options of one `fit`, checked; None where the method does not use the option.

    Common to every method::

      epochs           epochs to run (one epoch is one step, except for sgd and adam: one pass)
      weight_decay     lambda >= 0: minimise E_aug = E_in + (lambda/N) * sum of all squared weights
      validation_data  (X_val, y_val), or validation_fraction: that fraction of (X, y) held out at
                       random (from `seed`) before training
      early_stopping   stop after `patience` epochs without a lower E_val and restore the weights
                       with the lowest E_val (the starting ones included); needs a validation set
      tol              stop when |E_aug change| <= tol * E_aug of the previous epoch
      callback         callback(history) after every epoch; returning False stops
      progress         a tqdm progress bar (tqdm is optional)
      num_threads      as for `fastbp.gradient`
      seed             int, numpy Generator or None: the shuffling (sgd, adam) and the validation split

    Of some methods (see `fastbp.fit` for which)::

      learning_rate    eta (gd, sgd, adam, variable-lr; the first trial step of steepest and cg)
      batch_size, shuffle          mini-batches (sgd, adam)
      momentum, nesterov           mu in [0, 1) and Nesterov's form (gd, sgd)
      beta1, beta2, eps            Adam's
      lr_increase, lr_decrease     the bold driver's alpha > 1 and beta in (0, 1) (variable-lr)
      line_search_steps            refinements of each line search (steepest, cg)
      step_initial, step_increase, step_decrease, step_min, step_max    RPROP's
      max_fun, gtol                L-BFGS's maxfun and gtol (its maxiter is `epochs`)
      warm_start       go on from the state an earlier fit ended with (Adam's moments and step
                       count, momentum's velocity, RPROP's steps, the learning rate reached):
                       the History it returned (Network.fit: True, its own last fit)
    """
    method: str
    epochs: int = 100
    weight_decay: float = 0.0
    validation_data: Any = None
    validation_fraction: float | None = None
    early_stopping: bool = False
    patience: int = 10
    tol: float | None = None
    callback: Callable | None = None
    progress: bool = False
    num_threads: int | None = None
    seed: Any = 0
    learning_rate: float | None = None
    batch_size: int | None = None
    shuffle: bool | None = None
    momentum: float | None = None
    nesterov: bool | None = None
    warm_start: Any = None
    lr_increase: float | None = None
    lr_decrease: float | None = None
    line_search_steps: int | None = None
    beta1: float | None = None
    beta2: float | None = None
    eps: float | None = None
    step_initial: float | None = None
    step_increase: float | None = None
    step_decrease: float | None = None
    step_min: float | None = None
    step_max: float | None = None
    max_fun: int | None = None
    gtol: float | None = None

    @classmethod
    def check(cls, method, **options) -> FitOptions:
        """Check `method` and every option given; fill in the defaults of the method's options."""
        if not isinstance(method, str) or method not in REGISTRY:
            raise ValueError(f"method must be one of {', '.join(map(repr, REGISTRY))}, got "
                             f"{method!r}")
        known = {f.name for f in dataclasses.fields(cls)} - {"method"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"fit() got an unexpected keyword argument {unknown[0]!r}")
        takes = REGISTRY[method].options
        foreign = [name for name in options if name not in COMMON and name not in takes]
        if foreign:
            raise ValueError(
                f"method {method!r} does not take the option {foreign[0]}; its own options are "
                f"{', '.join(takes) or 'none'} (besides the common {', '.join(COMMON)})")
        values = {**COMMON, **takes, **options}
        checked = {name: _CHECKS[name](value) for name, value in values.items()}
        if checked.get("step_max") is not None and checked["step_min"] >= checked["step_max"]:
            raise ValueError(f"step_min must be < step_max, got step_min={checked['step_min']!r} "
                             f"and step_max={checked['step_max']!r}")
        if checked.get("step_initial") is not None and checked["step_initial"] > checked["step_max"]:
            raise ValueError(f"step_initial must be <= step_max, got "
                             f"step_initial={checked['step_initial']!r} and "
                             f"step_max={checked['step_max']!r}")
        if checked["validation_data"] is not None and checked["validation_fraction"] is not None:
            raise ValueError("give validation_data or validation_fraction, not both")
        if (checked["early_stopping"] and checked["validation_data"] is None
                and checked["validation_fraction"] is None):
            raise ValueError("early_stopping=True needs a validation set: give validation_data "
                             "or validation_fraction")
        return cls(method=method, **checked)

    @property
    def method_class(self):
        return REGISTRY[self.method]
