"""Network: the widths, output, dtype and weights of a tanh network, with methods over them."""
from __future__ import annotations

import numpy as np

from . import _api, _checks, _io
from ._weights import init_weights


class Network:
    """A fully connected tanh network [d(0), ..., d(L)].

    `weights` is the list W(1), ..., W(L), W(l) of shape (d(l-1)+1, d(l)), row 0 the bias.
    """

    # the module that computes forward, error and gradient (fastbp.reference.Network: the reference)
    _compute = _api

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
        self.history = None      # the History of the last fit
        self.restart_histories = None   # all K histories of the last fit with restarts=K

    def __repr__(self) -> str:
        return (f"{type(self).__module__}.{type(self).__qualname__}({self.widths}, "
                f"output={self.output!r}, dtype={self.dtype.name!r})")

    def forward(self, X) -> np.ndarray:
        return self._compute.forward(self.weights, X, output=self.output)

    def error(self, X, y) -> float:
        return self._compute.error(self.weights, X, y, output=self.output)

    def gradient(self, X, y, num_threads=None, reduction="mean", out=None, accumulate=False):
        return self._compute.gradient(self.weights, X, y, output=self.output,
                                          num_threads=num_threads, reduction=reduction, out=out,
                                          accumulate=accumulate)

    # --- training and its companions (fastbp.training, fastbp._io) -------------------------------

    def fit(self, X, y, method: str = "sgd", restarts: int = 1, **options):
        """Train the weights in place from where they are; returns a `fastbp.training.History`
        (also kept as `self.history`).

        The method and options are those of `fastbp.fit` (see there), with this network's
        output; `warm_start=True` goes on from the state the last fit of this network ended with.

        restarts=K > 1 trains K networks side by side (`fastbp.fit_many`, one per thread): this
        one from its current weights and K - 1 from fresh `init_weights` (seeded by `seed` and the
        restart's number), and keeps the best: the lowest E_val when there is a validation set
        (with early stopping: at the restored epoch), else the lowest final E_in. The weights
        become the best network's; its History is returned; `self.restart_histories` holds all K.
        """
        from .training import fit, fit_many
        if "output" in options:
            raise TypeError("fit() got an unexpected keyword argument 'output' (a Network's "
                            "output is fixed when it is made)")
        restarts = _checks.check_integer(restarts, "restarts", 1)
        if options.get("warm_start") is True:
            if self.history is None:
                raise ValueError("warm_start=True goes on from this network's last fit, but it "
                                 "has not been fitted yet")
            options["warm_start"] = self.history
        if restarts == 1:
            self.history = fit(self.weights, X, y, output=self.output, method=method, **options)
            return self.history
        if options.get("warm_start") not in (None, False):
            raise ValueError("restarts > 1 trains fresh networks: it cannot warm_start")
        num_threads = options.pop("num_threads", None)
        starts = [[w.copy() for w in self.weights]] + [
            init_weights(self.widths, seed=_restart_rng(options.get("seed", 0), k),
                         dtype=self.dtype) for k in range(1, restarts)]
        histories = fit_many(starts, X, y, output=self.output, method=method,
                             num_threads=num_threads, **options)
        best = min(range(restarts), key=lambda k: _final_error(histories[k]))
        for w, b in zip(self.weights, starts[best]):
            np.copyto(w, b)
        self.restart_histories = histories
        self.history = histories[best]
        return self.history

    def predict(self, X) -> np.ndarray:
        """The outputs x(L), shape (N, d(L)): the same as `forward`."""
        return self.forward(X)

    def score(self, X, y) -> float:
        """E_in on (X, y): the mean squared error (1/N) sum_n ||x(L)_n - y_n||^2, the same as
        `error`. Lower is better (unlike scikit-learn's score, which is higher-is-better)."""
        return self.error(X, y)

    def classification_error(self, X, y) -> float:
        """Fraction of misclassified samples, for targets in {-1, +1}.

        One output: the class is the sign; y must be -1 or +1 (any non-zero value counts by its
        sign) and an output of exactly 0 counts as a mistake. Several outputs (one column per class,
        +1 on the true class): the class is the arg-max of the outputs and of the row of y.
        """
        X = _checks.check_X(X, self.widths, self.dtype)
        y = _checks.check_y(y, self.widths, self.dtype, X.shape[0])
        out = self.forward(X)
        if self.widths[-1] == 1:
            zero = np.flatnonzero(y[:, 0] == 0)
            if zero.size:
                raise ValueError(f"y must hold class labels -1 or +1, got y[{zero[0]}] = 0")
            wrong = np.sign(out[:, 0]) != np.sign(y[:, 0])
        else:
            wrong = np.argmax(out, axis=1) != np.argmax(y, axis=1)
        return float(np.mean(wrong))

    def save(self, file) -> None:
        """Write the widths, output, dtype and weights to a .npz file (path or binary file object);
        `fastbp.load(file)` reads it back bitwise."""
        checked, widths, dtype = _checks.check_weights(self.weights)
        if widths != list(self.widths) or dtype != self.dtype:
            raise ValueError(f"net.weights are for widths {widths} and dtype {dtype}, but the "
                             f"network has widths {list(self.widths)} and dtype {self.dtype}")
        _io.write(file, self.widths, self.output, self.dtype, checked)


def load(file) -> Network:
    """Read a Network written by `Network.save` (a path or a binary file object).

    Raises ValueError for a file that is not such a model (not an .npz, missing or unexpected
    arrays, shapes that do not match the widths, non-finite weights, pickled objects, ...);
    a missing file raises FileNotFoundError as usual.
    """
    widths, output, dtype, weights = _io.read(file)
    return Network(widths, output=output, dtype=dtype, weights=weights)


def _restart_rng(seed, k):
    """The generator of restart k's initial weights: from (seed, k), or fresh for seed None."""
    if seed is None:
        return np.random.default_rng()
    if isinstance(seed, np.random.Generator):
        return np.random.default_rng(seed.integers(0, 2 ** 63))
    return np.random.default_rng([int(seed), k])


def _final_error(history) -> float:
    """What restarts compare: E_val of the weights kept (the restored epoch with early stopping),
    or the final E_in without a validation set; NaN-free (a diverged network ranks last)."""
    if history.E_val:
        if history.best_epoch is not None:
            value = (history.start["E_val"] if history.best_epoch == 0
                     else history.E_val[history.best_epoch - 1])
        else:
            value = history.E_val[-1]
    elif len(history):
        value = history.E_in[-1]
    else:
        value = history.start.get("E_in", np.inf)
    return value if np.isfinite(value) else np.inf
