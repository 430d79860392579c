"""Network: the widths, units, dtype and weights of a network, with methods over them."""
from __future__ import annotations

import numpy as np

from . import _checks
from ._weights import init_weights


class Network:
    """A fully connected network [d(0), ..., d(L)].

    `weights` is the list W(1), ..., W(L), W(l) of shape (d(l-1)+1, d(l)), row 0 the bias.
    `activation` is theta of the hidden layers ("tanh", "relu", "logistic", "identity"),
    `output` that of the output layer and its error measure ("tanh", "linear": squared error;
    "logistic", "softmax": cross-entropy).
    """

    def __init__(self, widths, output="tanh", dtype="float64", seed=0, weights=None,
                 activation="tanh"):
        self.widths = _checks.check_widths(widths)
        self.output = _checks.check_output(output)
        self.activation = _checks.check_activation(activation)
        _checks.check_output_width(self.output, self.widths)
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
        units = "" if self.activation == "tanh" else f", activation={self.activation!r}"
        return (f"{type(self).__module__}.{type(self).__qualname__}({self.widths}, "
                f"output={self.output!r}, dtype={self.dtype.name!r}{units})")

    def forward(self, X) -> np.ndarray:
        return self._functions().forward(self.weights, X, output=self.output,
                                         activation=self.activation)

    def error(self, X, y, sample_weight=None) -> float:
        return self._functions().error(self.weights, X, y, output=self.output,
                                       activation=self.activation, sample_weight=sample_weight)

    def gradient(self, X, y, num_threads=None, reduction="mean", out=None, accumulate=False,
                 sample_weight=None):
        return self._functions().gradient(self.weights, X, y, output=self.output,
                                          num_threads=num_threads, reduction=reduction, out=out,
                                          accumulate=accumulate, activation=self.activation,
                                          sample_weight=sample_weight)

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

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities, shape (N, d(L)): x(L) of a logistic output (each unit the probability of
        its label being 1) or of a softmax output (each row a distribution over the classes)."""
        if self.output not in _checks.CROSS_ENTROPY_OUTPUTS:
            raise ValueError(f"predict_proba needs a network with output='logistic' or "
                             f"output='softmax', whose outputs are probabilities; this one has "
                             f"output={self.output!r}")
        return self.forward(X)

    def score(self, X, y) -> float:
        """E_in on (X, y), the same as `error`: the mean squared error (1/N) sum_n ||x(L)_n -
        y_n||^2 for a tanh or linear output, the mean cross-entropy for a logistic or softmax one.
        Lower is better (unlike scikit-learn's score, which is higher-is-better)."""
        return self.error(X, y)

    def classification_error(self, X, y) -> float:
        """Fraction of misclassified samples.

        Output "tanh" or "linear", targets in {-1, +1}: one output: the class is the sign; y must
        be -1 or +1 (any non-zero value counts by its sign) and an output of exactly 0 counts as a
        mistake. Several outputs (one column per class, +1 on the true class): the class is the
        arg-max of the outputs and of the row of y.
        Output "softmax": the class is the arg-max of the outputs and of the row of y.
        Output "logistic", targets in {0, 1}: each unit predicts its label 1 when its probability
        is above 0.5 (a target counts as 1 above 0.5 too); a sample is misclassified unless every
        one of its labels is right (with one output unit: the usual two-class error).
        """
        X = _checks.check_X(X, self.widths, self.dtype)
        y = _checks.check_y(y, self.widths, self.dtype, X.shape[0])
        out = self.forward(X)
        if self.output == "logistic":
            wrong = ((out > 0.5) != (y > 0.5)).any(axis=1)
        elif self.output == "softmax":
            wrong = np.argmax(out, axis=1) != np.argmax(y, axis=1)
        elif self.widths[-1] == 1:
            zero = np.flatnonzero(y[:, 0] == 0)
            if zero.size:
                raise ValueError(f"y must hold class labels -1 or +1, got y[{zero[0]}] = 0")
            wrong = np.sign(out[:, 0]) != np.sign(y[:, 0])
        else:
            wrong = np.argmax(out, axis=1) != np.argmax(y, axis=1)
        return float(np.mean(wrong))

    def save(self, file) -> None:
        """Write the widths, output, activation, dtype and weights to a .npz file (path or binary file object);
        `fastbp.load(file)` reads it back bitwise."""
        from ._io import save
        save(self, file)
