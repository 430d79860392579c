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

    # --- training and its companions (fastbp.training, fastbp._io) -------------------------------

    def fit(self, X, y, method: str = "sgd", learning_rate: float = 0.1, epochs: int = 100,
            batch_size: int = 32, shuffle: bool = True, momentum: float = 0.0,
            weight_decay: float = 0.0, validation_data=None, validation_fraction=None,
            early_stopping: bool = False, patience: int = 10, tol=None, callback=None,
            progress: bool = False, num_threads=None, seed=0, lr_increase: float = 1.1,
            lr_decrease: float = 0.5, line_search_steps: int = 20):
        """Train the weights in place from where they are; returns a `fastbp.training.History`.

        The arguments are those of `fastbp.fit` (see there), with this network's output.
        """
        from .training import fit
        return fit(self.weights, X, y, output=self.output, method=method,
                   learning_rate=learning_rate, epochs=epochs, batch_size=batch_size,
                   shuffle=shuffle, momentum=momentum, weight_decay=weight_decay,
                   validation_data=validation_data, validation_fraction=validation_fraction,
                   early_stopping=early_stopping, patience=patience, tol=tol, callback=callback,
                   progress=progress, num_threads=num_threads, seed=seed,
                   lr_increase=lr_increase, lr_decrease=lr_decrease,
                   line_search_steps=line_search_steps)

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
        from ._io import save
        save(self, file)
