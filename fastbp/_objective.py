"""The objective the full-batch training methods minimise, over flat weight vectors.

With weight decay lambda >= 0 and N training samples (Learning From Data, e-Chapter 7)

    E_aug(w) = E_in(w) + (lambda / N) * sum of the squares of ALL weights, bias rows included,
    grad E_aug = grad E_in + (2 lambda / N) * w.

The book's sum runs over every w_ij(l), i = 0 (the bias) included, and so does this one: one rule,
no special rows. With lambda = 0, E_aug = E_in.

`Objective` is the seam between the methods and the data: a method sees only `error(w)` and
`gradient(w, g)` on flat vectors (all layers' weights end to end, in the network's dtype). A
subclass says where E_in and its gradient come from, at per-layer weights: `DataObjective` from
arrays in memory (fastbp.error / fastbp.gradient); fastbp.distributed from data on a cluster.
"""
from __future__ import annotations

import numpy as np

from . import _api


def sum_squares(w) -> float:
    """sum w^2 over a flat vector, in float64 and in a fixed order (no BLAS)."""
    return float(np.square(w, dtype=np.float64).sum())


def dot(a, b) -> float:
    """a . b over flat vectors, in float64 and in a fixed order (no BLAS)."""
    return float(np.multiply(a, b, dtype=np.float64).sum())


def layer_shapes(widths) -> tuple[tuple[int, int], ...]:
    """The shapes (d(l-1)+1, d(l)) of W(1), ..., W(L) for the widths [d(0), ..., d(L)]."""
    return tuple((a + 1, b) for a, b in zip(widths[:-1], widths[1:]))


def layer_views(flat: np.ndarray, shapes) -> list[np.ndarray]:
    """The per-layer arrays of these shapes inside a flat vector, end to end (views, no copies)."""
    out, pos = [], 0
    for a, b in shapes:
        out.append(flat[pos:pos + a * b].reshape(a, b))
        pos += a * b
    return out


def flatten(arrays, dtype) -> np.ndarray:
    """A new flat vector of `dtype` holding the per-layer arrays end to end."""
    return np.concatenate([np.asarray(a, dtype=dtype).ravel() for a in arrays])


class Objective:
    """E_in, E_aug and grad E_aug at flat weight vectors.

    widths are [d(0), ..., d(L)], dtype the network's (float32 or float64), n_samples the N of
    lambda / N. Subclasses implement `error_in` and `gradient_in`.
    """

    def __init__(self, widths, dtype, n_samples: int, weight_decay: float = 0.0):
        self.widths = list(widths)
        self.shapes = layer_shapes(self.widths)
        self.size = sum(a * b for a, b in self.shapes)
        self.dtype = np.dtype(dtype)
        self.n_samples = int(n_samples)
        self.weight_decay = float(weight_decay)
        self.decay = self.weight_decay / self.n_samples         # lambda / N

    # --- what a subclass provides -----------------------------------------------------------
    def error_in(self, weights: list[np.ndarray]) -> float:
        """E_in at the per-layer weights (views into a flat vector, C-contiguous)."""
        raise NotImplementedError

    def gradient_in(self, weights: list[np.ndarray], grads: list[np.ndarray]) -> float:
        """E_in at the per-layer weights; writes dE_in/dW(l) into grads[l-1] (views, contiguous)."""
        raise NotImplementedError

    # --- flat vectors -----------------------------------------------------------------------
    def views(self, flat: np.ndarray) -> list[np.ndarray]:
        """The per-layer arrays W(1..L) inside a flat vector (views, no copies)."""
        return layer_views(flat, self.shapes)

    def flat(self, arrays) -> np.ndarray:
        """A new flat vector of the network's dtype holding the per-layer arrays."""
        return flatten(arrays, self.dtype)

    # --- the penalty of E_aug (a subclass may regularise otherwise) ----------------------------
    def penalty(self, w) -> float:
        """E_aug - E_in at the flat w: (lambda / N) sum w^2."""
        return self.decay * sum_squares(w)

    def add_penalty_gradient(self, w, g) -> None:
        """g += the gradient of the penalty at w."""
        g += (2.0 * self.decay) * w

    def kernel_loss(self):
        """(the DataObjective whose data the training kernels read, the Loss they compute this
        objective with: fastbp._api.loss_spec), or None when only epoch() computes it (data not
        in memory, an objective of one's own). fastbp._methods.KernelEpochs runs the
        full-batch methods' epochs in the kernel for an objective that has one."""
        return None

    def augment(self, E_in: float, w) -> float:
        return E_in + self.penalty(w) if self.decay else E_in

    def error(self, w, views=None) -> tuple[float, float]:
        """(E_in, E_aug) at the flat weights w."""
        E_in = self.error_in(views if views is not None else self.views(w))
        return E_in, self.augment(E_in, w)

    def gradient(self, w, g, w_views=None, g_views=None) -> tuple[float, float]:
        """(E_in, E_aug) at w; writes grad E_aug into the flat g."""
        E_in = self.gradient_in(w_views if w_views is not None else self.views(w),
                                g_views if g_views is not None else self.views(g))
        if self.decay:
            self.add_penalty_gradient(w, g)
        return E_in, self.augment(E_in, w)


class DataObjective(Objective):
    """The objective on a data set in memory: X (N, d(0)) and y (N, d(L)), checked and converted
    to the network's dtype already (sample weights too, or None), computed by the compiled kernels
    on `threads` threads with these hidden `activation` and `output` units. The mini-batch
    methods read X, y, sample_weight, activation and output from here too. (lambda / N counts
    samples, weighted or not.)"""

    def __init__(self, widths, dtype, X, y, output: str, threads: int, weight_decay: float = 0.0,
                 activation: str = "tanh", sample_weight=None):
        super().__init__(widths, dtype, X.shape[0], weight_decay)
        self.X, self.y, self.output, self.threads = X, y, output, threads
        self.activation, self.sample_weight = activation, sample_weight

    def kernel_loss(self):
        # a subclass may compute E_in otherwise: the kernels compute only this class's
        return (self, _api.loss_spec(decay=self.decay)) if type(self) is DataObjective else None

    def error_in(self, weights) -> float:
        return _api.error(weights, self.X, self.y, output=self.output, num_threads=self.threads,
                          activation=self.activation, sample_weight=self.sample_weight)

    def gradient_in(self, weights, grads) -> float:
        E_in, _ = _api.gradient(weights, self.X, self.y, output=self.output,
                                num_threads=self.threads, out=grads, activation=self.activation,
                                sample_weight=self.sample_weight)
        return E_in
