"""Exchange with scikit-learn and PyTorch: the conversions behind `MLPClassifier.to_sklearn`,
`MLPClassifier.from_sklearn` (and the regressor's), `Network.to_torch` and `Network.from_torch`.

scikit-learn: fastbp.sklearn's estimators hold scikit-learn's own fitted state (coefs_,
intercepts_, classes_, n_iter_, t_, loss_curve_, ...) and differ from scikit-learn's only in
their optimiser objects (fastbp keeps a layer's moments as one array [intercept; coefs], as its
weights, where scikit-learn keeps the list coefs + intercepts) and in `num_threads`. So a
conversion copies the constructor's parameters and the fitted state and rewrites the optimiser
state into the other layout: a further `partial_fit`, or a `fit` with ``warm_start=True``, goes
on as it would have gone on in the estimator converted.

PyTorch: a Network is ``Sequential(Linear, theta, Linear, theta, ..., Linear[, theta_L])``.

Neither scikit-learn nor torch is imported before a conversion asks for it.
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np

from . import _checks

# ---------------------------------------------------------------------------------------------
# scikit-learn

# The private parts of a fitted MLP's state that both libraries keep under the same names, beside
# the public attributes (the names ending in "_") and the optimiser: what predict, partial_fit and
# warm_start read.
_PRIVATE_STATE = ("_label_binarizer", "_best_coefs", "_best_intercepts", "_no_improvement_count")
# fastbp's full-batch methods, which scikit-learn's estimators do not have
_SKLEARN_SOLVERS = ("lbfgs", "sgd", "adam")


def _sklearn_class(fastbp_cls):
    """scikit-learn's estimator class that `fastbp_cls` mirrors (told by scikit-learn's mixin:
    this module is below fastbp.sklearn, which imports it)."""
    from sklearn.base import ClassifierMixin
    nn = _checks.import_optional("sklearn.neural_network", "this conversion", "sklearn")
    return nn.MLPClassifier if issubclass(fastbp_cls, ClassifierMixin) else nn.MLPRegressor


def _copy_state(source, target, convert_optimizer) -> None:
    """Copy `source`'s fitted state to `target` (deep copies: the two share nothing)."""
    params = set(source.get_params(deep=False))
    for key, value in vars(source).items():
        if key in params:
            continue
        if key == "_optimizer":
            optimizer = convert_optimizer(value)
            if optimizer is not None:
                target._optimizer = optimizer
        elif (key.endswith("_") and not key.startswith("_")) or key in _PRIVATE_STATE:
            setattr(target, key, copy.deepcopy(value))


def _to_fastbp_layout(coefs_part, intercepts_part):
    """scikit-learn's per-parameter arrays (coefs..., intercepts...) as fastbp's per-layer
    arrays [intercept; coefs] (C-contiguous: fastbp's kernels update them in place)."""
    return [np.ascontiguousarray(np.vstack([b[None, :], c]))
            for c, b in zip(coefs_part, intercepts_part)]


def _to_sklearn_layout(layers):
    """fastbp's per-layer arrays [intercept; coefs] as scikit-learn's list coefs + intercepts."""
    return [np.array(a[1:]) for a in layers] + [np.array(a[0]) for a in layers]


def _optimizer_to_fastbp(optimizer, optimizers) -> Any:
    """scikit-learn's SGDOptimizer or AdamOptimizer as fastbp.sklearn's (`optimizers`: its SGD
    and Adam classes), with the same state; None for anything else."""
    from sklearn.neural_network._stochastic_optimizers import AdamOptimizer, SGDOptimizer
    _SGD, _Adam = optimizers

    def layers(params):
        n = len(params) // 2
        return _to_fastbp_layout(params[:n], params[n:])

    if isinstance(optimizer, SGDOptimizer):
        velocities = layers(optimizer.velocities)
        new: Any = _SGD(velocities, optimizer.learning_rate_init, optimizer.lr_schedule,
                        optimizer.momentum, optimizer.nesterov, optimizer.power_t)
        new.velocities = velocities
    elif isinstance(optimizer, AdamOptimizer):
        ms, vs = layers(optimizer.ms), layers(optimizer.vs)
        new = _Adam(ms, optimizer.learning_rate_init, optimizer.beta_1, optimizer.beta_2,
                    optimizer.epsilon)
        new.t, new.ms, new.vs = optimizer.t, ms, vs
    else:
        return None
    new.learning_rate = optimizer.learning_rate
    return new


def _optimizer_to_sklearn(optimizer, optimizers) -> Any:
    """fastbp.sklearn's SGD or Adam optimiser (`optimizers`: their classes) as scikit-learn's
    SGDOptimizer or AdamOptimizer, with the same state; None for anything else."""
    from sklearn.neural_network._stochastic_optimizers import AdamOptimizer, SGDOptimizer
    _SGD, _Adam = optimizers
    if isinstance(optimizer, _SGD):
        velocities = _to_sklearn_layout(optimizer.velocities)
        new: Any = SGDOptimizer(velocities, optimizer.learning_rate_init, optimizer.lr_schedule,
                                optimizer.momentum, optimizer.nesterov, optimizer.power_t)
        new.velocities = velocities
    elif isinstance(optimizer, _Adam):
        ms, vs = _to_sklearn_layout(optimizer.ms), _to_sklearn_layout(optimizer.vs)
        new = AdamOptimizer(ms, optimizer.learning_rate_init, optimizer.beta_1,
                            optimizer.beta_2, optimizer.epsilon)
        new.t, new.ms, new.vs = optimizer.t, ms, vs
    else:
        return None
    new.learning_rate = optimizer.learning_rate
    return new


def to_sklearn(est, optimizers, solver=None):
    """scikit-learn's own estimator with `est`'s parameters and fitted state (see
    fastbp.sklearn's to_sklearn); `optimizers` are fastbp.sklearn's SGD and Adam classes."""
    from sklearn.utils.validation import check_is_fitted
    check_is_fitted(est)
    target_cls = _sklearn_class(type(est))
    # the parameters scikit-learn's class has (fastbp's num_threads is not one of them)
    known = set(target_cls._get_param_names())
    params = {k: v for k, v in est.get_params(deep=False).items() if k in known}
    if solver is not None:
        if solver not in _SKLEARN_SOLVERS:
            raise ValueError(f"solver must be one of scikit-learn's {_SKLEARN_SOLVERS} or None, "
                             f"got {solver!r}")
        params["solver"] = solver
    elif params["solver"] not in _SKLEARN_SOLVERS:
        raise ValueError(f"this estimator's solver={params['solver']!r} is fastbp's own, which "
                         f"scikit-learn's {type(est).__name__} does not have: pass "
                         f"to_sklearn(solver=...) one of {_SKLEARN_SOLVERS} for the copy (its "
                         f"predictions do not depend on it; a further fit of the copy does)")
    target = target_cls(**params)
    _copy_state(est, target, lambda opt: _optimizer_to_sklearn(opt, optimizers))
    return target


def from_sklearn(cls, fitted, optimizers, num_threads=None):
    """fastbp.sklearn's `cls` with a fitted scikit-learn MLP's parameters and fitted state (see
    fastbp.sklearn's from_sklearn); `optimizers` are fastbp.sklearn's SGD and Adam classes."""
    from sklearn.utils.validation import check_is_fitted
    expected = _sklearn_class(cls)
    if not isinstance(fitted, expected):
        raise TypeError(f"{cls.__name__}.from_sklearn needs a fitted "
                        f"sklearn.neural_network.{expected.__name__}, got "
                        f"{type(fitted).__module__}.{type(fitted).__qualname__}")
    check_is_fitted(fitted)
    params = fitted.get_params(deep=False)
    known = set(cls._get_param_names())
    target = cls(**{k: v for k, v in params.items() if k in known}, num_threads=num_threads)
    _copy_state(fitted, target, lambda opt: _optimizer_to_fastbp(opt, optimizers))
    return target


# ---------------------------------------------------------------------------------------------
# PyTorch

def _torch_unit(nn, name, final):
    """The torch module of a fastbp unit (None: no module)."""
    if final:
        return {"tanh": nn.Tanh, "linear": None, "logistic": nn.Sigmoid,
                "softmax": lambda: nn.Softmax(dim=1)}[name]
    return {"tanh": nn.Tanh, "relu": nn.ReLU, "logistic": nn.Sigmoid,
            "identity": nn.Identity}[name]


def to_torch(net):
    """torch.nn.Sequential computing `net`'s forward pass (see Network.to_torch)."""
    if net.output == "poisson":
        raise ValueError("output='poisson' (x(L) = exp(s(L))) has no module in torch.nn to map "
                         "it to; export the weights of a network with output='linear' (the "
                         "log-rates s(L)) and apply torch.exp, or use Network.to_onnx")
    torch = _checks.import_optional("torch", "this conversion", "torch")
    nn = torch.nn
    weights, widths, dtype = _checks.check_weights(net.weights)
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    modules = []
    L = len(weights)
    for l, w in enumerate(weights, start=1):
        linear = nn.Linear(widths[l - 1], widths[l], dtype=tdtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(w[1:].T)))
            linear.bias.copy_(torch.from_numpy(np.ascontiguousarray(w[0])))
        modules.append(linear)
        unit = _torch_unit(nn, net.output if l == L else net.activation, final=l == L)
        if unit is not None:
            modules.append(unit())
    return nn.Sequential(*modules)


def _flatten(module, nn, prefix=""):
    """The leaf modules of nested Sequentials, with their dotted names, in order."""
    for name, child in module.named_children():
        if isinstance(child, nn.Sequential):
            yield from _flatten(child, nn, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", child


def from_torch(cls, module, dtype=None) -> Any:
    """A `cls` (Network) from a torch stack of Linear and activation modules (see
    Network.from_torch)."""
    torch = _checks.import_optional("torch", "this conversion", "torch")
    nn = torch.nn
    if not isinstance(module, nn.Sequential):
        raise TypeError(f"module must be a torch.nn.Sequential of Linear and activation modules, "
                        f"got {type(module).__module__}.{type(module).__qualname__}")
    hidden_units = {nn.Tanh: "tanh", nn.ReLU: "relu", nn.Sigmoid: "logistic",
                    nn.Identity: "identity"}
    output_units = {nn.Tanh: "tanh", nn.Sigmoid: "logistic", nn.Identity: "linear"}
    leaves = list(_flatten(module, nn))
    layers: list = []          # (Linear, the name of its module)
    units: list = []           # the unit after each Linear, None while there is none
    for i, (name, child) in enumerate(leaves):
        where = f"module {name} ({child!r})"
        last = i == len(leaves) - 1
        if isinstance(child, nn.Linear):
            if layers and child.in_features != layers[-1][0].out_features:
                raise ValueError(f"{where} takes {child.in_features} inputs, but the Linear "
                                 f"before it has {layers[-1][0].out_features} outputs")
            layers.append((child, name))
            units.append(None)
            continue
        if not layers:
            raise ValueError(f"{where} cannot be mapped: a fastbp network starts with a Linear "
                             f"module")
        if units[-1] is not None:
            raise ValueError(f"{where} cannot be mapped: a second activation after the Linear "
                             f"module {layers[-1][1]}")
        kind = type(child)
        if isinstance(child, nn.Softmax):
            if not last:
                raise ValueError(f"{where} cannot be mapped: Softmax is fastbp's output only, it "
                                 f"must be the last module")
            if child.dim not in (1, -1):
                raise ValueError(f"{where} cannot be mapped: fastbp's softmax is over the units "
                                 f"(dim=1 or dim=-1), got dim={child.dim!r}")
            units[-1] = "softmax"
        elif last and kind in output_units:
            units[-1] = output_units[kind]
        elif not last and kind in hidden_units:
            units[-1] = hidden_units[kind]
        else:
            what = ("the output (Tanh, Sigmoid, Softmax or none)" if last else
                    "a hidden activation (Tanh, ReLU, Sigmoid or Identity)")
            raise ValueError(f"{where} cannot be mapped: fastbp takes Linear modules and, after "
                             f"each, {what}")
    if not layers:
        raise ValueError("module holds no Linear module: nothing to map")
    hidden = [u if u is not None else "identity" for u in units[:-1]]
    if len(set(hidden)) > 1:
        first = next(k for k, u in enumerate(hidden) if u != hidden[0])
        raise ValueError(f"fastbp's hidden layers share one activation, but the one after Linear "
                         f"module {layers[first][1]} is {hidden[first]!r} and the one after "
                         f"{layers[0][1]} is {hidden[0]!r}")
    output = units[-1] if units[-1] is not None else "linear"
    params = [p for linear, _ in layers for p in (linear.weight, linear.bias) if p is not None]
    found = {p.dtype for p in params}
    if dtype is None:
        if found - {torch.float32, torch.float64} or len(found) != 1:
            raise ValueError(f"the module's parameters must all be float32 or all float64 "
                             f"(else pass dtype=), got {sorted(map(str, found))}")
        dtype = "float64" if found == {torch.float64} else "float32"
    dtype = _checks.check_dtype(dtype)
    weights = []
    for linear, _ in layers:
        w = linear.weight.detach().cpu().to(torch.float64).numpy().T
        b = (np.zeros(linear.out_features) if linear.bias is None
             else linear.bias.detach().cpu().to(torch.float64).numpy())
        weights.append(np.vstack([b[None, :], w]).astype(dtype))
    widths = [layers[0][0].in_features] + [linear.out_features for linear, _ in layers]
    activation = hidden[0] if hidden else "tanh"
    return cls(widths, output=output, dtype=dtype, weights=weights, activation=activation)
