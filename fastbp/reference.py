"""The pure-Python twin of fastbp: the lecture's backpropagation, one sample at a time.

Readable first: this is the oracle the compiled kernels are tested against and the baseline they are
measured against. It offers the same functions with the same signatures as `fastbp`, so that

    from fastbp import reference as fastbp

is all it takes to switch. Arguments go through the same checks as the compiled API.

Notation (Learning From Data): x(0) = [1; x], s(l) = W(l)^T x(l-1), x(l) = [1; theta(s(l))] for
hidden layers and x(L) = theta_L(s(L)) at the output; de/dW(l) = x(l-1) delta(l)^T with
delta(l) = theta'(s(l)) * [W(l+1) delta(l+1)] (bias row dropped), theta' written from x = theta(s).

Hidden theta ("activation"): tanh (theta' = 1 - x^2), relu = max(s, 0) (theta' = 1 where s > 0,
else 0: relu'(0) = 0), logistic sigma(s) = 1/(1 + e^-s) (theta' = x (1 - x)), identity (theta' = 1).

Output and error measure ("output"), with delta(L) = de/ds(L):
  tanh, linear   e = ||x(L) - y||^2,                          delta(L) = 2 (x(L) - y) theta'(s(L));
  logistic       e = -sum_k [y_k log x_k + (1 - y_k) log(1 - x_k)],  delta(L) = x(L) - y;
  softmax        e = -sum_k y_k log x_k, x = softmax(s(L)),         delta(L) = x(L) - y;
  poisson        e = sum_k y_k log(y_k / x_k) - y_k + x_k, x = exp(s(L)), delta(L) = x(L) - y
                 (the Poisson deviance halved, as scikit-learn's MLPRegressor(loss="poisson")).
The cross-entropies and the deviance are computed from s(L) (log sigma(s) = -log(1 + e^-s),
log softmax(s)_k = s_k - log-sum-exp(s), log x = s for poisson), never as the log of a rounded
probability or rate.

E_in = (1/N) sum_n e_n, or sum_n w_n e_n / sum_n w_n with sample weights w_n.
"""
from __future__ import annotations

import sys

import numpy as np

from . import _checks
from ._weights import init_weights
from .network import Network as _Network

__all__ = ["init_weights", "forward", "error", "gradient", "backprop", "Network"]


def _theta(s, activation):
    """A hidden layer's activation theta(s)."""
    if activation == "tanh":
        return np.tanh(s)
    if activation == "relu":
        return np.where(s > 0, s, 0).astype(s.dtype)
    if activation == "logistic":
        return _sigma(s)
    return s  # identity


def _dtheta(x, activation):
    """theta'(s) from x = theta(s)."""
    if activation == "tanh":
        return 1 - x * x
    if activation == "relu":
        return (x > 0).astype(x.dtype)
    if activation == "logistic":
        return x * (1 - x)
    return np.ones_like(x)  # identity


def _sigma(s):
    """1 / (1 + e^-s), written so that no exp overflows."""
    e = np.exp(-np.abs(s))
    return np.where(s >= 0, 1 / (1 + e), e / (1 + e)).astype(s.dtype)


def _log_sum_exp(s):
    m = np.max(s)
    return m + np.log(np.sum(np.exp(s - m)))


def _output(s, output):
    """x(L) = theta_L(s(L))."""
    if output == "tanh":
        return np.tanh(s)
    if output == "linear":
        return s
    if output == "logistic":
        return _sigma(s)
    if output == "poisson":
        return np.exp(s)
    return np.exp(s - _log_sum_exp(s)).astype(s.dtype)  # softmax


def _forward_sample(weights, x, output, activation="tanh"):
    """Forward propagation of one sample: ([x(0), ..., x(L)], s(L)), hidden x(l) with their
    leading 1."""
    L = len(weights)
    xs = [np.concatenate(([1.0], x)).astype(x.dtype)]
    for l in range(1, L + 1):
        s = weights[l - 1].T @ xs[l - 1]
        if l < L:
            xs.append(np.concatenate(([1.0], _theta(s, activation))).astype(x.dtype))
        else:
            xs.append(_output(s, output))
    return xs, s


def _error_sample(xL, sL, y, output):
    """e_n of one sample (a cross-entropy in float64, from s(L))."""
    if output in ("tanh", "linear"):
        e = xL - y
        return float(e @ e)
    sL, y = np.asarray(sL, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if output == "logistic":
        # -y log sigma(s) - (1 - y) log(1 - sigma(s)) = log(1 + e^s) - y s
        return float(np.sum(np.maximum(sL, 0) - y * sL + np.log1p(np.exp(-np.abs(sL)))))
    if output == "poisson":
        # y log(y / x) - y + x with log x = s; y log y = 0 at y = 0
        ylogy = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0)), 0.0)
        return float(np.sum(np.exp(sL) - y * sL + (ylogy - y)))
    return float(np.sum(y * (_log_sum_exp(sL) - sL)))  # softmax: -sum_k y_k (s_k - lse(s))


def _backward_sample(weights, xs, y, output, activation="tanh"):
    """Backward propagation of one sample: [delta(1), ..., delta(L)]."""
    L = len(weights)
    xL = xs[L]
    deltas = [None] * (L + 1)
    if output == "tanh":
        deltas[L] = 2 * (xL - y) * (1 - xL * xL)
    elif output == "linear":
        deltas[L] = 2 * (xL - y)
    else:
        deltas[L] = xL - y  # cross-entropies: theta' cancels the 1/x of the log; poisson: e^s - y
    for l in range(L - 1, 0, -1):
        back = weights[l] @ deltas[l + 1]                        # W(l+1) delta(l+1)
        deltas[l] = _dtheta(xs[l][1:], activation) * back[1:]    # bias row dropped
    return deltas[1:]


def _check_model(output, activation, widths):
    output = _checks.check_output(output)
    activation = _checks.check_activation(activation)
    _checks.check_output_width(output, widths)
    return output, activation


def forward(weights, X, output="tanh", activation="tanh", num_threads=None) -> np.ndarray:
    """Compute the outputs x(L) for every row of `X`, one sample at a time.

    Parameters
    ----------
    weights : list of ndarray
        W(1), ..., W(L), W(l) of shape (d(l-1)+1, d(l)), row 0 the bias; float32 or float64.
    X : array_like of shape (N, d(0))
        The inputs, one per row.
    output : {"tanh", "linear", "logistic", "softmax", "poisson"}, default="tanh"
        The output activation theta_L and its error measure.
    activation : {"tanh", "relu", "logistic", "identity"}, default="tanh"
        The activation theta of every hidden layer.
    num_threads : int or None, default=None
        Checked as `fastbp.forward` checks it, and ignored: the reference runs on one thread.

    Returns
    -------
    ndarray of shape (N, d(L))
        The outputs x(L), in the weights' dtype.

    Raises
    ------
    ValueError
        If a shape does not match the weights' widths, a value is NaN, infinite or out of range,
        or an option is not one of its values (the same checks as the compiled API).
    TypeError
        If an argument is of the wrong type.

    See Also
    --------
    fastbp.forward : The compiled twin.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbp import reference
    >>> weights = reference.init_weights([2, 3, 1], seed=0)
    >>> X = np.array([[0.5, -1.0], [1.0, 2.0], [-0.5, 0.3]])
    >>> y = np.array([1.0, -1.0, 1.0])
    >>> reference.forward(weights, X).shape
    (3, 1)
    """
    weights, widths, dtype = _checks.check_weights(weights)
    output, activation = _check_model(output, activation, widths)
    # a sparse X as its dense matrix: the reference is the algorithm written plainly
    X = _checks.dense(_checks.check_X(X, widths, dtype))
    _checks.check_num_threads(num_threads, 1)
    return np.array([_forward_sample(weights, x, output, activation)[0][-1] for x in X],
                    dtype=dtype)


def _checked_batch(weights, X, y, output, activation, sample_weight):
    weights, widths, dtype = _checks.check_weights(weights)
    output, activation = _check_model(output, activation, widths)
    # a sparse X as its dense matrix: the reference is the algorithm written plainly
    X = _checks.dense(_checks.check_X(X, widths, dtype))
    y = _checks.check_y(y, widths, dtype, X.shape[0])
    _checks.check_targets(y, output)
    sample_weight = _checks.check_sample_weight(sample_weight, X.shape[0], dtype)
    if sample_weight is None:
        sample_weight = np.ones(X.shape[0])
    return weights, dtype, X, y, output, activation, sample_weight


def error(weights, X, y, output="tanh", num_threads=None, activation="tanh",
          sample_weight=None, reduction="mean") -> float:
    """Compute the in-sample error E_in, one sample at a time.

    Parameters
    ----------
    weights : list of ndarray
        W(1), ..., W(L), W(l) of shape (d(l-1)+1, d(l)), row 0 the bias; float32 or float64.
    X : array_like of shape (N, d(0))
        The inputs, one per row.
    y : array_like of shape (N, d(L)) or (N,)
        The targets.
    output : {"tanh", "linear", "logistic", "softmax", "poisson"}, default="tanh"
        The output activation theta_L and its error measure.
    num_threads : int or None, default=None
        Checked as `fastbp.error` checks it, and ignored: the reference runs on one thread.
    activation : {"tanh", "relu", "logistic", "identity"}, default="tanh"
        The activation theta of every hidden layer.
    sample_weight : array_like of shape (N,) or None, default=None
        Weights w_n >= 0 of the samples; None weights each sample 1.
    reduction : {"mean", "sum"}, default="mean"
        "mean" gives E_in; "sum" gives sum_n w_n e_n.

    Returns
    -------
    float
        E_in = sum_n w_n e_n / sum_n w_n (w_n = 1 without sample weights: (1/N) sum_n e_n); the
        sum with ``reduction="sum"``.

    Raises
    ------
    ValueError
        If a shape does not match the weights' widths, a value is NaN, infinite or out of range,
        or an option is not one of its values (the same checks as the compiled API).
    TypeError
        If an argument is of the wrong type.

    See Also
    --------
    fastbp.error : The compiled twin.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbp import reference
    >>> weights = reference.init_weights([2, 3, 1], seed=0)
    >>> X = np.array([[0.5, -1.0], [1.0, 2.0], [-0.5, 0.3]])
    >>> y = np.array([1.0, -1.0, 1.0])
    >>> round(reference.error(weights, X, y), 6)
    2.182504
    """
    weights, dtype, X, y, output, activation, w = _checked_batch(weights, X, y, output, activation,
                                                                 sample_weight)
    _checks.check_num_threads(num_threads, 1)
    reduction = _checks.check_reduction(reduction)
    total = 0.0
    for x, yn, wn in zip(X, y, w):
        xs, sL = _forward_sample(weights, x, output, activation)
        total += float(wn) * _error_sample(xs[-1], sL, yn, output)
    return total / float(np.sum(w, dtype=np.float64)) if reduction == "mean" else total


def gradient(weights, X, y, output="tanh", num_threads=None, reduction="mean", out=None,
             accumulate=False, activation="tanh", sample_weight=None):
    """Compute E_in and its gradient, summed over the samples one by one.

    Parameters
    ----------
    weights : list of ndarray
        W(1), ..., W(L), W(l) of shape (d(l-1)+1, d(l)), row 0 the bias; float32 or float64.
    X : array_like of shape (N, d(0))
        The inputs, one per row.
    y : array_like of shape (N, d(L)) or (N,)
        The targets.
    output : {"tanh", "linear", "logistic", "softmax", "poisson"}, default="tanh"
        The output activation theta_L and its error measure.
    num_threads : int or None, default=None
        Checked as `fastbp.error` checks it, and ignored: the reference runs on one thread.
    reduction : {"mean", "sum"}, default="mean"
        "mean" gives E_in and its gradient; "sum" gives sum_n w_n e_n and its gradient.
    out : list of ndarray or None, default=None
        Arrays shaped like the weights to write the gradient into (and return).
    accumulate : bool, default=False
        Add the gradient to `out` instead of overwriting it; needs `out`.
    activation : {"tanh", "relu", "logistic", "identity"}, default="tanh"
        The activation theta of every hidden layer.
    sample_weight : array_like of shape (N,) or None, default=None
        Weights w_n >= 0 of the samples; None weights each sample 1.

    Returns
    -------
    E_in : float
        The error (the sum with ``reduction="sum"``).
    grads : list of ndarray
        [dE_in/dW(1), ..., dE_in/dW(L)], in the weights' dtype (summed in float64).

    Raises
    ------
    ValueError
        If a shape does not match the weights' widths, a value is NaN, infinite or out of range,
        or an option is not one of its values (the same checks as the compiled API).
    TypeError
        If an argument is of the wrong type.

    See Also
    --------
    fastbp.gradient : The compiled twin.

    Notes
    -----
    For each sample: forward propagation for x(0), ..., x(L), backward propagation for
    delta(L), ..., delta(1), then dE_in/dW(l) += w_n x(l-1) delta(l)^T; the sums are divided by
    sum_n w_n (N without sample weights). The module's docstring spells out every step.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbp import reference
    >>> weights = reference.init_weights([2, 3, 1], seed=0)
    >>> X = np.array([[0.5, -1.0], [1.0, 2.0], [-0.5, 0.3]])
    >>> y = np.array([1.0, -1.0, 1.0])
    >>> E_in, grads = reference.gradient(weights, X, y)
    >>> round(E_in, 6), [g.shape for g in grads]
    (2.182504, [(3, 3), (4, 1)])
    """
    weights, dtype, X, y, output, activation, w = _checked_batch(weights, X, y, output, activation,
                                                                 sample_weight)
    _checks.check_num_threads(num_threads, 1)
    reduction = _checks.check_reduction(reduction)
    if out is not None:
        out = _checks.check_out(out, weights)
    elif accumulate:
        raise ValueError("accumulate=True needs out=, the arrays to add the gradient into")
    total = 0.0
    grads = [np.zeros(v.shape) for v in weights]  # sums kept in float64
    for x, yn, wn in zip(X, y, w):
        xs, sL = _forward_sample(weights, x, output, activation)
        total += float(wn) * _error_sample(xs[-1], sL, yn, output)
        deltas = _backward_sample(weights, xs, yn, output, activation)
        for l in range(len(weights)):
            grads[l] += float(wn) * np.outer(xs[l], deltas[l])
    scale = 1.0 / float(np.sum(w, dtype=np.float64)) if reduction == "mean" else 1.0
    grads = [(g * scale).astype(dtype) for g in grads]
    if out is not None:
        for o, g in zip(out, grads):
            if accumulate:
                o += g
            else:
                o[...] = g
        grads = out
    return total * scale, grads


def backprop(weights, x, y, output="tanh", activation="tanh"):
    """Propagate one sample forward and backward: its x(l) and delta(l).

    Parameters
    ----------
    weights : list of ndarray
        W(1), ..., W(L), W(l) of shape (d(l-1)+1, d(l)), row 0 the bias; float32 or float64.
    x : array_like of shape (d(0),)
        The input.
    y : array_like of shape (d(L),)
        The target.
    output : {"tanh", "linear", "logistic", "softmax", "poisson"}, default="tanh"
        The output activation theta_L and its error measure.
    activation : {"tanh", "relu", "logistic", "identity"}, default="tanh"
        The activation theta of every hidden layer.

    Returns
    -------
    xs : list of ndarray
        [x(0), ..., x(L)]; the hidden x(l) carry their leading 1, the output x(L) does not.
    deltas : list of ndarray
        [delta(1), ..., delta(L)].

    Raises
    ------
    ValueError
        If a shape does not match the weights' widths, a value is NaN, infinite or out of range,
        or an option is not one of its values (the same checks as the compiled API).
    TypeError
        If an argument is of the wrong type.

    See Also
    --------
    fastbp.backprop : The compiled twin.

    Notes
    -----
    The gradient of e_n is de_n/dW(l) = outer(xs[l-1], deltas[l-1]).

    Examples
    --------
    >>> from fastbp import reference
    >>> weights = reference.init_weights([2, 3, 1], seed=0)
    >>> xs, deltas = reference.backprop(weights, [0.5, -1.0], [1.0])
    >>> [x.shape for x in xs], [d.shape for d in deltas]
    ([(3,), (4,), (1,)], [(3,), (1,)])
    """
    weights, widths, dtype = _checks.check_weights(weights)
    output, activation = _check_model(output, activation, widths)
    x, y = _checks.check_sample(x, y, widths, dtype)
    _checks.check_targets(y, output)
    xs, _ = _forward_sample(weights, x[0], output, activation)
    return xs, _backward_sample(weights, xs, y[0], output, activation)


class Network(_Network):
    """A `fastbp.Network` computed by the pure-Python reference.

    Parameters
    ----------
    widths : sequence of int
        The layer widths [d(0), ..., d(L)].
    output : {"tanh", "linear", "logistic", "softmax", "poisson"}, default="tanh"
        The output activation theta_L and its error measure.
    dtype : {"float64", "float32"}, default="float64"
        The dtype of the weights.
    seed : int, numpy.random.Generator or None, default=0
        The seed of `init_weights`, when `weights` is None.
    weights : list of ndarray or None, default=None
        The initial W(1), ..., W(L); None draws them with `init_weights`.
    activation : {"tanh", "relu", "logistic", "identity"}, default="tanh"
        The activation theta of the hidden layers.

    See Also
    --------
    fastbp.Network : The same class over the compiled kernels; its methods are these.

    Examples
    --------
    >>> import numpy as np
    >>> import fastbp
    >>> from fastbp import reference
    >>> X = np.array([[0.5, -1.0], [1.0, 2.0], [-0.5, 0.3]])
    >>> y = np.array([1.0, -1.0, 1.0])
    >>> slow, fast = reference.Network([2, 3, 1], seed=0), fastbp.Network([2, 3, 1], seed=0)
    >>> bool(np.isclose(slow.error(X, y), fast.error(X, y)))
    True
    """

    _compute = sys.modules[__name__]
