"""check_gradient: fastbp's gradient against central finite differences of the error."""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from . import _api, _checks
from ._objective import DataObjective


def check_gradient(weights: list[np.ndarray], X: ArrayLike, y: ArrayLike, output: str = "tanh",
                   eps: float = 1e-6, weight_decay: float = 0.0,
                   num_threads: int | None = None, activation: str = "tanh",
                   sample_weight: ArrayLike | None = None) -> float:
    """Compare the backpropagation gradient with central finite differences of the error.

    Parameters
    ----------
    weights : list of ndarray
        W(1), ..., W(L), W(l) of shape (d(l-1)+1, d(l)), row 0 the bias; float32 or float64.
    X : array_like or scipy.sparse matrix of shape (N, d(0))
        The inputs, one per row; a sparse one is computed sparse (CSR as it is,
        other formats converted once; never made dense).
    y : array_like of shape (N, d(L)) or (N,)
        The targets.
    output : {"tanh", "linear", "logistic", "softmax"}, default="tanh"
        The output activation theta_L and its error measure, as for `fastbp.error`.
    eps : float, default=1e-6
        The step of the finite differences, > 0.
    weight_decay : float, default=0.0
        The weight decay lambda >= 0 of E_aug (0: E_aug = E_in).
    num_threads : int or None, default=None
        Threads of the kernel, as for `fastbp.gradient`.
    activation : {"tanh", "relu", "logistic", "identity"}, default="tanh"
        The activation theta of every hidden layer.
    sample_weight : array_like of shape (N,) or None, default=None
        Weights w_n >= 0 of the samples; E_in is then the weighted mean
        sum_n w_n e_n / sum_n w_n.

    Returns
    -------
    float
        The worst relative error ``max_i |a_i - n_i| / max(|a_i|, |n_i|, floor)`` of the analytic
        derivatives a against the numerical ones n. Expect about 1e-8 or less for float64
        weights, about 1e-3 or less for float32; a wrong gradient gives about 1.

    Raises
    ------
    ValueError
        If a shape does not match the weights' widths, an array holds NaN or infinity, or an
        option is out of range (e.g. ``eps <= 0``).
    TypeError
        If an argument is of the wrong type.

    See Also
    --------
    gradient : The gradient checked here.
    fit : Training, which follows this gradient.

    Notes
    -----
    The gradient is the one `fit` follows: grad E_aug = `fastbp.gradient` + (2 lambda/N) w,
    computed in the weights' dtype (lambda = `weight_decay`; N the number of samples). The finite
    differences are central, (E_aug(w + eps e_i) - E_aug(w - eps e_i)) / (2 eps) for every weight
    w_i (bias rows included), evaluated in float64 whatever the weights' dtype.

    floor = 1e-6 * max(1, E_aug(w)): derivatives far below the error's scale are compared in
    absolute terms, since finite differences cannot resolve them.

    It costs 2 error evaluations per weight: it is meant for small networks and data sets. (A
    ReLU unit whose s is within eps of 0 for some sample has a kink there: the difference
    quotient straddles it and disagrees, rightly.)

    Examples
    --------
    >>> import numpy as np
    >>> import fastbp
    >>> weights = fastbp.init_weights([2, 3, 1], seed=0)
    >>> X = np.array([[0.5, -1.0], [1.0, 2.0], [-0.5, 0.3]])
    >>> y = np.array([1.0, -1.0, 1.0])
    >>> fastbp.check_gradient(weights, X, y) < 1e-6
    True
    """
    checked, widths, dtype = _checks.check_weights(weights)
    output = _checks.check_output(output)
    activation = _checks.check_activation(activation)
    _checks.check_output_width(output, widths)
    Xc = _checks.check_X(X, widths, dtype)
    y = _checks.check_y(y, widths, dtype, Xc.shape[0])
    _checks.check_targets(y, output)
    sample_weight = _checks.check_sample_weight(sample_weight, Xc.shape[0], dtype)
    eps = _checks.check_real(eps, "eps", low=0, low_open=True)
    weight_decay = _checks.check_real(weight_decay, "weight_decay", low=0)
    threads = _checks.check_num_threads(num_threads, _api.available_threads())

    obj = DataObjective(widths, dtype, Xc, y, output, threads, weight_decay, activation=activation,
                        sample_weight=sample_weight)
    w = obj.flat(checked)
    g = np.empty_like(w)
    E_in, E_aug = obj.gradient(w, g)
    analytic = g.astype(np.float64)

    X64 = _checks.check_X(X, widths, np.dtype(np.float64))
    obj64 = DataObjective(widths, np.dtype(np.float64), X64, y.astype(np.float64),
                          output, threads, weight_decay, activation=activation,
                          sample_weight=None if sample_weight is None
                          else sample_weight.astype(np.float64))
    w64 = w.astype(np.float64)
    views = obj64.views(w64)
    numeric = np.empty_like(w64)
    for i in range(w64.size):
        wi = w64[i]
        w64[i] = wi + eps
        up = obj64.error(w64, views)[1]
        w64[i] = wi - eps
        down = obj64.error(w64, views)[1]
        w64[i] = wi
        numeric[i] = (up - down) / (2 * eps)
    floor = 1e-6 * max(1.0, abs(E_aug))
    scale = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), floor)
    return float(np.max(np.abs(analytic - numeric) / scale))
