"""fastbp: backpropagation for fully connected tanh networks, compiled and parallel.

    import fastbp
    weights = fastbp.init_weights([2, 10, 1], seed=0)
    E_in, grads = fastbp.gradient(weights, X, y)

`fastbp.reference` has the same functions in plain Python, one sample at a time.
"""
__version__ = "0.1.0"

from ._api import backprop, error, forward, gradient, show_config
from ._weights import init_weights
from .network import Network
from .training import History, fit
from ._gradcheck import check_gradient
from ._io import load

__all__ = ["__version__", "init_weights", "forward", "error", "gradient", "backprop", "Network",
           "show_config", "fit", "History", "check_gradient", "load"]
