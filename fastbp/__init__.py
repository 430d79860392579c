"""fastbp: backpropagation for fully connected tanh networks, compiled and parallel.

    import fastbp
    weights = fastbp.init_weights([2, 10, 1], seed=0)
    E_in, grads = fastbp.gradient(weights, X, y)

`fastbp.reference` has the same functions in plain Python, one sample at a time.
"""
__version__ = "0.2.0"

import os as _os
import typing as _typing

# GNU OpenMP's idle threads spin for a long while (GOMP_SPINCOUNT, 300000 by default) before they
# sleep. Next to another pool of spinning threads (NumPy's OpenBLAS, another process) that made
# fastbp's threads and theirs fight for the cores, and a mixed NumPy + fastbp loop slower than
# the same loop on one thread. Spinning briefly costs fastbp alone nothing measurable, so unless the
# user chose a wait policy, fastbp's OpenMP runtime (loaded with fastbp._core, just below, and read
# only then) is told to spin 2000 times; the variable is removed again, so nothing else sees it.
_spin = "GOMP_SPINCOUNT" not in _os.environ and "OMP_WAIT_POLICY" not in _os.environ
if _spin:
    _os.environ["GOMP_SPINCOUNT"] = "2000"
try:
    from . import _core  # noqa: F401  (loads the OpenMP runtime)
except ImportError as _exc:
    _here = _os.path.dirname(_os.path.abspath(__file__))
    if _os.path.exists(_os.path.join(_os.path.dirname(_here), "setup.py")):  # a checkout
        raise ImportError(
            f"fastbp is being imported from its source folder {_here}, where its compiled module "
            f"is not built (Python looks in the current directory first). Build it there with "
            f"`pip install -e .`, or run from another directory to use an installed fastbp "
            f"({_exc})") from _exc
    raise
finally:
    if _spin:
        del _os.environ["GOMP_SPINCOUNT"]

from ._api import backprop, error, forward, gradient, show_config
from ._gradcheck import check_gradient
from ._sparse import sparse_crossover
from ._weights import init_weights
from .network import Network, load
from .training import History, fit, fit_many

if _typing.TYPE_CHECKING:
    from . import reference as reference  # re-exported, lazily: see __getattr__

# Submodules loaded on first use, as SciPy does (`import fastbp; fastbp.reference.gradient(...)`),
# so that `import fastbp` stays as light as it is.
_LAZY_SUBMODULES = ("reference",)


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBMODULES))


__all__ = ["__version__", "init_weights", "forward", "error", "gradient", "backprop", "Network",
           "show_config", "fit", "fit_many", "History", "check_gradient", "load",
           "sparse_crossover"]
