"""Sparse X (scipy.sparse matrices and arrays) against the same X dense.

fastbp runs a sparse X one of two ways (fastbp._sparse.sparse_crossover): below the crossover
density the first layer is computed from each sample's nonzeros (INPUT_CSR), at or above it each
tile's rows are written out dense and the dense kernels run (INPUT_CSR_TILES). The comparisons run
both (the crossover set to 0.0 and to 2.0, the layout checked): the tiles path must be bitwise the
dense path (the same arithmetic on the same numbers), the nonzeros path the dense one to 1e-12
relative in float64 and 1e-5 in float32, norm-wise per array (max |difference| over max |dense|).
In the random cases E_in and the gradient are allowed that times the problem's condition
(`condition`: a saturated unit or outputs on their targets turn the last-bit differences of s(1)
into larger ones of the gradient, in any implementation); the forward pass never is.

Covered: random shapes and densities (hypothesis: no hidden layer, one-unit layers, deep nets,
densities from an all-zero matrix to 0.5, empty rows, sample weights), every input format and
value dtype, int64, narrow and unsorted indices, duplicate entries (they add), odd array layouts,
every activation x output, 1/2/3 threads bitwise, every kernel set this CPU runs (a subprocess
each, under FASTBP_SIMD), fit with every method, fit_many, Network, validation data,
backprop on one sparse row, check_gradient, the bad inputs (each named, the caller's matrix and
weights untouched) and the memory a gradient on a wide CSR matrix takes. The scikit-learn
estimators' sparse input is left to their own tests.
"""
import contextlib
import os
import subprocess
import sys
import tracemalloc
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

import fastbp
from _helpers import bitwise_equal, kernel_set_env, make_problem, rel_err, targets_for
from fastbp import _api, _checks, _core, _sparse

sp = pytest.importorskip("scipy.sparse")

HERE = os.path.dirname(os.path.abspath(__file__))
TOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}
SETTINGS = dict(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PATHS = ["tiles", "nonzeros"]
# (the crossover that sends every sparse matrix down the path, the layout it must give)
CROSSOVER = {"tiles": (0.0, _sparse.INPUT_CSR_TILES), "nonzeros": (2.0, _sparse.INPUT_CSR)}
PAIRS = [(a, o) for a in _checks.ACTIVATIONS for o in _checks.OUTPUTS]


# ------------------------------------------------------------------------------------------------
# Helpers

@contextlib.contextmanager
def path(name):
    """Run the block with every sparse matrix sent down `name` ("tiles" or "nonzeros"), the
    crossover restored after."""
    density, _ = CROSSOVER[name]
    old = _sparse.sparse_crossover(density)
    try:
        yield
    finally:
        _sparse.sparse_crossover(old)


def assert_layout(Xs, widths, dtype, name):
    """Xs, checked as the public functions check it, goes down path `name`."""
    assert _sparse.check_X(Xs, widths, np.dtype(dtype)).input_layout == CROSSOVER[name][1]


def problem(widths, n, density, dtype="float64", seed=0, activation="tanh", output="tanh",
            empty_rows=0.0):
    """(weights, X dense, X as a CSR matrix, y): X with about `density` of its entries nonzero
    (standard normal values), a fraction `empty_rows` of its rows empty; the weights scaled as
    tests/test_activations.py scales them per output."""
    rng = np.random.default_rng(seed)
    weights, _, _ = make_problem(widths, 1, dtype="float64", seed=seed)
    if output in ("logistic", "softmax"):
        weights = [w / 1.5 for w in weights]
    elif output == "poisson":
        weights = [w / 2 for w in weights]
    mask = rng.random((n, widths[0])) < density
    mask[rng.random(n) < empty_rows] = False
    Xd = np.where(mask, rng.standard_normal((n, widths[0])), 0.0).astype(dtype)
    y = targets_for(output, n, widths[-1], rng, dtype)
    return [w.astype(dtype) for w in weights], Xd, sp.csr_matrix(Xd), y


def sample_weights(n, rng, dtype="float64"):
    w = rng.uniform(0, 3, n)
    w[rng.uniform(size=n) < 0.2] = 0
    w[0] = 1.5  # never all zero
    return w.astype(dtype)


def results(weights, X, y, sample_weight=None, num_threads=None, **kw):
    """E_in and gradient, error, forward: a list of arrays."""
    E, g = fastbp.gradient(weights, X, y, sample_weight=sample_weight, num_threads=num_threads,
                           **kw)
    e = fastbp.error(weights, X, y, sample_weight=sample_weight, num_threads=num_threads, **kw)
    out = fastbp.forward(weights, X, num_threads=num_threads, **kw)
    return [np.array(E), *g, np.array(e), out]


def assert_close(got, want, dtype, kappa=1.0):
    """Each array of `got` equals its one of `want` to TOL[dtype] times kappa, norm-wise (an
    all-zero one: absolutely)."""
    tol = TOL[np.dtype(dtype)] * kappa
    for i, (a, b) in enumerate(zip(got, want)):
        assert a.dtype == b.dtype and a.shape == b.shape, i
        err = rel_err(a, b) if np.any(b) else float(np.abs(a).max(initial=0))
        assert err <= tol, (i, err, tol)


def condition(weights, X, y, activation="tanh", output="tanh"):
    """How much a last-bit change of s(l) can move the gradient, relative to it (float64, from
    the dense forward pass): 1 / (1 - x^2) at a tanh unit and 1 / (1 - x) at a logistic one
    (the derivative computed from x cancels near saturation), max |x| / max |x - y| at the
    output (the error x - y cancels where the outputs meet their targets), infinite at a ReLU
    unit within rounding of its kink (its derivative jumps there)."""
    x = np.asarray(X, dtype=np.float64)
    kappa = 1.0
    tiny = np.finfo(np.float64).tiny
    for l, w in enumerate(weights):
        w = w.astype(np.float64)
        s = x @ w[1:] + w[0]
        scale = np.abs(x) @ np.abs(w[1:]) + np.abs(w[0])
        theta = activation if l < len(weights) - 1 else output
        if theta == "tanh":
            x = np.tanh(s)
            kappa = max(kappa, float(np.max(1 / np.maximum(1 - x * x, tiny))))
        elif theta == "logistic":
            x = 0.5 * (1 + np.tanh(s / 2))
            kappa = max(kappa, float(np.max(1 / np.maximum(1 - x, tiny))))
        elif theta == "relu":
            if np.any(np.abs(s) <= 1e-6 * scale):
                return np.inf
            x = np.maximum(s, 0)
        elif theta == "softmax":
            e = np.exp(s - s.max(axis=1, keepdims=True))
            x = e / e.sum(axis=1, keepdims=True)
        elif theta == "poisson":
            x = np.exp(s)
        else:
            x = s
    # (norm-wise, as the results are compared: the largest |x - y| against the largest |x|)
    d = np.abs(x - np.asarray(y, dtype=np.float64).reshape(x.shape))
    return max(kappa, float(np.max(np.abs(x)) / max(float(np.max(d)), tiny)))


def assert_sparse_equals_dense(weights, Xd, Xs, y, dtype, sample_weight=None, kappa=1.0, **kw):
    """Both paths against the dense X: the tiles bitwise, the nonzeros to TOL (E_in, the
    gradient and the error: TOL times `kappa`, the problem's condition; see `condition`)."""
    widths = [weights[0].shape[0] - 1] + [w.shape[1] for w in weights]
    want = results(weights, Xd, y, sample_weight, **kw)
    for name in PATHS:
        with path(name):
            assert_layout(Xs, widths, dtype, name)
            got = results(weights, Xs, y, sample_weight, **kw)
        if name == "tiles":
            assert bitwise_equal(got, want)
        else:
            assert_close(got[:-1], want[:-1], dtype, kappa)
            assert_close(got[-1:], want[-1:], dtype)


def snapshot(M):
    """What a scipy.sparse matrix holds, for `assert_untouched`: its type, shape and dtype, its
    arrays (the objects and copies of their values)."""
    fmt = M.format
    if fmt in ("csr", "csc", "bsr"):
        names = ["data", "indices", "indptr"]
    elif fmt == "coo":
        names = ["data", "row", "col"]
    elif fmt == "dia":
        names = ["data", "offsets"]
    else:
        names = []
    arrays = {n: (getattr(M, n), getattr(M, n).copy()) for n in names}
    if fmt == "lil":
        content = ([list(r) for r in M.rows], [list(d) for d in M.data])
    elif fmt == "dok":
        content = dict(M.items())
    else:
        content = None
    return type(M), M.shape, M.dtype, arrays, content


def assert_untouched(M, before):
    kind, shape, dtype, arrays, content = before
    assert type(M) is kind and M.shape == shape and M.dtype == dtype
    for n, (obj, copy) in arrays.items():
        now = getattr(M, n)
        assert now is obj, f"{n} was replaced"
        assert now.dtype == copy.dtype and np.array_equal(now, copy, equal_nan=True), n
    if M.format == "lil":
        assert ([list(r) for r in M.rows], [list(d) for d in M.data]) == content
    elif M.format == "dok":
        assert dict(M.items()) == content


# ------------------------------------------------------------------------------------------------
# Sparse equals dense: random shapes, densities, dtypes, activations and outputs

@st.composite
def cases(draw):
    d0 = draw(st.one_of(st.sampled_from([1, 3, 17, 40]), st.integers(1, 40)))
    hidden = draw(st.lists(st.integers(1, 9), min_size=0, max_size=5))
    output = draw(st.sampled_from(_checks.OUTPUTS))
    dL = draw(st.integers(2 if output == "softmax" else 1, 4))
    density = draw(st.sampled_from([0.0, 0.005, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5]))
    n = draw(st.one_of(st.sampled_from([1, 7, 64, 65, 129, 300]), st.integers(1, 300)))
    return dict(widths=[d0, *hidden, dL], n=n, density=density,
                dtype=draw(st.sampled_from(["float64", "float32"])),
                seed=draw(st.integers(0, 2 ** 16)),
                activation=draw(st.sampled_from(_checks.ACTIVATIONS)), output=output,
                empty_rows=draw(st.sampled_from([0.0, 0.3])),
                weighted=draw(st.booleans()))


def _case(widths, n, density, dtype="float64", seed=0, activation="tanh", output="tanh",
          empty_rows=0.0, weighted=False):
    return dict(widths=widths, n=n, density=density, dtype=dtype, seed=seed,
                activation=activation, output=output, empty_rows=empty_rows, weighted=weighted)


@settings(**SETTINGS)
@given(case=cases())
@example(case=_case([5, 2], 40, 0.2))                             # no hidden layer
@example(case=_case([1, 1, 1], 30, 0.5, "float32"))              # one-unit layers
@example(case=_case([6, 4, 4, 4, 4, 4, 4, 2], 150, 0.1))        # deep, more than a tile
@example(case=_case([7, 5, 3], 200, 0.0, output="softmax"))      # no nonzero at all
@example(case=_case([30, 8, 2], 257, 0.05, "float32", empty_rows=0.5, weighted=True))
def test_sparse_equals_dense(case):
    weighted = case.pop("weighted")
    weights, Xd, Xs, y = problem(**case)
    sw = sample_weights(Xd.shape[0], np.random.default_rng(1), case["dtype"]) if weighted \
        else None
    if case["density"] == 0.0:
        assert Xs.nnz == 0
    kw = dict(activation=case["activation"], output=case["output"])
    # a saturated unit or an output on its target: the nonzeros path's gradient is compared to
    # the dense one's to TOL times the condition; too ill-conditioned (a ReLU at its kink), its
    # E_in, gradient and error are not compared (the forward pass and the tiles path still are)
    kappa = condition(weights, Xd, y, **kw)
    event(f"condition {'<= 10' if kappa <= 10 else '<= 1e4' if kappa <= 1e4 else '> 1e4'}")
    event(f"density {'0' if Xs.nnz == 0 else '<= 0.05' if case['density'] <= 0.05 else '> 0.05'}")
    assert_sparse_equals_dense(weights, Xd, Xs, y, case["dtype"], sample_weight=sw,
                               kappa=kappa if kappa <= 1e4 else np.inf, **kw)


@pytest.mark.parametrize("activation, output", PAIRS, ids=[f"{a}-{o}" for a, o in PAIRS])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_every_activation_and_output(activation, output, dtype):
    weights, Xd, Xs, y = problem([12, 7, 5, 3], 150, 0.15, dtype, seed=3, activation=activation,
                                 output=output, empty_rows=0.2)
    kw = dict(activation=activation, output=output)
    assert_sparse_equals_dense(weights, Xd, Xs, y, dtype, **kw)
    sw = sample_weights(150, np.random.default_rng(4), dtype)
    assert_sparse_equals_dense(weights, Xd, Xs, y, dtype, sample_weight=sw, **kw)
    # "sum" reduction, and a gradient added into out
    for name in PATHS:
        with path(name):
            E, g = fastbp.gradient(weights, Xs, y, reduction="sum", sample_weight=sw, **kw)
            out = [np.ones_like(w) for w in weights]
            fastbp.gradient(weights, Xs, y, out=out, accumulate=True, **kw)
        E0, g0 = fastbp.gradient(weights, Xd, y, reduction="sum", sample_weight=sw, **kw)
        out0 = [np.ones_like(w) for w in weights]
        fastbp.gradient(weights, Xd, y, out=out0, accumulate=True, **kw)
        got, want = [np.array(E), *g, *out], [np.array(E0), *g0, *out0]
        if name == "tiles":
            assert bitwise_equal(got, want)
        else:
            assert_close(got, want, dtype)


# ------------------------------------------------------------------------------------------------
# Every input format; the index types, unsorted indices, duplicates

FORMATS = ["csr_matrix", "csc_matrix", "coo_matrix", "lil_matrix", "dok_matrix", "bsr_matrix",
           "dia_matrix", "csr_array", "coo_array", "csc_array"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_every_format(fmt, dtype):
    weights, Xd, Xcsr, y = problem([9, 6, 2], 140, 0.2, dtype, seed=5, empty_rows=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sp.SparseEfficiencyWarning)   # DIA: many diagonals
        Xs = getattr(sp, fmt)(Xd)
    before = snapshot(Xs)
    assert_sparse_equals_dense(weights, Xd, Xs, y, dtype)
    assert_untouched(Xs, before)


@pytest.mark.parametrize("values", ["int64", "int8", "uint16", "float32", "longdouble", ">f8"])
def test_value_dtypes_are_converted(values):
    """Integer, float32, long double and big-endian values: converted to the weights' dtype as
    a dense X is."""
    weights, Xd, _, y = problem([8, 5, 2], 60, 0.3, seed=6)
    Xv = np.round(Xd * 3).astype(values)
    Xs = sp.csr_matrix(Xv.astype(Xv.dtype.newbyteorder("=")))
    Xs.data = Xs.data.astype(values)    # (scipy's constructor refuses big-endian values)
    before = snapshot(Xs)
    assert_sparse_equals_dense(weights, Xv.astype(np.float64), Xs, y, "float64")
    w32 = [w.astype(np.float32) for w in weights]
    assert_sparse_equals_dense(w32, Xv.astype(np.float32), Xs, y.astype(np.float32), "float32")
    assert_untouched(Xs, before)


def test_float64_values_into_float32_weights():
    """A float64 sparse X with float32 weights: its values rounded to float32 as a dense X's."""
    weights, Xd, Xs, y = problem([8, 5, 2], 60, 0.3, seed=6)
    w32 = [w.astype(np.float32) for w in weights]
    before = snapshot(Xs)
    assert_sparse_equals_dense(w32, Xd, Xs, y.astype(np.float32), "float32")
    assert_untouched(Xs, before)


def test_int64_indices():
    weights, Xd, Xs, y = problem([10, 4, 2], 90, 0.2, seed=7)
    X64 = Xs.copy()
    # (scipy's constructor would take int64 arrays down to int32: set after it)
    X64.indices, X64.indptr = Xs.indices.astype(np.int64), Xs.indptr.astype(np.int64)
    assert X64.indices.dtype == np.int64 and X64.indptr.dtype == np.int64
    before = snapshot(X64)
    assert_sparse_equals_dense(weights, Xd, X64, y, "float64")
    assert_untouched(X64, before)
    # mixed: int32 indices, int64 indptr (both read as int64)
    mixed = sp.csr_matrix(Xd)
    mixed.indptr = mixed.indptr.astype(np.int64)
    assert_sparse_equals_dense(weights, Xd, mixed, y, "float64")


def _strided(a):
    big = np.zeros(2 * a.shape[0], dtype=a.dtype)
    big[::2] = a
    return big[::2]


def _unaligned(a):
    buf = bytearray(a.nbytes + 1)
    b = np.frombuffer(buf, dtype=a.dtype, offset=1, count=a.shape[0])
    b[...] = a
    return b


def _readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("kind", ["int16", "uint32", "strided", "unaligned", "readonly"])
def test_odd_arrays(kind):
    """The CSR arrays as a caller may have set them: narrow or unsigned indices, strided views,
    unaligned values, read-only arrays. Taken, the results the dense matrix's."""
    weights, Xd, Xs, y = problem([10, 5, 2], 80, 0.2, seed=24)
    M = Xs.copy()
    if kind in ("int16", "uint32"):
        M.indices = M.indices.astype(kind)
        M.indptr = M.indptr.astype(kind)
    elif kind == "strided":
        M.data, M.indices, M.indptr = _strided(M.data), _strided(M.indices), _strided(M.indptr)
        assert not M.data.flags.c_contiguous
    elif kind == "unaligned":
        M.data = _unaligned(M.data)
        assert not M.data.flags.aligned
    else:
        M.data, M.indices, M.indptr = _readonly(M.data), _readonly(M.indices), _readonly(M.indptr)
    before = snapshot(M)
    assert_sparse_equals_dense(weights, Xd, M, y, "float64")
    assert_untouched(M, before)


def unsorted(Xs, rng):
    """The same matrix with each row's entries in a random order (a new matrix)."""
    data, indices = Xs.data.copy(), Xs.indices.copy()
    for r in range(Xs.shape[0]):
        a, b = Xs.indptr[r], Xs.indptr[r + 1]
        p = rng.permutation(b - a) + a
        data[a:b], indices[a:b] = data[p], indices[p]
    M = sp.csr_matrix((data, indices, Xs.indptr.copy()), shape=Xs.shape)
    M.has_sorted_indices = False
    return M


def test_unsorted_indices():
    weights, Xd, Xs, y = problem([15, 6, 2], 130, 0.3, seed=8)
    M = unsorted(Xs, np.random.default_rng(0))
    assert any(np.any(np.diff(M.indices[M.indptr[r]:M.indptr[r + 1]]) < 0)
               for r in range(M.shape[0]))
    before = snapshot(M)
    assert_sparse_equals_dense(weights, Xd, M, y, "float64")
    assert_untouched(M, before)


@pytest.mark.parametrize("fmt", ["csr", "coo"])
def test_duplicate_entries_add(fmt):
    """Duplicate entries add, as scipy defines them: the result is that of the dense matrix with
    the duplicates summed (to rounding on the nonzeros path: the duplicates are added in a
    different order; on the tiles path summed as the matrix is written out, bitwise when the
    dense matrix is summed in the same order)."""
    rng = np.random.default_rng(9)
    n, d0 = 60, 7
    rows = rng.integers(0, n, 400)
    cols = rng.integers(0, d0, 400)
    vals = rng.standard_normal(400)
    coo = sp.coo_matrix((vals, (rows, cols)), shape=(n, d0))
    assert not coo.has_canonical_format and len(set(zip(rows, cols))) < 400
    Xd = np.zeros((n, d0))
    np.add.at(Xd, (rows, cols), vals)
    if fmt == "csr":
        # a CSR matrix that keeps its duplicates (and their order): built from its arrays
        order = np.argsort(rows, kind="stable")
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
        M = sp.csr_matrix((vals[order], cols[order], indptr), shape=(n, d0))
        assert not M.has_canonical_format
    else:
        M = coo
    weights, _, _, y = problem([d0, 5, 2], n, 0.1, seed=9)
    before = snapshot(M)
    want = results(weights, Xd, y)
    for name in PATHS:
        with path(name):
            got = results(weights, M, y)
        if name == "tiles" and fmt == "csr":
            assert bitwise_equal(got, want)     # added in the same order as np.add.at
        else:
            assert_close(got, want, "float64")
    assert_untouched(M, before)


def test_sparse_y_is_made_dense():
    weights, Xd, Xs, y = problem([6, 4, 3], 50, 0.3, seed=10, output="softmax")
    ys = sp.csr_matrix(y)
    before = snapshot(ys)
    for name in PATHS:
        with path(name):
            assert bitwise_equal(results(weights, Xs, ys, output="softmax"),
                                 results(weights, Xs, y, output="softmax"))
    assert_untouched(ys, before)


# ------------------------------------------------------------------------------------------------
# Threads: bitwise the same on 1, 2 and 3

N_THREADS_TEST = 3000


def test_threads_bitwise():
    widths = [60, 16, 8, 3]
    assert _api._plan(widths, N_THREADS_TEST, 3, 8)[0] == 3   # three threads really run
    assert _api._plan(widths, N_THREADS_TEST, 2, 4)[0] == 2
    for dtype in ("float64", "float32"):
        weights, Xd, Xs, y = problem(widths, N_THREADS_TEST, 0.03, dtype, seed=11,
                                     output="softmax", empty_rows=0.1)
        sw = sample_weights(N_THREADS_TEST, np.random.default_rng(2), dtype)
        for name in PATHS:
            with path(name):
                runs = [results(weights, Xs, y, sw, num_threads=t, output="softmax")
                        for t in (1, 2, 3)]
            assert bitwise_equal(runs[0], runs[1]) and bitwise_equal(runs[0], runs[2])
            dense = results(weights, Xd, y, sw, num_threads=1, output="softmax")
            if name == "tiles":
                assert bitwise_equal(runs[0], dense)
            else:
                assert_close(runs[0], dense, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_column_rounds_bitwise(dtype, monkeypatch):
    """A gradient on the nonzeros path sums dW(1) by columns after each round of chunks: one
    round (dW(1) written straight into the result) and a round per chunk (summed in the float64
    sums first) give the same bits, on 1, 2 and 3 threads, with out= and accumulate= too; the
    error and the layers above agree with the forward-only and dense paths."""
    widths = [300, 12, 5, 3]
    n = 3000
    weights, Xd, Xs, y = problem(widths, n, 0.02, dtype, seed=21, output="softmax",
                                 empty_rows=0.05)
    sw = sample_weights(n, np.random.default_rng(3), dtype)
    X = _sparse.check_X(Xs, widths, np.dtype(dtype))
    assert X.input_layout == _sparse.INPUT_CSR
    threads, _, chunk, slots = _api._plan(widths, n, 3, np.dtype(dtype).itemsize, X=X)
    assert threads == 3 and -(-n // chunk) >= 4          # several chunks, on three threads
    assert slots * threads >= -(-n // chunk)             # one round as planned
    base = [np.random.default_rng(4).standard_normal(w.shape).astype(dtype) for w in weights]
    runs = []
    for round_bytes in (_api._SPARSE_ROUND_BYTES, 1):    # one round; then one chunk a thread
        monkeypatch.setattr(_api, "_SPARSE_ROUND_BYTES", round_bytes)
        for t in (1, 2, 3):
            E, g = fastbp.gradient(weights, Xs, y, output="softmax", sample_weight=sw,
                                   num_threads=t)
            out = [b.copy() for b in base]
            E2, _ = fastbp.gradient(weights, Xs, y, output="softmax", sample_weight=sw,
                                    num_threads=t, out=out, accumulate=True)
            assert E2 == E
            runs.append((E, g, out))
    assert _api._plan(widths, n, 3, np.dtype(dtype).itemsize, X=X)[3] == 1
    for E, g, out in runs[1:]:
        assert E == runs[0][0]
        assert bitwise_equal(g, runs[0][1]) and bitwise_equal(out, runs[0][2])
    E, g, out = runs[0]
    # s(1) by columns is s(1) sample by sample (error() sums it so), bit for bit; compared in
    # float64 only: in float32, gradient()'s and error()'s E can differ in the last bit, on a
    # dense X as well and before column rounds (their error sums round apart)
    if dtype == "float64":
        assert E == fastbp.error(weights, Xs, y, output="softmax", sample_weight=sw)
    Ed, gd = fastbp.gradient(weights, Xd, y, output="softmax", sample_weight=sw)
    assert abs(E - Ed) <= TOL[np.dtype(dtype)] * abs(Ed)
    assert_close(g, gd, dtype)
    assert_close(out, [b + h for b, h in zip(base, gd)], dtype)


@pytest.mark.parametrize("method, options", [
    ("adam", dict(batch_size=200, learning_rate=0.01, weight_decay=1e-3)),
    ("sgd", dict(batch_size=7, learning_rate=0.05, momentum=0.5)),
    ("sgd", dict(batch_size=1, learning_rate=0.02, momentum=0.9, nesterov=True)),
    ("sgd", dict(batch_size=N_THREADS_TEST, learning_rate=0.05)),
])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_shared_sparse_updates_bitwise(method, options, dtype, monkeypatch):
    """A sparse X's mini-batch steps shared (shares_sparse_updates: one member sums the batch,
    every member updates its rows; forced here for a small network): the weights after 3 epochs
    bitwise those of one thread on 2, 3 and 4 threads, with sample weights and a short last
    batch; a batch of several chunks (batch_size N) runs on one thread."""
    monkeypatch.setattr(_api, "_SHARED_UPDATE_WEIGHTS", 1)
    widths = [200, 16, 3]
    n = N_THREADS_TEST - 13
    weights, _, Xs, y = problem(widths, n, 0.02, dtype, seed=14, output="softmax",
                                empty_rows=0.05)
    sw = sample_weights(n, np.random.default_rng(5), dtype)
    X = _sparse.check_X(Xs, widths, np.dtype(dtype))
    assert _api.shares_sparse_updates(widths, 2)
    if options["batch_size"] <= n:
        chunk = _api._plan(widths, options["batch_size"], 2, np.dtype(dtype).itemsize, X=X,
                           columns=False)[2]
        assert (options["batch_size"] <= chunk) == (options["batch_size"] < n)
    teams = []
    epoch = _core.sgd_epoch

    def recording(*args):
        teams.append(args[18])          # the epoch's team, as _api.sgd_epoch planned it
        return epoch(*args)
    monkeypatch.setattr(_core, "sgd_epoch", recording)
    fitted = []
    for t in (1, 2, 3, 4):
        w = [a.copy() for a in weights]
        fastbp.fit(w, Xs, y, "softmax", method, epochs=3, num_threads=t, sample_weight=sw,
                   seed=3, **options)
        fitted.append(w)
    several_chunks = options["batch_size"] >= n
    assert teams == [t if t > 1 and not several_chunks else 1 for t in (1, 2, 3, 4)
                     for _ in range(3)]
    assert not bitwise_equal(fitted[0], weights)
    for w in fitted[1:]:
        assert bitwise_equal(w, fitted[0])


@pytest.mark.parametrize("method, options", [
    ("gd", dict(epochs=3, learning_rate=0.05)),
    ("adam", dict(epochs=1, batch_size=200, learning_rate=0.01)),
    ("sgd", dict(epochs=1, batch_size=500, learning_rate=0.05, momentum=0.5)),
    ("lbfgs", dict(epochs=4)),
])
def test_fit_threads_bitwise(method, options):
    """The same weights on 1, 2 and 3 threads; and the dense X's (on 2 threads: for sgd and
    adam those share each step, where a sparse X's steps run on one thread)."""
    widths = [60, 16, 3]
    if "batch_size" in options:
        assert _api.shares_steps(widths, options["batch_size"], 2)
    weights, Xd, Xs, y = problem(widths, N_THREADS_TEST, 0.03, seed=12, output="softmax")
    dense = [a.copy() for a in weights]
    fastbp.fit(dense, Xd, y, "softmax", method, num_threads=2, **options)
    for name in PATHS:
        fitted = []
        with path(name):
            for t in (1, 2, 3):
                w = [a.copy() for a in weights]
                fastbp.fit(w, Xs, y, "softmax", method, num_threads=t, **options)
                fitted.append(w)
        assert not bitwise_equal(fitted[0], weights)
        assert bitwise_equal(fitted[0], fitted[1]) and bitwise_equal(fitted[0], fitted[2]), name
        if name == "tiles":
            assert bitwise_equal(fitted[0], dense)
        else:
            err = max(rel_err(a, b) for a, b in zip(fitted[0], dense))
            assert err <= FIT_TOL["float64"], err


# ------------------------------------------------------------------------------------------------
# Every kernel set this CPU runs (a subprocess each, under FASTBP_SIMD)

SETS = [name for name, runs in _core.kernel_sets() if runs]

KERNEL_SET_CODE = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[3])
import test_sparse as t
from fastbp import _api
assert _api.ISA == sys.argv[1], (_api.ISA, sys.argv[1])
out = {}
for dtype in ("float64", "float32"):
    for widths, n, activation, output in (([5, 2], 40, "tanh", "tanh"),
                                          ([17, 9, 4], 150, "relu", "softmax"),
                                          ([33, 20, 1], 70, "logistic", "poisson"),
                                          ([3, 1, 1], 9, "identity", "linear")):
        weights, Xd, Xs, y = t.problem(widths, n, 0.2, dtype, seed=n, activation=activation,
                                       output=output, empty_rows=0.2)
        t.assert_sparse_equals_dense(weights, Xd, Xs, y, dtype, activation=activation,
                                     output=output)
        with t.path("nonzeros"):
            for i, a in enumerate(t.results(weights, Xs, y, activation=activation,
                                            output=output)):
                out[f"{dtype}/{widths}/{i}"] = a
np.savez(sys.argv[2], **out)
print("ok")
"""


def _kernel_set_results(name, tmp_path):
    env = kernel_set_env(name)
    file = tmp_path / f"{name}.npz"
    res = subprocess.run([sys.executable, "-c", KERNEL_SET_CODE, name, str(file), HERE],
                         cwd=HERE, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stderr[-3000:]
    with np.load(file) as f:
        return {k: f[k] for k in f.files}


def test_every_kernel_set(tmp_path):
    """In each set the tiles are bitwise its dense path and the nonzeros agree with it; the
    nonzeros path of each set agrees with the baseline set's."""
    base = _kernel_set_results("baseline", tmp_path)
    for name in SETS:
        if name == "baseline":
            continue
        other = _kernel_set_results(name, tmp_path)
        assert sorted(other) == sorted(base)
        for key, b in base.items():
            assert_close([other[key]], [b], key.split("/")[0])


# ------------------------------------------------------------------------------------------------
# fit, every method

METHODS = {
    "gd": dict(epochs=5, learning_rate=0.1, momentum=0.5),
    "sgd": dict(epochs=3, batch_size=16, learning_rate=0.05, momentum=0.5),
    "adam": dict(epochs=3, batch_size=16, learning_rate=0.01),
    "variable-lr": dict(epochs=6, learning_rate=0.5),
    "steepest": dict(epochs=4),
    "cg": dict(epochs=4),
    "rprop": dict(epochs=6),
    "lbfgs": dict(epochs=6),
}
# The nonzeros path's rounding differences after a few epochs: a gradient's (1e-16, 1e-7 of the
# dense path's) carried through the steps, within 1e-12 / 2e-6. steepest and cg fit a parabola to
# E values that differ in their last digits near the line's minimum: the step they take, and so
# the weights, move by about 1e7 times that (measured: 1.4e-8 in float64, 3.7e-4 in float32).
FIT_TOL = {"float64": 1e-12, "float32": 2e-6}
LINE_SEARCH_TOL = {"float64": 1e-7, "float32": 2e-3}


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fit_every_method(method, dtype):
    weights, Xd, Xs, y = problem([20, 6, 2], 200, 0.15, dtype, seed=13, empty_rows=0.1)
    sw = sample_weights(200, np.random.default_rng(3), dtype)
    options = dict(METHODS[method], weight_decay=0.01)

    def fit(X):
        w = [a.copy() for a in weights]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            h = fastbp.fit(w, X, y, "tanh", method, sample_weight=sw, **options)
        return w, h

    w0, h0 = fit(Xd)
    assert not bitwise_equal(w0, weights)
    for name in PATHS:
        before = snapshot(Xs)
        with path(name):
            w, h = fit(Xs)
        assert_untouched(Xs, before)
        assert h.epoch == h0.epoch and h.stop_reason == h0.stop_reason
        if name == "tiles":
            assert bitwise_equal(w, w0)
            assert np.array_equal(h.E_in, h0.E_in)
        else:
            tol = (LINE_SEARCH_TOL if method in ("steepest", "cg") else FIT_TOL)[dtype]
            err = max(rel_err(a, b) for a, b in zip(w, w0))
            assert err <= tol, err
            np.testing.assert_allclose(h.E_in, h0.E_in, rtol=tol)


@pytest.mark.parametrize("method", ["gd", "variable-lr", "rprop"])
def test_kernel_epochs_on_sparse(method, monkeypatch):
    """gd, variable-lr and rprop run blocks of epochs in one kernel call: on a sparse X bitwise
    the epoch-by-epoch path, as on a dense one (tests/test_full_batch_epochs.py)."""
    from fastbp import _methods
    weights, Xd, Xs, y = problem([20, 6, 2], 200, 0.15, seed=25)
    options = dict(METHODS[method], weight_decay=0.01)
    for name in PATHS:
        for validation in (None, (Xs[:50], y[:50])):
            fitted = []
            for kernel in (False, True):
                monkeypatch.setattr(_methods, "KERNEL_EPOCHS", kernel)
                w = [a.copy() for a in weights]
                with path(name):
                    h = fastbp.fit(w, Xs, y, "tanh", method, validation_data=validation,
                                   **options)
                fitted.append([*w, np.array(h.E_in), np.array(h.E_val)])
            assert bitwise_equal(fitted[0], fitted[1]), name


def test_network_methods():
    weights, Xd, Xs, y = problem([10, 5, 3], 120, 0.2, seed=14, output="softmax")
    for name in PATHS:
        with path(name):
            nets = [fastbp.Network([10, 5, 3], output="softmax", weights=[w.copy() for w in
                                                                          weights])
                    for _ in range(2)]
            got = []
            for net, X in zip(nets, (Xs, Xd)):
                net.fit(X, y, method="adam", epochs=3, batch_size=20)
                E, g = net.gradient(X, y)
                got.append([net.forward(X), net.predict(X), net.predict_proba(X),
                            np.array(net.error(X, y)), np.array(net.score(X, y)),
                            np.array(net.classification_error(X, y)),
                            np.array(E), *g, *net.weights])
        if name == "tiles":
            assert bitwise_equal(got[0], got[1])
        else:
            assert_close(got[0], got[1], "float64")


def test_validation_data_sparse():
    weights, Xd, Xs, y = problem([10, 5, 2], 120, 0.2, seed=15)
    fits = []
    for X in (Xs, Xd):
        w = [a.copy() for a in weights]
        h = fastbp.fit(w, Xd, y, method="gd", epochs=3, validation_data=(X, y))
        fits.append((w, h))
    assert bitwise_equal(fits[0][0], fits[1][0])
    assert_close([np.array(fits[0][1].E_val)], [np.array(fits[1][1].E_val)], "float64")


@pytest.mark.parametrize("api", ["fit", "Network.fit"])
def test_validation_fraction_sparse(api):
    """validation_fraction splits a sparse X as a dense one: the same rows held out."""
    weights, Xd, Xs, y = problem([10, 5, 2], 120, 0.2, seed=15)
    fits = []
    for X in (Xs, Xd):
        w = [a.copy() for a in weights]
        options = dict(method="adam", epochs=3, validation_fraction=0.25, early_stopping=True)
        if api == "fit":
            h = fastbp.fit(w, X, y, **options)
        else:
            net = fastbp.Network([10, 5, 2], weights=w)
            h = net.fit(X, y, **options)
            w = net.weights
        fits.append((w, h))
    assert_close(fits[0][0], fits[1][0], "float64")
    assert_close([np.array(fits[0][1].E_val)], [np.array(fits[1][1].E_val)], "float64")


def test_early_stopping_on_sparse_validation_data():
    weights, Xd, Xs, y = problem([10, 5, 2], 120, 0.2, seed=15)
    fits = []
    for X in (Xs, Xd):
        w = [a.copy() for a in weights]
        h = fastbp.fit(w, X, y, method="adam", epochs=8, early_stopping=True, patience=2,
                       validation_data=(X[:40], y[:40]))
        fits.append((w, h))
    assert fits[0][1].epoch == fits[1][1].epoch
    assert_close(fits[0][0], fits[1][0], "float64")


def test_fit_many():
    weights, Xd, Xs, y = problem([10, 5, 2], 120, 0.2, seed=20)
    options = [dict(epochs=3, learning_rate=0.05), dict(epochs=2, learning_rate=0.1)]
    for name in PATHS:
        fitted = []
        for X in (Xs, Xd):
            nets = [[a.copy() for a in weights] for _ in options]
            with path(name):
                fastbp.fit_many(nets, X, y, "tanh", method="gd", options=options)
            fitted.append([a for w in nets for a in w])
        if name == "tiles":
            assert bitwise_equal(fitted[0], fitted[1])
        else:
            assert_close(fitted[0], fitted[1], "float64")


@pytest.mark.parametrize("fmt", ["csr_matrix", "csc_matrix", "coo_matrix", "csr_array"])
def test_backprop_one_sparse_row(fmt):
    """backprop takes one sample as a sparse (1, d(0)) row: its dense row's results."""
    weights, Xd, Xs, y = problem([10, 5, 2], 20, 0.3, seed=21)
    row = getattr(sp, fmt)(Xd[3:4])
    before = snapshot(row)
    assert all(bitwise_equal(a, b) for a, b in zip(fastbp.backprop(weights, row, y[3]),
                                                   fastbp.backprop(weights, Xd[3], y[3])))
    assert_untouched(row, before)


# ------------------------------------------------------------------------------------------------
# check_gradient

@pytest.mark.parametrize("activation, output", [("tanh", "tanh"), ("relu", "softmax"),
                                                ("logistic", "poisson"), ("identity", "linear")])
def test_check_gradient(activation, output):
    """Finite differences on a sparse X: the analytic gradient within check_gradient's bounds
    (as tests/test_activations.py sets them), and on the tiles path the very number the dense X
    gives."""
    weights, Xd, Xs, y = problem([8, 5, 3], 40, 0.3, seed=16, activation=activation,
                                 output=output)
    sw = sample_weights(40, np.random.default_rng(5))
    kw = dict(output=output, activation=activation, sample_weight=sw, weight_decay=0.3)
    w32 = [w.astype(np.float32) for w in weights]
    for name in PATHS:
        with path(name):
            got = fastbp.check_gradient(weights, Xs, y, eps=1e-5, **kw)
            assert got < 1e-5
            assert fastbp.check_gradient(w32, Xs, y.astype(np.float32), eps=1e-4, **kw) < 1e-2
        if name == "tiles":
            assert got == fastbp.check_gradient(weights, Xd, y, eps=1e-5, **kw)


# ------------------------------------------------------------------------------------------------
# Bad input: named, refused before anything is written, the matrix untouched

def bad_X():
    """weights [4, 3, 2], a CSR X of 6 samples (its last row not empty), y."""
    weights, _, Xs, y = problem([4, 3, 2], 6, 0.5, seed=17)
    assert Xs.indptr[-2] < Xs.indptr[-1]
    return weights, Xs, y


@pytest.mark.parametrize("value, pattern", [
    (np.nan, r"X must be finite, but X\[1, 2\] = nan \(a stored value of the sparse matrix\)"),
    (np.inf, r"X must be finite, but X\[1, 2\] = inf"),
    (-np.inf, r"X must be finite, but X\[1, 2\] = -inf"),
])
@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_nonfinite_value(value, pattern, fmt):
    """Named by its place in the matrix (after a CSC or COO matrix is converted: the same)."""
    weights, Xd, _, y = problem([4, 3, 2], 6, 0.5, seed=17)
    Xd[1, 2] = value
    Xs = sp.csr_matrix(Xd).asformat(fmt)
    assert_refused(ValueError, pattern, weights, Xs, y)


def test_value_too_large_for_float32():
    weights, Xs, y = bad_X()
    Xs = Xs.copy()
    Xs.data[:] = 1.0
    Xs.data[-1] = 1e300
    w32 = [w.astype(np.float32) for w in weights]
    assert_refused(ValueError, r"X\[5, \d\] = 1e\+300 does not fit in float32", w32, Xs,
                   y.astype(np.float32))


def assert_refused(exc, pattern, weights, Xs, y):
    """Every public function that takes X refuses Xs with `exc` matching `pattern` (and fit's
    validation_data, with X named validation_data[0]), the weights and Xs untouched."""
    w_before = [w.copy() for w in weights]
    before = snapshot(Xs)
    net = fastbp.Network([w.shape[0] - 1 for w in weights] + [weights[-1].shape[1]],
                         weights=weights, dtype=weights[0].dtype)
    calls = {
        "gradient": lambda: fastbp.gradient(weights, Xs, y),
        "error": lambda: fastbp.error(weights, Xs, y),
        "forward": lambda: fastbp.forward(weights, Xs),
        "check_gradient": lambda: fastbp.check_gradient(weights, Xs, y),
        "fit": lambda: fastbp.fit(weights, Xs, y, method="gd", epochs=1),
        "fit-lbfgs": lambda: fastbp.fit(weights, Xs, y, method="lbfgs", epochs=1),
        "Network.fit": lambda: net.fit(Xs, y, epochs=1),
        "Network.predict": lambda: net.predict(Xs),
        "Network.score": lambda: net.score(Xs, y),
    }
    for call_name, call in calls.items():
        with pytest.raises(exc, match=pattern):
            call()
        assert bitwise_equal(weights, w_before), call_name
        assert_untouched(Xs, before)
    # as validation data: named as such
    Xd = np.zeros((3, weights[0].shape[0] - 1), dtype=weights[0].dtype)
    yd = np.zeros((3, weights[-1].shape[1]), dtype=weights[0].dtype)
    with pytest.raises(exc, match=pattern.replace("X", r"validation_data\[0\]")):
        fastbp.fit(weights, Xd, yd, method="gd", epochs=1, validation_data=(Xs, y))
    assert bitwise_equal(weights, w_before)
    assert_untouched(Xs, before)


@pytest.mark.parametrize("shape, pattern", [
    ((6, 5), r"X must have shape \(N, 4\) for d\(0\) = 4, got a scipy\.sparse csr_matrix of "
             r"shape \(6, 5\)$"),
    ((4, 6), r"X must have shape \(N, 4\) for d\(0\) = 4, got a scipy\.sparse csr_matrix of "
             r"shape \(4, 6\) \(one row per sample: is it transposed\? X\.T has shape \(N, 4\)\)"),
])
def test_shape_mismatch(shape, pattern):
    weights, _, y = bad_X()
    Xs = sp.random(*shape, density=0.5, format="csr", random_state=0)
    assert_refused(ValueError, pattern, weights, Xs, y[:shape[0]])


def test_no_samples():
    weights, _, y = bad_X()
    assert_refused(ValueError, r"X holds no samples \(N = 0\); need at least one", weights,
                   sp.csr_matrix((0, 4)), y[:0])


@pytest.mark.parametrize("dtype, exc, pattern", [
    (bool, TypeError, r"X must hold real numbers, got a boolean sparse matrix \(convert it to "
                      r"numbers first, e\.g\. X\.astype\(float\)\)"),
    (np.complex128, TypeError, r"X must hold real numbers \(integer or float\), got a "
                               r"scipy\.sparse csr_matrix of dtype complex128"),
])
def test_not_real_numbers(dtype, exc, pattern):
    weights, Xs, y = bad_X()
    assert_refused(exc, pattern, weights, Xs.astype(dtype), y)


@pytest.mark.parametrize("index, pattern", [
    (7, r"X is not a valid CSR matrix: a column index is 7, outside 0\.\.3"),
    (-1, r"X is not a valid CSR matrix: a column index is -1, outside 0\.\.3"),
])
def test_index_out_of_range(index, pattern):
    weights, Xs, y = bad_X()
    Xs = Xs.copy()
    Xs.indices[3] = index        # scipy does not check an array written after construction
    assert_refused(ValueError, pattern, weights, Xs, y)


def test_decreasing_indptr():
    weights, Xs, y = bad_X()
    Xs = Xs.copy()
    Xs.indptr[2] = Xs.indptr[3] + 1
    Xs.indptr[3] -= 1
    assert Xs.indptr[1] <= Xs.indptr[2] > Xs.indptr[3]
    assert_refused(ValueError, r"X is not a valid CSR matrix: indptr decreases after row 2",
                   weights, Xs, y)


@pytest.mark.parametrize("where", ["first", "last"])
def test_indptr_out_of_range(where):
    weights, Xs, y = bad_X()
    Xs = Xs.copy()
    if where == "first":
        Xs.indptr[0] = 1
    else:
        Xs.indptr[-1] = Xs.nnz + 3
    assert_refused(ValueError, r"X is not a valid CSR matrix: indptr runs from", weights, Xs, y)


@pytest.mark.parametrize("dtype, value", [("float32", 3e38), ("float64", 1e308)])
def test_duplicates_summing_past_the_dtype(dtype, value):
    """Two stored entries at X[0, 1], each finite in the weights' dtype, whose sum (the matrix's
    entry: duplicates add) is not: refused as the dense matrix is, whichever path."""
    weights, _, y = bad_X()
    weights, y = [w.astype(dtype) for w in weights], y.astype(dtype)
    M = sp.csr_matrix((np.array([value, value, 1.0]), np.array([1, 1, 2]),
                       np.array([0, 2, 3, 3, 3, 3, 3])), shape=(6, 4))
    with np.errstate(over="ignore"):
        assert np.isinf(M.toarray().astype(dtype)[0, 1])
    with pytest.raises(ValueError, match=r"X\[0, 1\]"):
        fastbp.gradient(weights, M.toarray(), y)
    before = snapshot(M)
    for name in PATHS:
        with path(name):
            with pytest.raises(ValueError, match=r"X\[0, 1\]"):
                fastbp.gradient(weights, M, y)
        assert_untouched(M, before)


def test_only_X_may_be_sparse():
    weights, Xs, y = bad_X()
    w_before = [w.copy() for w in weights]
    sw = sp.csr_matrix(np.ones((1, 6)))
    for call in (lambda: fastbp.gradient(weights, Xs, y, sample_weight=sw),
                 lambda: fastbp.fit(weights, Xs, y, epochs=1, sample_weight=sw)):
        with pytest.raises(TypeError, match=r"sample_weight must be a dense array, got a "
                                            r"scipy\.sparse csr_matrix of shape \(1, 6\): only X "
                                            r"may be sparse"):
            call()
        assert bitwise_equal(weights, w_before)
    sparse_weights = [sp.csr_matrix(weights[0]), weights[1]]
    with pytest.raises(TypeError, match=r"weights\[0\] must be a dense array, got a scipy\.sparse"):
        fastbp.gradient(sparse_weights, Xs, y)


def test_reference_takes_sparse():
    weights, Xd, Xs, y = problem([7, 5, 3], 50, 0.2, seed=22, output="softmax")
    kw = dict(output="softmax", activation="relu")
    E, g = fastbp.reference.gradient(weights, Xs, y, **kw)
    E0, g0 = fastbp.reference.gradient(weights, Xd, y, **kw)
    assert bitwise_equal([np.array(E), *g], [np.array(E0), *g0])
    assert bitwise_equal([fastbp.reference.forward(weights, Xs, **kw)],
                         [fastbp.reference.forward(weights, Xd, **kw)])


def test_sparse_rows_take():
    """SparseRows.take (rows of a checked matrix, in any order, repeated) gives those rows,
    itself unchanged."""
    _, Xd, Xs, _ = problem([9, 2], 40, 0.3, seed=23, empty_rows=0.3)
    for itype in (np.int32, np.int64):
        M = Xs.copy()
        M.indices, M.indptr = M.indices.astype(itype), M.indptr.astype(itype)
        rows = _sparse.check_X(M, [9, 2], np.dtype(np.float64))
        before = [rows.data.copy(), rows.indices.copy(), rows.indptr.copy()]
        for pick in ([3, 1, 1, 39, 0], [], np.arange(40)[::-1]):
            part = rows.take(pick)
            assert part.shape == (len(pick), 9)
            assert np.array_equal(part.toarray(), Xd[np.asarray(pick, dtype=int)])
        assert all(np.array_equal(a, b) for a, b in
                   zip([rows.data, rows.indices, rows.indptr], before))


def test_accepted_oddities():
    """Empty rows, no nonzeros at all, an all-empty matrix with stored zeros, one sample: taken,
    with the dense matrix's results."""
    weights, Xd, Xs, y = problem([6, 4, 2], 30, 0.2, seed=18, empty_rows=0.5)
    assert np.any(np.diff(Xs.indptr) == 0)
    assert_sparse_equals_dense(weights, Xd, Xs, y, "float64")
    zero = np.zeros_like(Xd)
    assert_sparse_equals_dense(weights, zero, sp.csr_matrix(zero), y, "float64")
    # explicitly stored zeros
    stored = sp.csr_matrix((np.zeros(5), np.arange(5), [0, 2, 5] + [5] * 28), shape=(30, 6))
    assert stored.nnz == 5
    assert_sparse_equals_dense(weights, zero, stored, y, "float64")
    assert_sparse_equals_dense(weights, Xd[:1], Xs[:1], y[:1], "float64")
    # stored entries past indptr[-1] are not part of the matrix (scipy ignores them): nor a NaN
    # or an index out of range among them
    tail = Xs.copy()
    tail.data = np.concatenate([Xs.data, [np.nan, 1.0]])
    tail.indices = np.concatenate([Xs.indices, [0, 99]]).astype(Xs.indices.dtype)
    assert tail.indptr[-1] == Xs.nnz and np.array_equal(tail.toarray(), Xd)
    assert_sparse_equals_dense(weights, Xd, tail, y, "float64")


def test_crossover():
    """sparse_crossover: get and set; a matrix at the crossover density runs on the tiles, below
    it on the nonzeros; bad values refused, the crossover unchanged."""
    Xs = sp.csr_matrix(np.eye(4))       # density 0.25
    old = _sparse.sparse_crossover(0.25)
    try:
        assert _sparse.sparse_crossover() == 0.25 == _sparse.sparse_crossover(None)
        assert _sparse.check_X(Xs, [4, 1], np.dtype(np.float64)).input_layout == \
            _sparse.INPUT_CSR_TILES
        assert _sparse.sparse_crossover(np.nextafter(0.25, 1)) == 0.25
        assert _sparse.check_X(Xs, [4, 1], np.dtype(np.float64)).input_layout == \
            _sparse.INPUT_CSR
        _sparse.sparse_crossover(0.25)
        for bad, exc in ((-0.1, ValueError), (np.nan, ValueError), (np.inf, ValueError),
                         ("0.1", TypeError), (True, TypeError)):
            with pytest.raises(exc, match="density"):
                _sparse.sparse_crossover(bad)
            assert _sparse.sparse_crossover() == 0.25
    finally:
        _sparse.sparse_crossover(old)


# ------------------------------------------------------------------------------------------------
# Memory

def test_memory_no_dense_copy():
    """A gradient on a CSR X of shape (2000, 200000) at density 1e-4 (40000 nonzeros) allocates
    nothing near the N d(0) elements of a dense copy (3.2 GB in float64).

    The weights [200000, 4, 1] themselves take 200001 * 4 * 8 = 6.4 MB (W(1)), and the gradient
    returned as many again; the traced peak is bounded by 48 MiB (7.9 times the weights), under 2 %
    of a dense copy and half a dense tile of 64 rows (102 MB): any dense copy of X, even a
    tile's, shows. What
    is measured: tracemalloc traces NumPy's allocations (and Python's), not the kernel's own C
    allocations (fastbp_aligned_calloc: its per-thread gradient buffers and tiles of s(l),
    x(l), delta(l)), which this test does not see; the nonzeros path writes no x(0) tile there
    (fastbp/_sparse_inputs.pxi)."""
    rng = np.random.default_rng(19)
    N, d0, per_row = 2000, 200_000, 20
    indptr = np.arange(N + 1, dtype=np.int32) * per_row
    indices = rng.integers(0, d0, N * per_row).astype(np.int32)
    X = sp.csr_matrix((rng.standard_normal(N * per_row), indices, indptr), shape=(N, d0))
    assert X.nnz / (N * d0) == 1e-4 < _sparse.sparse_crossover()
    weights = fastbp.init_weights([d0, 4, 1], seed=0)
    y = rng.uniform(-0.9, 0.9, N)
    dense_bytes = N * d0 * 8
    weight_bytes = sum(w.nbytes for w in weights)
    assert weight_bytes == (d0 + 1) * 4 * 8 + 5 * 8
    limit = 48 * 2 ** 20
    assert 5 * weight_bytes <= limit <= 0.02 * dense_bytes
    tracemalloc.start()
    try:
        # the instrument works: a NumPy array of a tenth of the limit shows
        tracemalloc.reset_peak()
        probe = np.ones(limit // 80)
        assert tracemalloc.get_traced_memory()[1] >= probe.nbytes
        del probe
        tracemalloc.reset_peak()
        E, g = fastbp.gradient(weights, X, y)
        e = fastbp.error(weights, X, y)
        out = fastbp.forward(weights, X)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < limit, f"traced peak {peak / 2 ** 20:.1f} MB"
    assert np.isfinite(E) and e == pytest.approx(E, rel=1e-12) and out.shape == (N, 1)
    assert g[0].shape == (d0 + 1, 4) and np.any(g[0][1:])
