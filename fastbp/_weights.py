"""Initial weights, shared by the compiled API and the reference."""
from __future__ import annotations

import numbers

import numpy as np

from ._checks import check_dtype, check_widths


def init_weights(widths, seed=0, dtype="float64") -> list[np.ndarray]:
    """Small random weights W(1), ..., W(L) for layer widths [d(0), ..., d(L)].

    W(l) has shape (d(l-1)+1, d(l)), row 0 the bias. Entries are Gaussian with standard deviation
    1/sqrt(d(l-1)+1), so that each signal s(l) starts with a variance near the variance of one input
    and tanh starts in its linear region, not saturated. The same seed gives the same weights.
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
