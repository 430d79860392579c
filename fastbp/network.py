"""Network: the widths, units, dtype and weights of a network, with methods over them."""
from __future__ import annotations

import numpy as np

from . import _api, _checks, _io
from ._weights import init_weights


class Network:
    """A fully connected network [d(0), ..., d(L)]: its widths, units, dtype and weights.

    Parameters
    ----------
    widths : sequence of int
        The layer widths [d(0), ..., d(L)].
    output : {"tanh", "linear", "logistic", "softmax", "poisson"}, default="tanh"
        The output activation theta_L and its error measure: "tanh" and "linear" the squared
        error, "logistic" and "softmax" the cross-entropy, "poisson" (x(L) = exp(s(L))) the
        Poisson deviance.
    dtype : {"float64", "float32"}, default="float64"
        The dtype of the weights and of every computation.
    seed : int, numpy.random.Generator or None, default=0
        The seed of `init_weights`, when `weights` is None.
    weights : list of ndarray or None, default=None
        The initial W(1), ..., W(L) (copied, in `dtype`); None draws them with `init_weights`.
    activation : {"tanh", "relu", "logistic", "identity"}, default="tanh"
        The activation theta of the hidden layers.

    Attributes
    ----------
    widths : list of int
        [d(0), ..., d(L)].
    output, activation : str
        The units, as given.
    dtype : numpy.dtype
        float32 or float64.
    weights : list of ndarray
        W(1), ..., W(L), W(l) of shape (d(l-1)+1, d(l)), row 0 the bias; `fit` updates them in
        place.
    history : History or None
        The History of the last `fit` (None before the first).
    restart_histories : list of History or None
        All K histories of the last fit with ``restarts=K``.

    Raises
    ------
    ValueError
        If a width, `output`, `activation` or `dtype` is not valid, or `weights` are for other
        widths.
    TypeError
        If an argument is of the wrong type.

    See Also
    --------
    load : Read a Network written by `Network.save`.
    fastbp.reference.Network : The same network, computed by the pure-Python reference.

    Examples
    --------
    >>> import numpy as np
    >>> import fastbp
    >>> X = np.array([[0.5, -1.0], [1.0, 2.0], [-0.5, 0.3], [2.0, 0.1]])
    >>> y = np.array([1.0, -1.0, 1.0, -1.0])
    >>> net = fastbp.Network([2, 3, 1], seed=0)
    >>> net
    fastbp.network.Network([2, 3, 1], output='tanh', dtype='float64')
    >>> [w.shape for w in net.weights]
    [(3, 3), (4, 1)]
    >>> history = net.fit(X, y, method="gd", epochs=20)
    >>> net.error(X, y) < history.start["E_in"]
    True
    """

    # the module that computes forward, error and gradient (fastbp.reference.Network: the reference)
    _compute = _api

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
        self.history = None      # the History of the last fit
        self.restart_histories = None   # all K histories of the last fit with restarts=K

    def __repr__(self) -> str:
        units = "" if self.activation == "tanh" else f", activation={self.activation!r}"
        return (f"{type(self).__module__}.{type(self).__qualname__}({self.widths}, "
                f"output={self.output!r}, dtype={self.dtype.name!r}{units})")

    def forward(self, X) -> np.ndarray:
        """Compute the outputs x(L) for every row of `X`, as `fastbp.forward` does.

        Parameters
        ----------
        X : array_like or scipy.sparse matrix of shape (N, d(0))
            The inputs, one per row; a sparse one is computed sparse (CSR as it is,
            other formats converted once; never made dense).

        Returns
        -------
        ndarray of shape (N, d(L))
            The outputs x(L), in the network's dtype.

        Raises
        ------
        ValueError
            If `X` does not have d(0) columns or holds NaN or infinity.

        Examples
        --------
        >>> import numpy as np
        >>> import fastbp
        >>> X = np.array([[0.5, -1.0], [1.0, 2.0], [-0.5, 0.3], [2.0, 0.1]])
        >>> y = np.array([1.0, -1.0, 1.0, -1.0])
        >>> net = fastbp.Network([2, 3, 1], seed=0)
        >>> net.forward(X).shape
        (4, 1)
        """
        return self._compute.forward(self.weights, X, output=self.output,
                                     activation=self.activation)

    def error(self, X, y, sample_weight=None) -> float:
        """Compute the in-sample error E_in on (`X`, `y`), as `fastbp.error` does.

        Parameters
        ----------
        X : array_like or scipy.sparse matrix of shape (N, d(0))
            The inputs, one per row; a sparse one is computed sparse (CSR as it is,
            other formats converted once; never made dense).
        y : array_like of shape (N, d(L)) or (N,)
            The targets.
        sample_weight : array_like of shape (N,) or None, default=None
            Weights w_n >= 0 of the samples; None weights each sample 1.

        Returns
        -------
        float
            E_in = (1/N) sum_n e_n, or sum_n w_n e_n / sum_n w_n with `sample_weight`.

        Raises
        ------
        ValueError
            If a shape does not match the widths, or a value is NaN, infinite or out of range.

        Examples
        --------
        >>> import numpy as np
        >>> import fastbp
        >>> X = np.array([[0.5, -1.0], [1.0, 2.0], [-0.5, 0.3], [2.0, 0.1]])
        >>> y = np.array([1.0, -1.0, 1.0, -1.0])
        >>> net = fastbp.Network([2, 3, 1], seed=0)
        >>> round(net.error(X, y), 6)
        1.639474
        """
        return self._compute.error(self.weights, X, y, output=self.output,
                                   activation=self.activation, sample_weight=sample_weight)

    def gradient(self, X, y, num_threads=None, reduction="mean", out=None, accumulate=False,
                 sample_weight=None):
        """Compute E_in and its gradient by backpropagation, as `fastbp.gradient` does.

        Parameters
        ----------
        X : array_like or scipy.sparse matrix of shape (N, d(0))
            The inputs, one per row; a sparse one is computed sparse (CSR as it is,
            other formats converted once; never made dense).
        y : array_like of shape (N, d(L)) or (N,)
            The targets.
        num_threads : int or None, default=None
            Threads of the kernel (None: every usable core); the result is bitwise the same on
            any number.
        reduction : {"mean", "sum"}, default="mean"
            E_in and its gradient, or the sums sum_n e_n and theirs.
        out : list of ndarray or None, default=None
            Arrays shaped like the weights to write the gradient into (and return).
        accumulate : bool, default=False
            Add the gradient to `out` instead of overwriting it.
        sample_weight : array_like of shape (N,) or None, default=None
            Weights w_n >= 0 of the samples.

        Returns
        -------
        E_in : float
            The error (the sum with ``reduction="sum"``).
        grads : list of ndarray
            [dE_in/dW(1), ..., dE_in/dW(L)], shaped like the weights.

        Raises
        ------
        ValueError
            If a shape does not match the widths, a value is NaN or infinite, or `accumulate`
            is True without `out`.

        Examples
        --------
        >>> import numpy as np
        >>> import fastbp
        >>> X = np.array([[0.5, -1.0], [1.0, 2.0], [-0.5, 0.3], [2.0, 0.1]])
        >>> y = np.array([1.0, -1.0, 1.0, -1.0])
        >>> net = fastbp.Network([2, 3, 1], seed=0)
        >>> E_in, grads = net.gradient(X, y)
        >>> [g.shape for g in grads]
        [(3, 3), (4, 1)]
        """
        return self._compute.gradient(self.weights, X, y, output=self.output,
                                      num_threads=num_threads, reduction=reduction, out=out,
                                      accumulate=accumulate, activation=self.activation,
                                      sample_weight=sample_weight)

    # --- training and its companions (fastbp.training, fastbp._io) -------------------------------

    def fit(self, X, y, method: str = "sgd", restarts: int = 1, **options):
        """Train the weights in place from where they are.

        Parameters
        ----------
        X : array_like or scipy.sparse matrix of shape (N, d(0))
            The training inputs; a sparse one is computed sparse (CSR as it is,
            other formats converted once; never made dense).
        y : array_like of shape (N, d(L)) or (N,)
            The training targets.
        method : str, default="sgd"
            The training method, as for `fastbp.fit`: "gd", "sgd", "adam", "variable-lr",
            "steepest", "cg", "rprop" or "lbfgs".
        restarts : int, default=1
            K >= 1. With K > 1, train K networks side by side (`fastbp.fit_many`, one per
            thread): this one from its current weights and K - 1 from fresh `init_weights`
            (seeded by `seed` and the restart's number), and keep the best: the lowest E_val when
            there is a validation set (with early stopping: at the restored epoch), else the
            lowest final E_in. The weights become the best network's; its History is returned;
            `restart_histories` holds all K.
        **options
            The options of `fastbp.fit` (see `fastbp.training.FitOptions`), with this network's
            output and activation. ``warm_start=True`` goes on from the state the last fit of
            this network ended with.

        Returns
        -------
        History
            What the fit did, one entry per epoch; also kept as `history`.

        Raises
        ------
        TypeError
            If `output` or `activation` is given (a Network's units are fixed when it is made),
            or an option is unknown.
        ValueError
            If ``warm_start=True`` before any fit, ``restarts > 1`` with `warm_start`, or an
            argument or option is not valid (as for `fastbp.fit`).

        See Also
        --------
        fastbp.fit : The function this method calls, with every option described.

        Examples
        --------
        >>> import numpy as np
        >>> import fastbp
        >>> X = np.array([[0.5, -1.0], [1.0, 2.0], [-0.5, 0.3], [2.0, 0.1]])
        >>> y = np.array([1.0, -1.0, 1.0, -1.0])
        >>> net = fastbp.Network([2, 3, 1], seed=0)
        >>> history = net.fit(X, y, method="gd", epochs=20, learning_rate=0.1)
        >>> len(history), history.stop_reason
        (20, 'epochs')
        >>> history.E_in[-1] < history.start["E_in"]
        True
        >>> history = net.fit(X, y, method="gd", epochs=5, restarts=3)
        >>> len(net.restart_histories)
        3
        """
        from .training import fit, fit_many
        for fixed in ("output", "activation"):
            if fixed in options:
                raise TypeError(f"fit() got an unexpected keyword argument {fixed!r} (a "
                                f"Network's {fixed} is fixed when it is made)")
        restarts = _checks.check_integer(restarts, "restarts", 1)
        if options.get("warm_start") is True:
            if self.history is None:
                raise ValueError("warm_start=True goes on from this network's last fit, but it "
                                 "has not been fitted yet")
            options["warm_start"] = self.history
        if restarts == 1:
            self.history = fit(self.weights, X, y, output=self.output, method=method,
                               activation=self.activation, **options)
            return self.history
        if options.get("warm_start") not in (None, False):
            raise ValueError("restarts > 1 trains fresh networks: it cannot warm_start")
        num_threads = options.pop("num_threads", None)
        starts = [[w.copy() for w in self.weights]] + [
            init_weights(self.widths, seed=_restart_rng(options.get("seed", 0), k),
                         dtype=self.dtype) for k in range(1, restarts)]
        histories = fit_many(starts, X, y, output=self.output, method=method,
                             num_threads=num_threads, activation=self.activation, **options)
        best = min(range(restarts), key=lambda k: _final_error(histories[k]))
        for w, b in zip(self.weights, starts[best]):
            np.copyto(w, b)
        self.restart_histories = histories
        self.history = histories[best]
        return self.history

    def predict(self, X) -> np.ndarray:
        """Predict the outputs x(L) for every row of `X`: the same as `forward`.

        Parameters
        ----------
        X : array_like or scipy.sparse matrix of shape (N, d(0))
            The inputs, one per row; a sparse one is computed sparse (CSR as it is,
            other formats converted once; never made dense).

        Returns
        -------
        ndarray of shape (N, d(L))
            The outputs x(L).

        Examples
        --------
        >>> import numpy as np
        >>> import fastbp
        >>> X = np.array([[0.5, -1.0], [1.0, 2.0], [-0.5, 0.3], [2.0, 0.1]])
        >>> y = np.array([1.0, -1.0, 1.0, -1.0])
        >>> net = fastbp.Network([2, 3, 1], seed=0)
        >>> np.sign(net.predict(X)).ravel()
        array([-1., -1., -1., -1.])
        """
        return self.forward(X)

    def predict_proba(self, X) -> np.ndarray:
        """Predict probabilities: the outputs x(L) of a logistic or softmax network.

        Parameters
        ----------
        X : array_like or scipy.sparse matrix of shape (N, d(0))
            The inputs, one per row; a sparse one is computed sparse (CSR as it is,
            other formats converted once; never made dense).

        Returns
        -------
        ndarray of shape (N, d(L))
            The outputs x(L) of a logistic output (each unit the probability of its label being
            1) or of a softmax output (each row a distribution over the classes).

        Raises
        ------
        ValueError
            If the network's output is not "logistic" or "softmax" (its outputs are not
            probabilities).

        Examples
        --------
        >>> import numpy as np
        >>> import fastbp
        >>> net = fastbp.Network([2, 3, 2], output="softmax", seed=0)
        >>> proba = net.predict_proba([[0.5, -1.0], [1.0, 2.0]])
        >>> proba.shape, np.allclose(proba.sum(axis=1), 1)
        ((2, 2), True)
        """
        if self.output not in _checks.CROSS_ENTROPY_OUTPUTS:
            raise ValueError(f"predict_proba needs a network with output='logistic' or "
                             f"output='softmax', whose outputs are probabilities; this one has "
                             f"output={self.output!r}")
        return self.forward(X)

    def score(self, X, y) -> float:
        """Compute E_in on (`X`, `y`): the same as `error`.

        Parameters
        ----------
        X : array_like or scipy.sparse matrix of shape (N, d(0))
            The inputs, one per row; a sparse one is computed sparse (CSR as it is,
            other formats converted once; never made dense).
        y : array_like of shape (N, d(L)) or (N,)
            The targets.

        Returns
        -------
        float
            The mean squared error (1/N) sum_n ||x(L)_n - y_n||^2 for a tanh or linear output,
            the mean cross-entropy for a logistic or softmax one, the mean Poisson deviance
            (halved) for a poisson one. Lower is better (unlike
            scikit-learn's score, which is higher-is-better).

        Examples
        --------
        >>> import numpy as np
        >>> import fastbp
        >>> X = np.array([[0.5, -1.0], [1.0, 2.0], [-0.5, 0.3], [2.0, 0.1]])
        >>> y = np.array([1.0, -1.0, 1.0, -1.0])
        >>> net = fastbp.Network([2, 3, 1], seed=0)
        >>> net.score(X, y) == net.error(X, y)
        True
        """
        return self.error(X, y)

    def classification_error(self, X, y) -> float:
        """Compute the fraction of misclassified samples.

        Parameters
        ----------
        X : array_like or scipy.sparse matrix of shape (N, d(0))
            The inputs, one per row; a sparse one is computed sparse (CSR as it is,
            other formats converted once; never made dense).
        y : array_like of shape (N, d(L)) or (N,)
            The class labels, coded as described in Notes.

        Returns
        -------
        float
            The fraction of the N samples misclassified, in [0, 1].

        Raises
        ------
        ValueError
            If a shape does not match the widths, a one-output tanh or linear network gets
            a label 0, or the network's output is "poisson" (not a classifier).

        Notes
        -----
        Output "tanh" or "linear", targets in {-1, +1}: with one output, the class is the sign;
        y must be -1 or +1 (any non-zero value counts by its sign) and an output of exactly 0
        counts as a mistake. With several outputs (one column per class, +1 on the true class),
        the class is the arg-max of the outputs and of the row of y.

        Output "softmax": the class is the arg-max of the outputs and of the row of y.

        Output "logistic", targets in {0, 1}: each unit predicts its label 1 when its
        probability is above 0.5 (a target counts as 1 above 0.5 too); a sample is misclassified
        unless every one of its labels is right (with one output unit: the usual two-class
        error).

        Examples
        --------
        >>> import numpy as np
        >>> import fastbp
        >>> X = np.array([[0.5, -1.0], [1.0, 2.0], [-0.5, 0.3], [2.0, 0.1]])
        >>> y = np.array([1.0, -1.0, 1.0, -1.0])
        >>> net = fastbp.Network([2, 3, 1], seed=0)
        >>> net.classification_error(X, y)
        0.5
        """
        if self.output == "poisson":
            raise ValueError("classification_error needs a classifier's output (tanh, linear, "
                             "logistic or softmax); this network's output is 'poisson', whose "
                             "outputs are counts or rates: use error() or score()")
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
        """Write the widths, output, activation, dtype and weights to a .npz file.

        Parameters
        ----------
        file : str, path-like or binary file object
            Where to write; `fastbp.load` reads it back bitwise.

        Raises
        ------
        ValueError
            If `weights` no longer match the network's widths and dtype.

        See Also
        --------
        load : Read the file back.

        Examples
        --------
        >>> import io
        >>> import fastbp
        >>> net = fastbp.Network([2, 3, 1], seed=0)
        >>> buffer = io.BytesIO()
        >>> net.save(buffer)
        >>> _ = buffer.seek(0)
        >>> fastbp.load(buffer)
        fastbp.network.Network([2, 3, 1], output='tanh', dtype='float64')
        """
        checked, widths, dtype = _checks.check_weights(self.weights)
        if widths != list(self.widths) or dtype != self.dtype:
            raise ValueError(f"net.weights are for widths {widths} and dtype {dtype}, but the "
                             f"network has widths {list(self.widths)} and dtype {self.dtype}")
        _io.write(file, self.widths, self.output, self.activation, self.dtype, checked)

    # --- exchange with other runtimes (fastbp.onnx, fastbp._exchange) ---------------------------

    def to_onnx(self, *, dtype=None, opset=None, input_name="X", output_name="output", file=None):
        """Convert the network to an ONNX model, as `fastbp.onnx.to_onnx` does.

        Parameters
        ----------
        dtype : {"float64", "float32"} or None, default=None
            The dtype of the model (None: the network's).
        opset : int or None, default=None
            The ONNX opset (None: 13); from 7 to the newest the installed onnx knows.
        input_name : str, default="X"
            The name of the graph's input, of shape (N, d(0)).
        output_name : str, default="output"
            The name of the graph's output, of shape (N, d(L)): x(L), as `forward` returns it.
        file : str, path-like or None, default=None
            Also write the model there.

        Returns
        -------
        onnx.ModelProto
            The checked model.

        Raises
        ------
        ImportError
            If onnx is not installed (pip install "fastbp[onnx]").
        ValueError
            If `dtype` is not valid or `opset` is too old or too new.

        See Also
        --------
        fastbp.onnx.to_onnx : The function, with the graph described.

        Examples
        --------
        >>> import fastbp
        >>> net = fastbp.Network([2, 3, 1], output="logistic", seed=0)
        >>> model = net.to_onnx()
        >>> [node.op_type for node in model.graph.node]
        ['Gemm', 'Tanh', 'Gemm', 'Sigmoid', 'Identity']
        """
        from .onnx import to_onnx
        return to_onnx(self, dtype=dtype, opset=opset, input_name=input_name,
                       output_name=output_name, file=file)

    def to_torch(self):
        """Convert the network to a PyTorch ``torch.nn.Sequential`` with the same outputs.

        Returns
        -------
        torch.nn.Sequential
            ``Linear`` modules (weights and biases from W(l), in the network's dtype), each
            followed by its unit: ``Tanh``, ``ReLU``, ``Sigmoid`` or ``Identity`` for the hidden
            activation; ``Tanh``, ``Sigmoid``, ``Softmax(dim=1)`` or nothing ("linear") for the
            output.

        Raises
        ------
        ImportError
            If PyTorch is not installed (pip install "fastbp[torch]").

        See Also
        --------
        from_torch : The reverse.

        Examples
        --------
        >>> import numpy as np
        >>> import torch
        >>> import fastbp
        >>> net = fastbp.Network([2, 3, 2], output="softmax", activation="relu", seed=0)
        >>> module = net.to_torch()
        >>> module
        Sequential(
          (0): Linear(in_features=2, out_features=3, bias=True)
          (1): ReLU()
          (2): Linear(in_features=3, out_features=2, bias=True)
          (3): Softmax(dim=1)
        )
        >>> X = np.array([[0.5, -1.0], [1.0, 2.0]])
        >>> bool(np.allclose(module(torch.from_numpy(X)).detach().numpy(), net.forward(X)))
        True
        """
        from ._exchange import to_torch
        return to_torch(self)

    @classmethod
    def from_torch(cls, module, dtype=None):
        """Make a network from a PyTorch stack of ``Linear`` and activation modules.

        Parameters
        ----------
        module : torch.nn.Sequential
            ``Linear`` modules (nested ``Sequential`` are read in order), each but the last
            followed by the same hidden activation (``Tanh``, ``ReLU``, ``Sigmoid``,
            ``Identity`` or none) and the last by the output's (``Tanh``, ``Sigmoid``,
            ``Softmax`` over dim 1, ``Identity`` or none: "linear"). A ``Linear`` without bias
            gets a zero bias row.
        dtype : {"float64", "float32"} or None, default=None
            The network's dtype (None: the parameters', which must then be float32 or float64).

        Returns
        -------
        Network
            The network, its weights W(l) = [bias; weight.T] of each ``Linear``.

        Raises
        ------
        ImportError
            If PyTorch is not installed (pip install "fastbp[torch]").
        TypeError
            If `module` is not a ``torch.nn.Sequential``.
        ValueError
            Naming the first module that cannot be mapped (another kind of module, an
            activation out of place, hidden activations that differ, widths that do not
            chain), or for parameters of another dtype without `dtype`.

        See Also
        --------
        to_torch : The reverse.

        Examples
        --------
        >>> import torch
        >>> import fastbp
        >>> module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(),
        ...                              torch.nn.Linear(8, 1), torch.nn.Sigmoid())
        >>> fastbp.Network.from_torch(module)
        fastbp.network.Network([4, 8, 1], output='logistic', dtype='float32')
        """
        from ._exchange import from_torch
        return from_torch(cls, module, dtype=dtype)


def load(file) -> Network:
    """Read a Network written by `Network.save`.

    Parameters
    ----------
    file : str, path-like or binary file object
        The .npz file (a path or a binary file object).

    Returns
    -------
    Network
        The network, its weights bitwise those saved.

    Raises
    ------
    ValueError
        For a file that is not such a model (not an .npz, missing or unexpected arrays, shapes
        that do not match the widths, non-finite weights, pickled objects, ...).
    FileNotFoundError
        For a missing file, as usual.

    See Also
    --------
    Network.save : Write a network.

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> import fastbp
    >>> net = fastbp.Network([2, 3, 1], output="linear", seed=0)
    >>> buffer = io.BytesIO()
    >>> net.save(buffer)
    >>> _ = buffer.seek(0)
    >>> copy = fastbp.load(buffer)
    >>> copy.output, all(np.array_equal(a, b) for a, b in zip(copy.weights, net.weights))
    ('linear', True)
    """
    widths, output, activation, dtype, weights = _io.read(file)
    return Network(widths, output=output, dtype=dtype, weights=weights, activation=activation)


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
