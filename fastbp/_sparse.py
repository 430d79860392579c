"""Sparse inputs: scipy.sparse matrices and arrays as the kernels read them.

`check_X` turns a scipy.sparse X into `SparseRows`: its CSR arrays (CSR as it is; CSC, COO and
the other formats converted to CSR once), checked once, before any kernel runs, so that the
kernels can index them without a check of their own. The caller's matrix is never written to:
the values are converted to the weights' dtype into a new array when their dtype differs, and
the indices are used as they are (int32 or int64).

The kernels compute the first layer from each sample's nonzeros (fastbp/_sparse_inputs.pxi):
no dense copy of X is made. A matrix dense enough is faster through the dense kernels, a tile
of rows written out dense at a time; `sparse_crossover` is the density from which fastbp does
that (measured: bench/sparse.py, the user guide's "Sparse inputs").

SciPy is imported only when a sparse matrix is given: a program that never passes one never
loads it.
"""
from __future__ import annotations

import numbers
import sys

import numpy as np

# The kernels' InputLayout (fastbp/_core.pyx).
INPUT_CSR, INPUT_CSR_TILES = 1, 2

# The density (stored entries / (N d(0))) from which a CSR X runs through the dense kernels a
# tile at a time; below it the first layer is computed from the nonzeros. Measured (bench/
# sparse.py (d), AMD EPYC Zen 4, float64, N = 4000): the tiles' time equals the nonzeros' at
# 0.26, 0.25, 0.23 and 0.11 for [1000, 64], [1000, 256], [10000, 64] and [10000, 256] (x 10
# softmax outputs); below 0.1 the nonzeros win by 2x and more on every shape.
_crossover = {"density": 0.2}


def sparse_crossover(density=None) -> float:
    """Get, or set, the density from which sparse inputs run through the dense kernels.

    Parameters
    ----------
    density : float in [0, 1] or None, default=None
        The new crossover; None leaves it as it is. 0 sends every sparse matrix through the
        dense kernels (a tile of rows written out dense at a time), a value above 1 none.

    Returns
    -------
    float
        The crossover in force before the call.

    Notes
    -----
    Either way no dense copy of X is made and the results agree to rounding (1e-12 relative in
    float64); the crossover only chooses the faster path. See the user guide, "Sparse inputs",
    for the figures it was measured from.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse
    >>> import fastbp
    >>> X = scipy.sparse.random(100, 50, density=0.02, format="csr", random_state=0)
    >>> y = np.ones((100, 1))
    >>> weights = fastbp.init_weights([50, 4, 1], seed=0)
    >>> old = fastbp.sparse_crossover(0.0)       # every sparse X through the dense kernels
    >>> E_tiles, _ = fastbp.gradient(weights, X, y)
    >>> _ = fastbp.sparse_crossover(old)
    >>> E_nonzeros, _ = fastbp.gradient(weights, X, y)
    >>> bool(abs(E_tiles - E_nonzeros) <= 1e-12 * E_tiles)
    True
    """
    old = _crossover["density"]
    if density is not None:
        if isinstance(density, (bool, np.bool_)) or not isinstance(density, numbers.Real):
            raise TypeError(f"density must be a real number or None, got {density!r}")
        value = float(density)
        if not 0.0 <= value < float("inf"):         # (NaN too)
            raise ValueError(f"density must be finite and >= 0, got {density!r}")
        _crossover["density"] = value
    return old


class SparseRows:
    """A checked CSR matrix: what fastbp's kernels take for a sparse X.

    data (nnz,) in the weights' dtype, indices (nnz,) and indptr (N + 1,) both int32 or both
    int64, C-contiguous; every index in [0, d(0)), indptr non-decreasing from 0, the values
    finite. `input_layout` is the kernels' InputLayout for it."""

    __slots__ = ("data", "indices", "indptr", "shape", "input_layout")
    ndim = 2

    def __init__(self, data, indices, indptr, shape, input_layout):
        self.data, self.indices, self.indptr = data, indices, indptr
        self.shape = (int(shape[0]), int(shape[1]))
        self.input_layout = input_layout

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def nnz(self) -> int:
        return int(self.data.shape[0])

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return (f"SparseRows(shape={self.shape}, nnz={self.nnz}, dtype={self.dtype}, "
                f"input_layout={self.input_layout})")

    def take(self, rows) -> SparseRows:
        """The rows `rows` (integers, in that order; a new matrix, self unchanged)."""
        rows = np.asarray(rows, dtype=np.intp)
        starts, stops = self.indptr[rows], self.indptr[rows + 1]
        lengths = (stops - starts).astype(np.int64)
        indptr = np.zeros(rows.shape[0] + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        nnz = int(indptr[-1])
        index_dtype = np.int32 if nnz <= np.iinfo(np.int32).max else np.int64
        # the positions of the kept entries, row after row
        pos = np.repeat(starts.astype(np.int64) - indptr[:-1], lengths) + np.arange(nnz)
        return SparseRows(self.data[pos], self.indices[pos].astype(index_dtype),
                          indptr.astype(index_dtype), (rows.shape[0], self.shape[1]),
                          self.input_layout)

    def toarray(self) -> np.ndarray:
        """The dense (N, d(0)) matrix (duplicates added): for tests and single rows."""
        out = np.zeros(self.shape, dtype=self.dtype)
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        np.add.at(out, (rows, self.indices), self.data)
        return out


def is_sparse(value) -> bool:
    """A scipy.sparse matrix or array (recognised without importing SciPy: no SciPy loaded, no
    sparse input)."""
    if isinstance(value, SparseRows):
        return True
    sparse = sys.modules.get("scipy.sparse")
    return sparse is not None and sparse.issparse(value)


def _shape(value) -> str:
    return str(tuple(int(n) for n in value.shape))


def check_X(X, widths, dtype, name: str = "X") -> SparseRows:
    """A scipy.sparse X (or SparseRows, returned as it is) as SparseRows of `dtype`, every
    argument checked: its shape against d(0), its values real and finite, its structure
    (indices in range, indptr non-decreasing) sound."""
    if isinstance(X, SparseRows):
        return X
    d0 = widths[0]
    if len(X.shape) != 2 or X.shape[1] != d0:
        hint = ""
        if len(X.shape) == 2 and X.shape[0] == d0:
            hint = f" (one row per sample: is it transposed? {name}.T has shape (N, {d0}))"
        raise ValueError(f"{name} must have shape (N, {d0}) for d(0) = {d0}, got a scipy.sparse "
                         f"{type(X).__name__} of shape {_shape(X)}{hint}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} holds no samples (N = 0); need at least one")
    kind = X.dtype.kind
    if kind == "b":
        raise TypeError(f"{name} must hold real numbers, got a boolean sparse matrix (convert it "
                        f"to numbers first, e.g. {name}.astype(float))")
    if kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers (integer or float), got a scipy.sparse "
                        f"{type(X).__name__} of dtype {X.dtype}")
    if X.format != "csr":
        X = X.tocsr()       # a new matrix: the caller's is not touched
    indptr, indices = np.asarray(X.indptr), np.asarray(X.indices)
    N = X.shape[0]
    if indptr.ndim != 1 or indptr.shape[0] != N + 1:
        raise ValueError(f"{name} is not a valid CSR matrix: its indptr has shape "
                         f"{_shape(indptr)}, expected ({N + 1},)")
    if indptr.dtype.kind not in "iu" or indices.dtype.kind not in "iu":
        raise TypeError(f"{name}'s indices and indptr must be integers, got {indices.dtype} and "
                        f"{indptr.dtype}")
    nnz = int(indptr[-1])
    if int(indptr[0]) != 0 or nnz > indices.shape[0] or nnz > np.asarray(X.data).shape[0]:
        raise ValueError(f"{name} is not a valid CSR matrix: indptr runs from {int(indptr[0])} to "
                         f"{nnz} over {indices.shape[0]} stored entries")
    if N > 1 and np.any(indptr[1:] < indptr[:-1]):
        row = int(np.flatnonzero(indptr[1:] < indptr[:-1])[0])
        raise ValueError(f"{name} is not a valid CSR matrix: indptr decreases after row {row}")
    indices = indices[:nnz]
    if nnz:
        low, high = int(indices.min()), int(indices.max())
        if low < 0 or high >= d0:
            bad = low if low < 0 else high
            raise ValueError(f"{name} is not a valid CSR matrix: a column index is {bad}, "
                             f"outside 0..{d0 - 1}")
    # one index type for both arrays, int32 or int64 (the kernel reads either)
    itype = np.int32 if (indices.dtype == np.int32 and indptr.dtype == np.int32) else np.int64
    indices = np.ascontiguousarray(indices, dtype=itype)
    indptr = np.ascontiguousarray(indptr, dtype=itype)
    values = np.asarray(X.data)[:nnz]
    with np.errstate(over="ignore"):
        data = np.ascontiguousarray(values, dtype=dtype)
    if not data.flags.aligned:
        data = data.copy()
    finite = np.isfinite(data)
    if not finite.all():
        p = int(np.flatnonzero(~finite)[0])
        row = int(np.searchsorted(indptr, p, side="right")) - 1
        where = f"[{row}, {int(indices[p])}]"
        value = values[p]
        if np.isfinite(value):
            raise ValueError(f"{name}{where} = {value.item()!r} does not fit in {data.dtype} (the "
                             f"weights' dtype; largest {np.finfo(data.dtype).max:.4g})")
        raise ValueError(f"{name} must be finite, but {name}{where} = {value.item()!r} (a stored "
                         f"value of the sparse matrix)")
    if not getattr(X, "has_canonical_format", True):
        _check_duplicate_sums(X, data.dtype, name)
    density = nnz / (N * d0)
    layout = INPUT_CSR_TILES if density >= _crossover["density"] else INPUT_CSR
    return SparseRows(data, indices, indptr, X.shape, layout)


def _check_duplicate_sums(X, dtype, name):
    """Duplicate entries add (scipy's meaning): refuse a sum that does not fit in `dtype`, as a
    dense X's value would be. Only a matrix scipy does not know to be canonical pays for this (a
    summed copy of its nonzeros, never of the matrix dense)."""
    summed = X.copy()
    summed.sum_duplicates()
    with np.errstate(over="ignore"):
        values = np.asarray(summed.data, dtype=dtype)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        p = int(bad[0])
        row = int(np.searchsorted(summed.indptr, p, side="right")) - 1
        value = summed.data[p]
        raise ValueError(f"{name}[{row}, {int(summed.indices[p])}] = {value.item()!r} (the sum of "
                         f"its duplicate entries) does not fit in {np.dtype(dtype)} (the weights' "
                         f"dtype; largest {np.finfo(dtype).max:.4g})")


def dense_y(y):
    """A sparse y (targets, N x d(L): small beside X) as a dense array; anything else as it is."""
    if is_sparse(y) and not isinstance(y, SparseRows):
        return y.toarray()
    return y
