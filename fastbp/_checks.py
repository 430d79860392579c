"""Every argument check and conversion of fastbp, in one place.

The public functions call these once, before any kernel runs, and pass on only C-contiguous arrays
of the weights' dtype. Nothing below this module re-validates. No check writes into an array it is
given, so a call that raises leaves the caller's arrays as they were.
"""
from __future__ import annotations

import math
import numbers
import os
import warnings

import numpy as np

from . import _sparse

try:  # loops in C: np.isfinite(a).all() alone costs a microsecond per small array
    from ._core import first_nonfinite as _first_nonfinite
    from ._core import ready as _ready
except ImportError:  # the compiled module is not built: fastbp.reference still works
    def _first_nonfinite(a: np.ndarray) -> int:
        bad = np.flatnonzero(~np.isfinite(a))
        return int(bad[0]) if bad.size else -1

    def _ready(weights: object, X: object, y: object, max_width: int,
               x_threads: int = 1) -> list[int] | None:
        return None

# The order is the kernel's codes (Activation and Output in _core.pyx).
ACTIVATIONS = ("tanh", "relu", "logistic", "identity")
OUTPUTS = ("tanh", "linear", "logistic", "softmax", "poisson")
# Outputs whose error is a cross-entropy: their targets are probabilities.
CROSS_ENTROPY_OUTPUTS = ("logistic", "softmax")
# How far a softmax target row may sum from 1 (rounding of a distribution written in decimals).
SOFTMAX_ROW_TOL = 1e-6
REDUCTIONS = ("mean", "sum")
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_F32, _F64 = FLOAT_DTYPES
# Far more threads than any machine has cores is a typo or a unit mix-up, not a wish.
MAX_THREADS = 1024
# The kernels index one tile of a layer (d(l) units x up to 128 samples) with a C int: a wider
# layer would wrap. 2**24 units is far past any network fastbp is for (one tile of such a layer is
# gigabytes of scratch), so wider is refused up front rather than allocated or wrapped.
MAX_WIDTH = 2 ** 24


def _show(value) -> str:
    """A value for a message; NumPy scalars by value and type (their repr differs across NumPy)."""
    if isinstance(value, np.generic):
        return f"{value.item()!r} (numpy.{type(value).__name__})"
    return repr(value)


def _shape(a) -> str:
    return str(tuple(int(n) for n in a.shape))


def _as_numeric(value, name: str) -> np.ndarray:
    """View `value` as an ndarray of reals, refusing what has no meaning as numbers."""
    if type(value) is np.ndarray:
        a = value
    else:
        _refuse_sparse(value, name)
        if isinstance(value, np.ma.MaskedArray) and np.ma.getmaskarray(value).any():
            masked = int(np.ma.getmaskarray(value).sum())
            raise ValueError(f"{name} must hold no missing values, got a masked array with "
                             f"{masked} masked {'entry' if masked == 1 else 'entries'} (fastbp "
                             f"would read the values under the mask): fill them "
                             f"({name}.filled(...)) or drop their rows")
        try:
            a = np.asarray(value)
        except (ValueError, TypeError) as exc:  # ragged nested lists, odd objects
            raise TypeError(f"{name} must be an array of real numbers; numpy could not convert "
                            f"it ({exc})") from None
    kind = a.dtype.kind
    if kind == "b":
        raise TypeError(f"{name} must hold real numbers, got a boolean array (convert it to "
                        f"numbers first, e.g. {name}.astype(float))")
    if kind not in "iuf":
        why = ""
        if kind == "O":
            why = _why_object(value, a, name)
        elif kind in "US":
            why = (" (text: class labels? fastbp's functions and Network need numbers, e.g. one "
                   "column per class; fastbp.sklearn.MLPClassifier takes labels of any type)")
        raise TypeError(f"{name} must hold real numbers (integer or float), got dtype "
                        f"{a.dtype}{why}")
    return a


def _refuse_sparse(value, name: str) -> None:
    """A scipy.sparse matrix or array where only X may be sparse (weights, sample weights, one
    sample's x): NumPy would wrap it in a 0-D object array, and the message would blame its
    dtype. Recognised without importing SciPy (no SciPy loaded, no sparse input)."""
    if _sparse.is_sparse(value):
        raise TypeError(f"{name} must be a dense array, got a scipy.sparse {type(value).__name__} "
                        f"of shape {_shape(value)}: only X may be sparse; pass "
                        f"{name}.toarray()")


def _why_object(value, a: np.ndarray, name: str) -> str:
    """The end of the message for an object array: which columns of a DataFrame, or which entry,
    is not a real number."""
    columns = getattr(value, "columns", None)
    dtypes = getattr(value, "dtypes", None)
    if columns is not None and dtypes is not None:  # a pandas DataFrame, by its shape
        bad = [f"{c!r} ({t})" for c, t in zip(columns, dtypes)
               if not (isinstance(t, np.dtype) and t.kind in "iuf")]
        if bad:
            return (f": the DataFrame's column{'s' if len(bad) > 1 else ''} {', '.join(bad[:5])}"
                    f"{', ...' if len(bad) > 5 else ''} {'are' if len(bad) > 1 else 'is'} not "
                    f"numeric; convert or drop {'them' if len(bad) > 1 else 'it'} (nullable "
                    f"columns: fill the missing values, then .to_numpy(dtype=float))")
    for index, item in np.ndenumerate(a):
        if isinstance(item, (bool, np.bool_)) or not isinstance(item, numbers.Real):
            where = "[" + ", ".join(map(str, index)) + "]"
            return (f" ({name}{where} = {item!r}, of type {type(item).__name__}, is not a real "
                    f"number)")
    return (f" (Python numbers in an object array: convert it, "
            f"np.asarray({name}, dtype=float))")


def _check_finite(a: np.ndarray, name: str) -> None:
    """`a` is C-contiguous float32 or float64 (converted already): refuse NaN and infinity."""
    flat = _first_nonfinite(a)
    if flat >= 0:
        bad = np.unravel_index(flat, a.shape)
        where = "[" + ", ".join(str(int(i)) for i in bad) + "]"
        raise ValueError(f"{name} must be finite, but {name}{where} = {a[bad].item()!r}")


def check_dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dt}")
    return dt


def check_widths(widths) -> list[int]:
    """Layer widths d(0), ..., d(L): at least two, each a positive integer."""
    if isinstance(widths, (str, bytes)) or not hasattr(widths, "__len__"):
        raise TypeError(f"widths must be a sequence of layer widths [d(0), ..., d(L)], got "
                        f"{widths!r}")
    out = []
    for l, d in enumerate(widths):
        if np.ndim(d) > 0 and not isinstance(d, (str, bytes)):
            raise TypeError(f"widths[{l}] must be an integer, got an array of shape "
                            f"{_shape(np.asarray(d, dtype=object))}: widths are the layer sizes "
                            f"[d(0), ..., d(L)] (to start from weight arrays you have, pass "
                            f"them as weights=: Network(widths, weights=weights))")
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, numbers.Integral):
            raise TypeError(f"widths[{l}] must be an integer, got {d!r}")
        if d < 1:
            raise ValueError(f"widths[{l}] = d({l}) must be at least 1, got {d}")
        if d > MAX_WIDTH:  # type: ignore[operator]  # Integral > int works; typeshed's ABC omits it
            raise ValueError(f"widths[{l}] = d({l}) = {d} is more than {MAX_WIDTH}, the widest "
                             f"layer fastbp's kernels can index")
        out.append(int(d))
    if len(out) < 2:
        raise ValueError(f"widths needs at least two layers (inputs and outputs), got "
                         f"{list(widths)!r}")
    return out


# Other names for the units, suggested when one is given: {name: {given: fastbp's}}.
_UNIT_ALIASES = {
    "output": {"sigmoid": "logistic", "identity": "linear", "softmax_cross_entropy": "softmax"},
    "activation": {"sigmoid": "logistic", "linear": "identity", "none": "identity",
                   "ReLU": "relu", "Tanh": "tanh"},
}


def _one_of(value, name: str, valid: tuple) -> str:
    if not isinstance(value, str) or value not in valid:
        meant = _UNIT_ALIASES.get(name, {}).get(value) if isinstance(value, str) else None
        if isinstance(value, str) and meant is None and value.lower() in valid:
            meant = value.lower()
        raise ValueError(f"{name} must be one of {', '.join(map(repr, valid))}, got {_show(value)}"
                         + (f" (did you mean {meant!r}?)" if meant else ""))
    return value


def check_output(output) -> str:
    """The output unit and error measure: one of OUTPUTS."""
    return _one_of(output, "output", OUTPUTS)


def check_activation(activation) -> str:
    """The hidden units' activation: one of ACTIVATIONS."""
    return _one_of(activation, "activation", ACTIVATIONS)


def check_output_width(output: str, widths) -> None:
    """A softmax over one unit is the constant 1: refuse it (a logistic output is the one-unit
    two-class case)."""
    if output == "softmax" and widths[-1] < 2:
        raise ValueError(f"output='softmax' needs at least 2 output units, got d(L) = {widths[-1]} "
                         f"(for two classes with one output unit use output='logistic')")


def check_targets(y: np.ndarray, output: str, name: str = "y") -> None:
    """Cross-entropy targets are probabilities: in [0, 1], and each softmax row sums to 1 (within
    SOFTMAX_ROW_TOL); Poisson targets are counts or rates, >= 0. `y` is converted already (2-D,
    finite); nothing to check for squared error."""
    if output == "poisson":
        negative = y < 0
        if negative.any():
            bad = np.unravel_index(int(np.argmax(negative)), y.shape)
            where = "[" + ", ".join(str(int(i)) for i in bad) + "]"
            raise ValueError(f"{name} must be >= 0 for output='poisson' (counts or rates), but "
                             f"{name}{where} = {y[bad].item()!r}")
        return
    if output not in CROSS_ENTROPY_OUTPUTS:
        return
    outside = (y < 0) | (y > 1)
    if outside.any():
        bad = np.unravel_index(int(np.argmax(outside)), y.shape)
        where = "[" + ", ".join(str(int(i)) for i in bad) + "]"
        raise ValueError(f"{name} must hold probabilities in [0, 1] for output={output!r} "
                         f"(cross-entropy), but {name}{where} = {y[bad].item()!r}")
    if output == "softmax":
        sums = y.sum(axis=1, dtype=np.float64)
        off = np.abs(sums - 1) > SOFTMAX_ROW_TOL
        if off.any():
            n = int(np.argmax(off))
            raise ValueError(f"the rows of {name} must sum to 1 for output='softmax' (a one-hot "
                             f"row or a distribution, within {SOFTMAX_ROW_TOL:g}), but row {n} "
                             f"sums to {float(sums[n])!r}")


def check_sample_weight(sample_weight, n: int, dtype) -> np.ndarray | None:
    """`sample_weight`: None, or N finite non-negative weights, not all zero; returned
    C-contiguous in the weights' dtype (converted only when it is not already; the kernels only
    read it)."""
    if sample_weight is None:
        return None
    a = _as_numeric(sample_weight, "sample_weight")
    if a.ndim != 1 or a.shape[0] != n:
        raise ValueError(f"sample_weight must have shape ({n},), one weight per sample, got shape "
                         f"{_shape(a)}")
    converted = _contiguous(a, dtype)
    _converted_finite(a, converted, "sample_weight")
    negative = np.flatnonzero(converted < 0)
    if negative.size:
        i = int(negative[0])
        raise ValueError(f"sample_weight must be non-negative, but sample_weight[{i}] = "
                         f"{converted[i].item()!r}")
    if not converted.any():
        raise ValueError("sample_weight must not be all zero: the weighted mean of the errors "
                         "would be 0/0")
    return converted


def check_reduction(reduction) -> str:
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    return reduction


def is_network(value) -> bool:
    """A fastbp Network (or anything shaped like one: widths, weights, units and the last fit's
    history), recognised by its attributes: this module, below network.py, does not import it."""
    return all(hasattr(value, a) for a in ("widths", "weights", "output", "activation", "history"))


def check_weights(weights) -> tuple[list[np.ndarray], list[int], np.dtype]:
    """Return (C-contiguous weights, widths d(0..L), dtype).

    The dtype is the weights' own: float32 or float64 (integer weights become float64). Mixing
    float32 and float64 layers is refused rather than silently promoted.
    """
    if not isinstance(weights, (list, tuple)):
        hint = ""
        if is_network(weights):
            hint = (" (a Network holds its weights with its units: call its own method, e.g. "
                    "net.fit(X, y) or net.gradient(X, y), or pass net.weights with "
                    "output=net.output and activation=net.activation)")
        raise TypeError(f"weights must be a list of 2-D arrays W(1), ..., W(L), got "
                        f"{type(weights).__name__}{hint}")
    if len(weights) == 0:
        raise ValueError("weights must hold at least one layer, got an empty list")
    arrays = []
    for l, w in enumerate(weights):
        a = _as_numeric(w, f"weights[{l}]")
        if a.ndim != 2:
            raise ValueError(f"weights[{l}] must be 2-D with shape (d({l})+1, d({l + 1})), got "
                             f"shape {_shape(a)}")
        arrays.append(a)
    float_dtypes = {a.dtype for a in arrays if a.dtype.kind == "f"}
    native = {dt.newbyteorder("=") for dt in float_dtypes}
    unsupported = native - set(FLOAT_DTYPES)
    if unsupported:
        raise TypeError(f"weights must be float32 or float64, got {sorted(map(str, unsupported))}")
    if len(native) > 1:
        raise ValueError("weights mix float32 and float64 layers; convert them to one dtype")
    dtype = native.pop() if native else np.dtype(np.float64)

    widths = [arrays[0].shape[0] - 1]
    for l, a in enumerate(arrays):
        rows, cols = a.shape
        if l == 0 and rows < 2:
            raise ValueError(f"weights[0] has shape {_shape(a)} but needs at least 2 rows "
                             f"(the bias row and one per input, d(0) >= 1)")
        if cols < 1:
            raise ValueError(f"weights[{l}] has shape {_shape(a)}: layer {l + 1} needs at least "
                             f"one unit, d({l + 1}) >= 1")
        if l == 0 and rows - 1 > MAX_WIDTH:
            raise ValueError(f"weights[0] has {rows} rows: d(0) = {rows - 1} is more than "
                             f"{MAX_WIDTH}, the widest layer fastbp's kernels can index")
        if cols > MAX_WIDTH:
            raise ValueError(f"weights[{l}] has {cols} columns: d({l + 1}) = {cols} is more than "
                             f"{MAX_WIDTH}, the widest layer fastbp's kernels can index")
        if rows != widths[l] + 1:
            raise ValueError(f"weights[{l}] has shape {_shape(a)} but layer {l + 1} needs "
                             f"({widths[l] + 1}, {cols}) for d({l}) = {widths[l]}")
        widths.append(cols)
    out = []
    for l, a in enumerate(arrays):
        a = _contiguous(a, dtype)
        _check_finite(a, f"weights[{l}]")
        out.append(a)
    return out, widths, dtype


def _contiguous(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """`a` as a C-contiguous, aligned array of `dtype` (a copy only when needed)."""
    with np.errstate(over="ignore"):  # a value too large for float32: named by _converted_finite
        converted = np.ascontiguousarray(a, dtype=dtype)
    return converted if converted.flags.aligned else converted.copy()


def _converted_finite(original: np.ndarray, converted: np.ndarray, name: str) -> None:
    """Refuse NaN and infinity, and name a finite value that became infinite on conversion."""
    flat = _first_nonfinite(converted)
    if flat < 0:
        return
    bad = np.unravel_index(flat, converted.shape)
    where = "[" + ", ".join(str(int(i)) for i in bad) + "]"
    value = original.reshape(converted.shape)[bad] if original.size == converted.size else None
    if value is not None and np.isfinite(value):
        limit = np.finfo(converted.dtype).max
        raise ValueError(f"{name}{where} = {value.item()!r} does not fit in {converted.dtype} "
                         f"(the weights' dtype; largest {limit:.4g})")
    _check_finite(converted, name)


def check_batch(weights, X, y=None, x_threads=1):
    """(weights, widths, dtype, X, y) checked and converted, as check_weights, check_X and check_y
    do one after the other (y may be None). Arrays that are ready as they are (the common case of
    a training loop) are recognised in one pass in C, without conversion; X, the large one, is
    screened for NaN and infinity there on x_threads threads, or not at all with x_threads = 0
    (the caller has the kernel screen it: fastbp._api._run with screen=True). Arrays that need
    the full checks are screened there whatever x_threads says."""
    widths = _ready(weights, X, y, MAX_WIDTH, x_threads)
    if widths is not None:
        # a list of our own: the kernel reads the arrays with the GIL released, and another
        # thread replacing an entry of the caller's list must not free an array under it
        return list(weights), widths, X.dtype, X, y
    weights, widths, dtype = check_weights(weights)
    X = check_X(X, widths, dtype)
    if y is not None:
        y = check_y(y, widths, dtype, X.shape[0])
    return weights, widths, dtype, X, y


def check_X(X, widths, dtype, name: str = "X") -> np.ndarray | _sparse.SparseRows:
    """X as the kernels take it: a C-contiguous (N, d(0)) array of `dtype`, or for a
    scipy.sparse X its checked CSR arrays (fastbp._sparse.SparseRows)."""
    if _sparse.is_sparse(X):
        return _sparse.check_X(X, widths, dtype, name)
    a = _as_numeric(X, name)
    if a.ndim != 2 or a.shape[1] != widths[0]:
        hint = ""
        if a.ndim == 2 and a.shape[0] == widths[0]:
            hint = f" (one row per sample: is it transposed? {name}.T has shape (N, {widths[0]}))"
        elif a.ndim == 1 and widths[0] == 1:
            hint = f" (one feature per row: {name}.reshape(-1, 1))"
        elif a.ndim == 1 and a.shape[0] == widths[0]:
            hint = f" (one sample? {name}.reshape(1, -1))"
        raise ValueError(f"{name} must have shape (N, {widths[0]}) for d(0) = {widths[0]}, got "
                         f"shape {_shape(a)}{hint}")
    if a.shape[0] == 0:
        raise ValueError(f"{name} holds no samples (N = 0); need at least one")
    converted = _contiguous(a, dtype)
    _converted_finite(a, converted, name)
    return converted


def dense(X) -> np.ndarray:
    """A checked X (check_X) as a dense array: a sparse one written out (SparseRows.toarray)."""
    return X.toarray() if isinstance(X, _sparse.SparseRows) else X


def check_y(y, widths, dtype, n: int, name: str = "y", x_name: str = "X") -> np.ndarray:
    # a sparse y is made dense: N x d(L) targets are small beside X
    a = _as_numeric(_sparse.dense_y(y), name)
    dL = widths[-1]
    if a.ndim == 1 and dL == 1:
        a = a.reshape(-1, 1)
    if a.ndim != 2 or a.shape[1] != dL:
        alt = f" or ({n},)" if dL == 1 else ""
        hint = ""
        if a.ndim == 2 and a.shape == (dL, n):
            hint = f" (one row per sample: is it transposed? {name}.T has shape ({n}, {dL}))"
        elif a.ndim == 1 and a.shape[0] == n and a.dtype.kind in "iu":
            hint = (f" (class labels 0..{dL - 1}? give one column per class: "
                    f"np.eye({dL})[{name}] for 0/1 targets, 2 * np.eye({dL})[{name}] - 1 for "
                    f"-1/+1 targets)")
        raise ValueError(f"{name} must have shape ({n}, {dL}){alt} for d(L) = {dL}, got shape "
                         f"{_shape(np.asarray(y))}{hint}")
    if a.shape[0] != n:
        raise ValueError(f"{name} has {a.shape[0]} rows but {x_name} has {n} samples")
    converted = _contiguous(a, dtype)
    _converted_finite(a, converted, name)
    return converted


def check_sample(x, y, widths, dtype) -> tuple[np.ndarray, np.ndarray]:
    """One sample for `backprop`: x of shape (d(0),), y of shape (d(L),) (a scalar when
    d(L) = 1)."""
    if _sparse.is_sparse(x) and x.shape[0] == 1:
        x = x.toarray().reshape(-1)     # one sample: its dense row is d(0) numbers
    xa = _as_numeric(x, "x")
    if xa.shape != (widths[0],) and not (xa.ndim == 0 and widths[0] == 1):
        raise ValueError(f"x must have shape ({widths[0]},) for d(0) = {widths[0]}, got shape "
                         f"{_shape(xa)}")
    ya = _as_numeric(_sparse.dense_y(y), "y")
    if ya.shape != (widths[-1],) and not (ya.ndim == 0 and widths[-1] == 1):
        raise ValueError(f"y must have shape ({widths[-1]},) for d(L) = {widths[-1]}, got shape "
                         f"{_shape(ya)}")
    xa = np.ascontiguousarray(xa.reshape(1, widths[0]), dtype=dtype)
    ya = np.ascontiguousarray(ya.reshape(1, widths[-1]), dtype=dtype)
    _check_finite(xa, "x")
    _check_finite(ya, "y")
    return xa, ya


def check_out(out, weights) -> list[np.ndarray]:
    """`out=`: one writeable array per layer, of the weights' shapes and dtype."""
    if not isinstance(out, (list, tuple)):
        raise TypeError(f"out must be a list of arrays shaped like weights, got "
                        f"{type(out).__name__}")
    if len(out) != len(weights):
        raise ValueError(f"out must hold {len(weights)} arrays (one per layer), got {len(out)}")
    for l, (o, w) in enumerate(zip(out, weights)):
        if not isinstance(o, np.ndarray):
            raise TypeError(f"out[{l}] must be a numpy array, got {type(o).__name__}")
        if o.shape != w.shape:
            raise ValueError(f"out[{l}] must have shape {_shape(w)}, got {_shape(o)}")
        if o.dtype != w.dtype:
            raise TypeError(f"out[{l}] must have dtype {w.dtype} (the weights' dtype), got "
                            f"{o.dtype}")
        if not o.flags.writeable:
            raise ValueError(f"out[{l}] is read-only")
    check_disjoint(out, "out")
    return list(out)


def check_disjoint(arrays, name: str) -> None:
    """Arrays written in place must not overlap: one layer's update would change another."""
    for l in range(len(arrays)):
        for m in range(l):
            if np.shares_memory(arrays[l], arrays[m]):
                raise ValueError(f"{name}[{l}] and {name}[{m}] share memory")


def usable_cores() -> int:
    """Cores this process may run on (CPU affinity), as os.cpu_count() where affinity is unknown."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def check_num_threads(num_threads, available) -> int:
    """The thread count to use: None is every available thread, -k is available + 1 - k.

    `available` is that number, or a function giving it (asked only when it is needed: finding it
    costs a system call, and a positive count within bounds does not need it)."""
    if type(num_threads) is int and 0 < num_threads <= MAX_THREADS:
        return num_threads  # the common case, before the slower isinstance checks below
    if num_threads is None:
        return available() if callable(available) else available
    if isinstance(num_threads, (bool, np.bool_)) or not isinstance(num_threads, numbers.Integral):
        raise TypeError(f"num_threads must be an integer or None, got {_show(num_threads)}")
    n = int(num_threads)
    if n == 0:
        raise ValueError("num_threads must be a positive or negative integer or None, got 0")
    if 0 < n <= MAX_THREADS:
        return n
    if callable(available):
        available = available()
    if n < 0:
        n = max(1, available + 1 + n)
    if n > MAX_THREADS:
        warnings.warn(f"num_threads={n} is more than {MAX_THREADS}; using {available}, the number "
                      f"of usable cores", RuntimeWarning, stacklevel=3)
        n = available
    return n


# ---------------------------------------------------------------------------------------------
# Scalars and the trainable weights (the options of `fit`, `check_gradient`)

def check_real(value, name: str, low=None, high=None, low_open=False, high_open=False) -> float:
    """A finite real number within [low, high] (an open end with low_open / high_open)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (v > high or (high_open and v == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value!r}")
    return v


def check_integer(value, name: str, low: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be at least {low}, got {value!r}")
    return int(value)


def check_flag(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_seed(seed):
    """An int >= 0, a numpy Generator or None (what np.random.default_rng takes)."""
    if seed is None or isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be a non-negative integer, a numpy Generator or None, "
                        f"got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def check_trainable(weights) -> tuple[list[np.ndarray], list[int], np.dtype]:
    """weights as `fit` needs them: the checked arrays, widths and dtype. The caller's arrays must
    be writeable float ndarrays sharing no memory, since `fit` updates them in place."""
    checked, widths, dtype = check_weights(weights)
    for l, w in enumerate(weights):
        if not isinstance(w, np.ndarray) or w.dtype.kind != "f":
            got = type(w).__name__ if not isinstance(w, np.ndarray) else f"dtype {w.dtype}"
            raise TypeError(f"fit trains the weights in place, so weights[{l}] must be a numpy "
                            f"array of float32 or float64, got {got}")
        if not w.flags.writeable:
            raise ValueError(f"fit trains the weights in place, but weights[{l}] is read-only")
    check_disjoint(weights, "weights")
    return checked, widths, dtype


def import_optional(module: str, needed_by: str, extra: str):
    """`module`, imported; or an ImportError saying what needs it and which extra installs it."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{needed_by} needs {module.split('.')[0]}, an optional dependency that "
                          f"is not installed: pip install \"fastbp[{extra}]\" ({exc})") from None
