"""Network: the widths, output, dtype and weights of a tanh network, with methods over them."""
from __future__ import annotations

import numpy as np

from . import _checks
from ._weights import init_weights


class Network:
    """A fully connected tanh network [d(0), ..., d(L)].

    `weights` is the list W(1), ..., W(L), W(l) of shape (d(l-1)+1, d(l)), row 0 the bias.
    """

    def __init__(self, widths, output="tanh", dtype="float64", seed=0, weights=None):
        self.widths = _checks.check_widths(widths)
        self.output = _checks.check_output(output)
        self.dtype = _checks.check_dtype(dtype)
        if weights is None:
            self.weights = init_weights(self.widths, seed=seed, dtype=self.dtype)
        else:
            checked, widths_w, dtype_w = _checks.check_weights(weights)
            if widths_w != self.widths:
                raise ValueError(f"weights are for widths {widths_w}, not {self.widths}")
            self.weights = [np.array(w, dtype=self.dtype) for w in checked]

    @staticmethod
    def _functions():
        import fastbp
        return fastbp

    def __repr__(self) -> str:
        return (f"{type(self).__module__}.{type(self).__qualname__}({self.widths}, "
                f"output={self.output!r}, dtype={self.dtype.name!r})")

    def forward(self, X) -> np.ndarray:
        return self._functions().forward(self.weights, X, output=self.output)

    def error(self, X, y) -> float:
        return self._functions().error(self.weights, X, y, output=self.output)

    def gradient(self, X, y, num_threads=None, reduction="mean", out=None, accumulate=False):
        return self._functions().gradient(self.weights, X, y, output=self.output,
                                          num_threads=num_threads, reduction=reduction, out=out,
                                          accumulate=accumulate)
