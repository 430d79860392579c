"""The pure-Python twin of fastbp: the lecture's backpropagation, one sample at a time.

Readable first: this is the oracle the compiled kernels are tested against and the baseline they are
measured against. It offers the same functions with the same signatures as `fastbp`, so that

    from fastbp import reference as fastbp

is all it takes to switch. Arguments go through the same checks as the compiled API.

Notation (Learning From Data): x(0) = [1; x], s(l) = W(l)^T x(l-1), x(l) = [1; tanh(s(l))] for
hidden layers and x(L) = theta(s(L)) at the output; e = ||x(L) - y||^2;
delta(L) = 2 (x(L) - y) theta'(s(L)), delta(l) = (1 - x(l)^2) * [W(l+1) delta(l+1)] (bias row dropped);
de/dW(l) = x(l-1) delta(l)^T.
"""
from __future__ import annotations

import sys

import numpy as np

from . import _checks
from ._weights import init_weights
from .network import Network as _Network

__all__ = ["init_weights", "forward", "error", "gradient", "backprop", "Network"]


def _theta(s, output):
    return np.tanh(s) if output == "tanh" else s


def _forward_sample(weights, x, output):
    """Forward propagation of one sample: [x(0), ..., x(L)], hidden ones with their leading 1."""
    L = len(weights)
    xs = [np.concatenate(([1.0], x)).astype(x.dtype)]
    for l in range(1, L + 1):
        s = weights[l - 1].T @ xs[l - 1]
        if l < L:
            xs.append(np.concatenate(([1.0], np.tanh(s))).astype(x.dtype))
        else:
            xs.append(_theta(s, output))
    return xs


def _backward_sample(weights, xs, y, output):
    """Backward propagation of one sample: [delta(1), ..., delta(L)]."""
    L = len(weights)
    xL = xs[L]
    dtheta = 1 - xL * xL if output == "tanh" else np.ones_like(xL)
    deltas = [None] * (L + 1)
    deltas[L] = 2 * (xL - y) * dtheta
    for l in range(L - 1, 0, -1):
        back = weights[l] @ deltas[l + 1]          # W(l+1) delta(l+1)
        deltas[l] = (1 - xs[l][1:] ** 2) * back[1:]  # bias row dropped
    return deltas[1:]


def forward(weights, X, output="tanh") -> np.ndarray:
    """Outputs x(L) for every row of X: shape (N, d(L))."""
    weights, widths, dtype = _checks.check_weights(weights)
    output = _checks.check_output(output)
    X = _checks.check_X(X, widths, dtype)
    return np.array([_forward_sample(weights, x, output)[-1] for x in X], dtype=dtype)


def error(weights, X, y, output="tanh") -> float:
    """E_in = (1/N) sum_n ||x(L)_n - y_n||^2."""
    weights, widths, dtype = _checks.check_weights(weights)
    output = _checks.check_output(output)
    X = _checks.check_X(X, widths, dtype)
    y = _checks.check_y(y, widths, dtype, X.shape[0])
    total = 0.0
    for x, yn in zip(X, y):
        e = _forward_sample(weights, x, output)[-1] - yn
        total += float(e @ e)
    return total / X.shape[0]


def gradient(weights, X, y, output="tanh", num_threads=None, reduction="mean", out=None,
             accumulate=False):
    """(E_in, [dE_in/dW(1), ..., dE_in/dW(L)]), summed over the samples one by one.

    num_threads is checked and ignored: the reference runs on one thread.
    """
    weights, widths, dtype = _checks.check_weights(weights)
    output = _checks.check_output(output)
    X = _checks.check_X(X, widths, dtype)
    y = _checks.check_y(y, widths, dtype, X.shape[0])
    _checks.check_num_threads(num_threads, 1)
    reduction = _checks.check_reduction(reduction)
    if out is not None:
        out = _checks.check_out(out, weights)
    elif accumulate:
        raise ValueError("accumulate=True needs out=, the arrays to add the gradient into")
    total = 0.0
    grads = [np.zeros(w.shape) for w in weights]  # sums kept in float64
    for x, yn in zip(X, y):
        xs = _forward_sample(weights, x, output)
        e = xs[-1] - yn
        total += float(e @ e)
        deltas = _backward_sample(weights, xs, yn, output)
        for l in range(len(weights)):
            grads[l] += np.outer(xs[l], deltas[l])
    scale = 1.0 / X.shape[0] if reduction == "mean" else 1.0
    grads = [(g * scale).astype(dtype) for g in grads]
    if out is not None:
        for o, g in zip(out, grads):
            if accumulate:
                o += g
            else:
                o[...] = g
        grads = out
    return total * scale, grads


def backprop(weights, x, y, output="tanh"):
    """One sample: ([x(0), ..., x(L)], [delta(1), ..., delta(L)]).

    Hidden x(l) carry their leading 1; the output x(L) does not. The gradient of e_n is
    de_n/dW(l) = outer(xs[l-1], deltas[l-1]).
    """
    weights, widths, dtype = _checks.check_weights(weights)
    output = _checks.check_output(output)
    x, y = _checks.check_sample(x, y, widths, dtype)
    xs = _forward_sample(weights, x[0], output)
    return xs, _backward_sample(weights, xs, y[0], output)


class Network(_Network):
    """fastbp.Network, computed by the reference."""

    _compute = sys.modules[__name__]
