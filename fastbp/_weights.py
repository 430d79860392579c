"""Initial weights, shared by the compiled API and the reference."""
from __future__ import annotations

import numbers

import numpy as np

from ._checks import check_dtype, check_widths


def init_weights(widths, seed=0, dtype="float64") -> list[np.ndarray]:
    """Draw small random weights W(1), ..., W(L) for layer widths [d(0), ..., d(L)].

    Parameters
    ----------
    widths : sequence of int
        The layer widths [d(0), ..., d(L)], at least two, each >= 1.
    seed : int, numpy.random.Generator or None, default=0
        The random seed or generator; the same seed gives the same weights, None fresh ones.
    dtype : {"float64", "float32"} or numpy dtype, default="float64"
        The dtype of the weights (and so of every computation on them).

    Returns
    -------
    list of ndarray
        W(1), ..., W(L); W(l) has shape (d(l-1)+1, d(l)), row 0 the bias.

    Raises
    ------
    ValueError
        If `widths` has fewer than two entries or one below 1, or `dtype` is not float32 or
        float64.
    TypeError
        If `seed` is not an integer, a Generator or None, or `widths` is not a sequence of
        integers.

    Notes
    -----
    The entries are Gaussian with standard deviation 1/sqrt(d(l-1)+1), so that each signal s(l)
    starts with a variance near the variance of one input and tanh starts in its linear region,
    not saturated.

    Examples
    --------
    >>> import fastbp
    >>> weights = fastbp.init_weights([2, 10, 1], seed=0)
    >>> [w.shape for w in weights]
    [(3, 10), (11, 1)]
    >>> fastbp.init_weights([2, 1], seed=0, dtype="float32")[0].dtype
    dtype('float32')
    """
    widths = check_widths(widths)
    dtype = check_dtype(dtype)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        if not isinstance(seed, np.random.Generator):
            raise TypeError(f"seed must be an integer, a numpy Generator or None, got {seed!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    weights = []
    for d_in, d_out in zip(widths[:-1], widths[1:]):
        w = rng.standard_normal((d_in + 1, d_out)) / np.sqrt(d_in + 1)
        weights.append(w.astype(dtype))
    return weights
