"""check_gradient: fastbp's gradient against central finite differences of the error."""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from . import _api, _checks
from ._objective import DataObjective


def check_gradient(weights: list[np.ndarray], X: ArrayLike, y: ArrayLike, output: str = "tanh",
                   eps: float = 1e-6, weight_decay: float = 0.0,
                   num_threads: int | None = None) -> float:
    """Worst relative error of the backpropagation gradient against finite differences.

    The gradient is the one `fit` follows: grad E_aug = `fastbp.gradient` + (2 lambda/N) w, computed
    in the weights' dtype (lambda = `weight_decay`, 0 by default: then E_aug = E_in). The finite
    differences are central, (E_aug(w + eps e_i) - E_aug(w - eps e_i)) / (2 eps) for every weight
    w_i (bias rows included), evaluated in float64 whatever the weights' dtype.

    Returns max_i |a_i - n_i| / max(|a_i|, |n_i|, floor) with a the analytic and n the numerical
    derivative, floor = 1e-6 * max(1, E_aug(w)): derivatives far below the error's scale are
    compared in absolute terms, since finite differences cannot resolve them. Expect about 1e-8 or
    less for float64 weights, about 1e-3 or less for float32; a wrong gradient gives about 1.
    Costs 2 error evaluations per weight: meant for small networks and data sets.
    """
    checked, widths, dtype = _checks.check_weights(weights)
    output = _checks.check_output(output)
    X = _checks.check_X(X, widths, dtype)
    y = _checks.check_y(y, widths, dtype, X.shape[0])
    eps = _checks.check_real(eps, "eps", low=0, low_open=True)
    weight_decay = _checks.check_real(weight_decay, "weight_decay", low=0)
    threads = _checks.check_num_threads(num_threads, _api.available_threads())

    obj = DataObjective(widths, dtype, X, y, output, threads, weight_decay)
    w = obj.flat(checked)
    g = np.empty_like(w)
    E_in, E_aug = obj.gradient(w, g)
    analytic = g.astype(np.float64)

    obj64 = DataObjective(widths, np.dtype(np.float64), X.astype(np.float64), y.astype(np.float64),
                       output, threads, weight_decay)
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
