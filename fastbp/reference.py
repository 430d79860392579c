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
  softmax        e = -sum_k y_k log x_k, x = softmax(s(L)),         delta(L) = x(L) - y.
The cross-entropies are computed from s(L) (log sigma(s) = -log(1 + e^-s), log softmax(s)_k =
s_k - log-sum-exp(s)), never as the log of a rounded probability.

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
        deltas[L] = xL - y  # both cross-entropies: theta' cancels the 1/x of the log
    for l in range(L - 1, 0, -1):
        back = weights[l] @ deltas[l + 1]                        # W(l+1) delta(l+1)
        deltas[l] = _dtheta(xs[l][1:], activation) * back[1:]    # bias row dropped
    return deltas[1:]


def _check_model(output, activation, widths):
    output = _checks.check_output(output)
    activation = _checks.check_activation(activation)
    _checks.check_output_width(output, widths)
    return output, activation


def forward(weights, X, output="tanh", activation="tanh") -> np.ndarray:
    """Outputs x(L) for every row of X: shape (N, d(L))."""
    weights, widths, dtype = _checks.check_weights(weights)
    output, activation = _check_model(output, activation, widths)
    X = _checks.check_X(X, widths, dtype)
    return np.array([_forward_sample(weights, x, output, activation)[0][-1] for x in X],
                    dtype=dtype)


def _checked_batch(weights, X, y, output, activation, sample_weight):
    weights, widths, dtype = _checks.check_weights(weights)
    output, activation = _check_model(output, activation, widths)
    X = _checks.check_X(X, widths, dtype)
    y = _checks.check_y(y, widths, dtype, X.shape[0])
    _checks.check_targets(y, output)
    sample_weight = _checks.check_sample_weight(sample_weight, X.shape[0], dtype)
    if sample_weight is None:
        sample_weight = np.ones(X.shape[0])
    return weights, dtype, X, y, output, activation, sample_weight


def error(weights, X, y, output="tanh", num_threads=None, activation="tanh",
          sample_weight=None) -> float:
    """E_in = sum_n w_n e_n / sum_n w_n (w_n = 1 without sample weights: (1/N) sum_n e_n).

    num_threads is checked and ignored: the reference runs on one thread.
    """
    weights, dtype, X, y, output, activation, w = _checked_batch(weights, X, y, output, activation,
                                                                 sample_weight)
    _checks.check_num_threads(num_threads, 1)
    total = 0.0
    for x, yn, wn in zip(X, y, w):
        xs, sL = _forward_sample(weights, x, output, activation)
        total += float(wn) * _error_sample(xs[-1], sL, yn, output)
    return total / float(np.sum(w, dtype=np.float64))


def gradient(weights, X, y, output="tanh", num_threads=None, reduction="mean", out=None,
             accumulate=False, activation="tanh", sample_weight=None):
    """(E_in, [dE_in/dW(1), ..., dE_in/dW(L)]), summed over the samples one by one.

    reduction="sum": sum_n w_n e_n and its gradient. num_threads is checked and ignored: the
    reference runs on one thread.
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
    """One sample: ([x(0), ..., x(L)], [delta(1), ..., delta(L)]).

    Hidden x(l) carry their leading 1; the output x(L) does not. The gradient of e_n is
    de_n/dW(l) = outer(xs[l-1], deltas[l-1]).
    """
    weights, widths, dtype = _checks.check_weights(weights)
    output, activation = _check_model(output, activation, widths)
    x, y = _checks.check_sample(x, y, widths, dtype)
    _checks.check_targets(y, output)
    xs, _ = _forward_sample(weights, x[0], output, activation)
    return xs, _backward_sample(weights, xs, y[0], output, activation)


class Network(_Network):
    """fastbp.Network, computed by the reference."""

    _compute = sys.modules[__name__]
