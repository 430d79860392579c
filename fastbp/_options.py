"""The options of `fit`: one validated object, checked in one place.

Every method takes the COMMON options; the others belong to the methods that declare them
(fastbp._methods, each class's `options` with its defaults). `FitOptions.check(method, **kw)`
checks every value, refuses an option the method does not take (naming both), and fills in the
method's defaults; options that the method does not use stay None.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import _checks
from ._methods import REGISTRY

COMMON = {"epochs": 100, "weight_decay": 0.0, "validation_data": None,
          "validation_fraction": None, "early_stopping": False, "patience": 10, "tol": None,
          "callback": None, "progress": False, "num_threads": None, "seed": 0}

# Other libraries' names for fit's options, suggested when one is given (an unknown option is an
# error; the suggestion only names fastbp's).
_ALIASES = {"lr": "learning_rate", "learning_rate_init": "learning_rate", "max_iter": "epochs",
            "n_epochs": "epochs", "alpha": "weight_decay", "verbose": "progress",
            "random_state": "seed", "n_jobs": "num_threads", "n_iter_no_change": "patience"}


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

    Made by `FitOptions.check`, which checks every value, refuses an option the method does
    not take and fills in the method's defaults. The first group of options is common to every
    method; the others belong to the methods named (see `fastbp.fit` for what each does).

    Parameters
    ----------
    method : str
        The training method: "gd", "sgd", "adam", "variable-lr", "steepest", "cg", "rprop" or
        "lbfgs".
    epochs : int, default=100
        Epochs to run (one epoch is one step, except for sgd and adam: one pass).
    weight_decay : float, default=0.0
        The weight decay lambda >= 0: minimise E_aug = E_in + (lambda/N) * sum of all squared
        weights.
    validation_data : tuple of (array_like, array_like) or None, default=None
        (X_val, y_val), a validation set.
    validation_fraction : float or None, default=None
        In (0, 1): that fraction of (X, y) held out at random (from `seed`) before training.
        Not with `validation_data`.
    early_stopping : bool, default=False
        Stop after `patience` epochs without a lower E_val and restore the weights with the
        lowest E_val (the starting ones included); needs a validation set.
    patience : int, default=10
        Epochs without improvement that early stopping waits.
    tol : float or None, default=None
        Stop when ``|E_aug change| <= tol * E_aug`` of the previous epoch; None: never.
    callback : callable or None, default=None
        ``callback(history)`` after every epoch; returning False stops.
    progress : bool, default=False
        Show a tqdm progress bar (tqdm is optional).
    num_threads : int or None, default=None
        Threads of the kernels, as for `fastbp.gradient`.
    seed : int, numpy.random.Generator or None, default=0
        The shuffling (sgd, adam) and the validation split.
    learning_rate : float or None
        The learning rate eta > 0 (gd, sgd, adam, variable-lr; the first trial step of steepest
        and cg).
    batch_size : int or None
        Mini-batch size (sgd, adam).
    shuffle : bool or None
        Reshuffle the mini-batches every epoch (sgd, adam).
    momentum : float or None
        The momentum mu in [0, 1) (gd, sgd).
    nesterov : bool or None
        Nesterov's form of momentum (gd, sgd).
    warm_start : bool, History or None
        Go on from the state an earlier fit ended with (Adam's moments and step count,
        momentum's velocity, RPROP's steps, the learning rate reached): the History it returned
        (`Network.fit`: True, its own last fit).
    lr_increase : float or None
        The bold driver's alpha > 1 (variable-lr).
    lr_decrease : float or None
        The bold driver's beta in (0, 1) (variable-lr).
    line_search_steps : int or None
        Refinements of each line search (steepest, cg).
    beta1 : float or None
        Adam's first-moment decay, in [0, 1).
    beta2 : float or None
        Adam's second-moment decay, in [0, 1).
    eps : float or None
        Adam's epsilon > 0.
    step_initial : float or None
        RPROP's initial step size, <= step_max.
    step_increase : float or None
        RPROP's growth factor, > 1.
    step_decrease : float or None
        RPROP's shrink factor, in (0, 1).
    step_min : float or None
        RPROP's smallest step, < step_max.
    step_max : float or None
        RPROP's largest step.
    max_fun : int or None
        L-BFGS's maxfun (its maxiter is `epochs`).
    gtol : float or None
        L-BFGS's gtol.

    See Also
    --------
    fastbp.fit : Takes these options as keyword arguments.

    Examples
    --------
    >>> from fastbp.training import FitOptions
    >>> opts = FitOptions.check("adam", epochs=10)
    >>> opts.epochs, opts.learning_rate, opts.batch_size, opts.momentum
    (10, 0.001, 32, None)
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
        """Check `method` and every option given; fill in the defaults of the method's options.

        Parameters
        ----------
        method : str
            The training method (see `fastbp.fit`).
        **options
            The options given to `fit`, by name.

        Returns
        -------
        FitOptions
            Every option of the method and the common ones, checked, with their defaults;
            None for the options the method does not use.

        Raises
        ------
        ValueError
            If `method` is unknown, the method does not take an option given (the message names
            both), a value is out of range, or options contradict each other (both validation
            sets, early stopping without one, step_min >= step_max, ...).
        TypeError
            If an option is unknown or of the wrong type.

        Examples
        --------
        >>> from fastbp.training import FitOptions
        >>> FitOptions.check("rprop").step_max
        50.0
        >>> FitOptions.check("gd", batch_size=8)
        Traceback (most recent call last):
        ...
        ValueError: method 'gd' does not take the option batch_size; ...
        """
        if not isinstance(method, str) or method not in REGISTRY:
            raise ValueError(f"method must be one of {', '.join(map(repr, REGISTRY))}, got "
                             f"{method!r}")
        known = {f.name for f in dataclasses.fields(cls)} - {"method"}
        unknown = sorted(set(options) - known)
        if unknown:
            import difflib
            close = ([_ALIASES[unknown[0]]] if unknown[0] in _ALIASES else
                     difflib.get_close_matches(unknown[0], sorted(known), n=1, cutoff=0.6))
            raise TypeError(f"fit() got an unexpected keyword argument {unknown[0]!r}"
                            + (f"; did you mean {close[0]!r}?" if close else ""))
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
        if (checked.get("step_initial") is not None
                and checked["step_initial"] > checked["step_max"]):
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
        """The class of `method` in fastbp's registry of training methods.

        Examples
        --------
        >>> from fastbp.training import FitOptions
        >>> FitOptions.check("sgd").method_class.name
        'sgd'
        """
        return REGISTRY[self.method]
