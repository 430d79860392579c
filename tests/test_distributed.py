"""fastbp.distributed on a LocalCluster of 2 worker processes x 1 thread (one for the module).

Everything is compared with fastbp on the same data in memory, and repeated runs (and runs on 1, 2
and 3 workers) must agree bitwise.
"""
import os
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

pytest.importorskip("distributed", reason="Dask is not installed: fastbp.distributed needs "
                                          "pip install 'fastbp[dask]' (the test extra has it)")
import dask.array as da  # noqa: E402
from distributed import Client, LocalCluster, get_task_stream  # noqa: E402

import fastbp  # noqa: E402
import fastbp.distributed as fd  # noqa: E402
from _helpers import make_problem, rel_err  # noqa: E402

CHUNKINGS = {
    "even": 100,
    "uneven": (1, 37, 200, 3, 109, 50),
    "one": 400,
    "an empty chunk": (100, 0, 300),
}


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster:
        # not the default client: the "no client" test needs there to be none
        with Client(cluster, set_as_default=False) as c:
            yield c


def dask_data(X, y, rows):
    """X and y as Dask arrays of the same row chunks (`rows`: a chunk size or the sizes)."""
    return (da.from_array(X, chunks=(rows, X.shape[1])),
            da.from_array(y, chunks=(rows,) if y.ndim == 1 else (rows, y.shape[1])))


def same(a, b):
    """Bitwise equality of two (E, [arrays]) results."""
    return a[0] == b[0] and all(np.array_equal(u, v) and u.dtype == v.dtype
                                for u, v in zip(a[1], b[1]))


def test_import_fastbp_does_not_import_dask():
    code = "import sys, fastbp; print(sorted(m for m in sys.modules if m.split('.')[0] in " \
           "('dask', 'distributed')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=os.path.dirname(__file__), check=True).stdout.strip()
    assert out == "[]"


@pytest.mark.parametrize("widths, output, chunking", [
    ([3, 6, 2], "tanh", "even"), ([3, 6, 2], "tanh", "an empty chunk"),
    ([4, 1], "linear", "uneven"), ([4, 1], "linear", "one"),          # no hidden layer
    ([3, 5, 4, 3, 1], "tanh", "uneven"), ([3, 5, 4, 3, 1], "tanh", "even"),
])
def test_gradient_and_error_agree_with_memory_f64(client, widths, output, chunking):
    weights, X, y = make_problem(widths, 400, seed=len(widths))
    if widths[-1] == 1:
        y = y[:, 0]  # 1-D targets
    Xd, yd = dask_data(X, y, CHUNKINGS[chunking])
    E, g = fastbp.gradient(weights, X, y, output=output)
    Ed, gd = fd.gradient(weights, Xd, yd, output=output, client=client)
    assert abs(Ed - E) <= 1e-12 * E
    for a, b in zip(gd, g):
        assert a.dtype == np.float64 and a.shape == b.shape
        assert rel_err(a, b) <= 1e-12
    Es, gs = fastbp.gradient(weights, X, y, output=output, reduction="sum")
    Eds, gds = fd.gradient(weights, Xd, yd, output=output, reduction="sum", client=client)
    assert abs(Eds - Es) <= 1e-12 * Es
    assert all(rel_err(a, b) <= 1e-12 for a, b in zip(gds, gs))
    e = fd.error(weights, Xd, yd, output=output, client=client)
    assert abs(e - fastbp.error(weights, X, y, output=output)) <= 1e-12 * e
    assert e == Ed  # the same partial sums, added in the same order


def test_weights_as_a_key_of_their_own(client, monkeypatch):
    """Large weights (here: any) are one key of the graph that the workers fetch, not a copy in
    every task: the same results, bitwise, in both evaluation paths (gradient on lazy data, fit's
    objective on persisted data)."""
    weights, X, y = make_problem([5, 8, 3], 500, seed=9)
    Xd, yd = dask_data(X, y, (100, 150, 250))
    inline = fd.gradient(weights, Xd, yd, client=client)
    obj = fd.ClusterObjective(client, Xd, yd, [5, 8, 3], np.float64, "tanh")
    g_inline = np.empty(obj.size)
    E_inline = obj.gradient(obj.flat(weights), g_inline)
    monkeypatch.setattr(fd, "_INLINE_BYTES", 0)
    with get_task_stream(client=client) as ts:
        keyed = fd.gradient(weights, Xd, yd, client=client)
        g_keyed = np.empty(obj.size)
        E_keyed = obj.gradient(obj.flat(weights), g_keyed)
    obj.release()
    assert len([t for t in ts.data if str(t["key"]).startswith("fastbp-weights-")]) == 2
    assert same(keyed, inline) and E_keyed == E_inline and np.array_equal(g_keyed, g_inline)
    assert rel_err(g_keyed, np.concatenate([a.ravel() for a in inline[1]])) == 0


def test_gradient_float32(client):
    weights, X, y = make_problem([5, 8, 3], 500, dtype="float32", seed=3)
    Xd, yd = dask_data(X, y, CHUNKINGS["uneven"][:4] + (259,))
    E, g = fastbp.gradient(weights, X, y)
    Ed, gd = fd.gradient(weights, Xd, yd, client=client)
    assert abs(Ed - E) <= 1e-5 * E
    for a, b in zip(gd, g):
        assert a.dtype == np.float32
        assert rel_err(a, b) <= 1e-5
    # float64 data with float32 weights: converted on the workers, as fastbp does in memory
    Ed64, gd64 = fd.gradient(weights, *dask_data(X.astype(np.float64), y.astype(np.float64),
                                                 CHUNKINGS["uneven"][:4] + (259,)),
                             client=client)
    assert same((Ed, gd), (Ed64, gd64))


def test_forward_and_predict(client):
    weights, X, y = make_problem([4, 7, 3], 300, seed=5)
    Xd, _ = dask_data(X, y, (120, 1, 179))
    out = fd.forward(weights, Xd, output="linear")
    assert isinstance(out, da.Array) and out.shape == (300, 3) and out.chunks[0] == Xd.chunks[0]
    got = client.compute(out).result()
    np.testing.assert_array_equal(got, fastbp.forward(weights, X, output="linear"))
    got = client.compute(fd.predict(weights, Xd)).result()
    np.testing.assert_array_equal(got, fastbp.forward(weights, X))


def _workers_that_ran(ts, prefix):
    return {t["worker"] for t in ts.data if str(t["key"]).startswith(prefix)}


def _wait_for(client, n, timeout=30):
    t0 = time.time()
    while len(fd._worker_addresses(client)) != n:
        if time.time() - t0 > timeout:
            raise TimeoutError(f"the cluster did not reach {n} workers")
        time.sleep(0.05)


def test_bitwise_across_runs_and_worker_counts(client):
    """The same chunking gives bitwise the same E_in and gradient, and the same fit, on 2, 3 and
    1 workers, and on every run; the task stream shows that the chunks were really spread over
    the workers."""
    weights, X, y = make_problem([6, 9, 2], 1200, seed=7)
    Xd, yd = dask_data(X, y, (150, 200, 90, 160, 250, 110, 140, 100))
    results, fits = {}, {}
    cluster = client.cluster
    try:
        for n in (2, 3, 1):
            cluster.scale(n)
            _wait_for(client, n)
            with get_task_stream(client=client) as ts:
                results[n] = [fd.gradient(weights, Xd, yd, client=client) for _ in range(2)]
                w = [a.copy() for a in weights]
                h = fd.fit(w, Xd, yd, method="rprop", epochs=3, client=client)
                fits[n] = (h.E_aug, w)
            assert len(_workers_that_ran(ts, "fastbp-gradient")) == n
    finally:
        cluster.scale(2)
        _wait_for(client, 2)
    first = results[2][0]
    assert all(same(r, first) for runs in results.values() for r in runs)
    assert abs(first[0] - fastbp.error(weights, X, y)) <= 1e-12 * first[0]
    E_aug, w = fits[2]
    assert all(f[0] == E_aug and all(np.array_equal(a, b) for a, b in zip(f[1], w))
               for f in fits.values())


def _in_documented_order(parts):
    """The chunks' partial sums added as fastbp.distributed documents it (`_tree`, `_add`): in
    chunk order, groups of _FAN_IN = 8 consecutive parts, each group added left to right from
    its first part ((p0 + p1) + p2 ...), a group of one passed on as it is; then the same on the
    groups' sums, level after level, until one is left. parts: tuples of floats or float64
    arrays, added element by element."""
    while len(parts) > 1:
        groups = [parts[i:i + 8] for i in range(0, len(parts), 8)]
        parts = []
        for group in groups:
            total = group[0]
            for p in group[1:]:
                total = tuple(a + b for a, b in zip(total, p))
            parts.append(total)
    return parts[0]


# 11 uneven chunks: two levels of the tree, groups of 8 and of 3 on the first
ORDER_CHUNKS = (37, 120, 1, 64, 203, 90, 15, 128, 77, 240, 25)


@pytest.mark.parametrize("dtype, output, activation, weighted", [
    ("float64", "tanh", "tanh", False), ("float32", "tanh", "tanh", False),
    ("float64", "softmax", "relu", True)])
def test_sums_are_added_in_the_documented_order(client, dtype, output, activation, weighted):
    """Each chunk's sums computed in memory with fastbp.gradient and fastbp.error
    (reduction="sum"), added in the order fastbp.distributed documents: bitwise its gradient
    (both reductions) and its error, on 3 workers and on 1. Reversing the order of the additions
    in `_add` fails this test (checked by hand: a mutation)."""
    n, widths = sum(ORDER_CHUNKS), [5, 9, 4]
    weights, X, y = make_problem(widths, n, dtype=dtype, seed=12)
    rng = np.random.default_rng(12)
    if output == "softmax":
        y = np.eye(4, dtype=dtype)[rng.integers(0, 4, n)]
    sw = rng.uniform(0, 2, n) if weighted else None
    kw = dict(output=output, activation=activation)
    bounds = np.cumsum((0,) + ORDER_CHUNKS)
    parts, error_parts = [], []
    for a, b in zip(bounds[:-1], bounds[1:]):
        swc = None if sw is None else sw[a:b]
        e, g = fastbp.gradient(weights, X[a:b], y[a:b], reduction="sum", sample_weight=swc, **kw)
        total = b - a if sw is None else float(np.sum(swc, dtype=np.float64))
        parts.append((e, np.concatenate([np.asarray(v, np.float64).ravel() for v in g]), total))
        error_parts.append((fastbp.error(weights, X[a:b], y[a:b], reduction="sum",
                                         sample_weight=swc, **kw), total))
    E_sum, g_sum, total = _in_documented_order(parts)
    E_err, total_err = _in_documented_order(error_parts)
    shapes = [w.shape for w in weights]

    def layers(flat):
        out, pos = [], 0
        for a, b in shapes:
            out.append(flat[pos:pos + a * b].reshape(a, b).astype(dtype))
            pos += a * b
        return out
    want_sum = (E_sum, layers(g_sum))
    want_mean = (E_sum / total, layers(g_sum / total))
    want_error = E_err / total_err

    Xd, yd = dask_data(X, y, ORDER_CHUNKS)
    swd = None if sw is None else da.from_array(sw, chunks=(ORDER_CHUNKS,))
    cluster = client.cluster
    try:
        for workers in (3, 1):
            cluster.scale(workers)
            _wait_for(client, workers)
            with get_task_stream(client=client) as ts:
                got_sum = fd.gradient(weights, Xd, yd, reduction="sum", sample_weight=swd,
                                      client=client, **kw)
                got_mean = fd.gradient(weights, Xd, yd, sample_weight=swd, client=client, **kw)
                got_error = fd.error(weights, Xd, yd, sample_weight=swd, client=client, **kw)
            assert len(_workers_that_ran(ts, "fastbp-gradient")) == workers
            assert same(got_sum, want_sum), workers
            assert same(got_mean, want_mean), workers
            assert got_error == want_error, workers
    finally:
        cluster.scale(2)
        _wait_for(client, 2)


# ---------------------------------------------------------------------------------------------
# Bad input: a clear exception on the client, naming the argument and what was expected

def _bad_cases():
    w, X, y = make_problem([3, 4, 2], 50, seed=1)
    Xd, yd = dask_data(X, y, 20)
    wide = da.from_array(X, chunks=(20, 2))
    cases = {
        "X split across columns": (dict(X=wide), ValueError, "X must be chunked by rows only"),
        "y split across columns": (dict(y=da.from_array(y, chunks=(20, 1))), ValueError,
                                   "y must be chunked by rows only"),
        "X and y row chunks differ": (dict(y=da.from_array(y, chunks=(25, 2))), ValueError,
                                      "X and y must have the same row chunks, got (20, 20, 10) "
                                      "for X and (25, 25) for y"),
        "X width": (dict(X=da.from_array(X[:, :2], chunks=(20, 2))), ValueError,
                    "X must have shape (N, 3) for d(0) = 3, got shape (50, 2)"),
        "y width": (dict(y=da.from_array(y[:, :1], chunks=(20, 1))), ValueError,
                    "y must have shape (50, 2) for d(L) = 2, got shape (50, 1)"),
        "y rows": (dict(y=da.from_array(y[:40], chunks=(20, 2))), ValueError,
                   "y has 40 rows but X has 50 samples"),
        "empty X": (dict(X=da.zeros((0, 3), chunks=(10, 3)), y=da.zeros((0, 2), chunks=(10, 2))),
                    ValueError, "X holds no samples"),
        "numpy X": (dict(X=X), TypeError, "X must be a dask.array.Array chunked by rows, got "
                                          "numpy.ndarray"),
        "unknown chunks": (dict(X=Xd[Xd[:, 0] > 0]), ValueError,
                           "X has row chunks of unknown size"),
        "bool X": (dict(X=Xd > 0), TypeError, "X must hold real numbers"),
        "X weights mismatch": (dict(weights=w[:1]), ValueError,
                               "y must have shape (50, 4) for d(L) = 4, got shape (50, 2)"),
        "numpy sample_weight": (dict(sample_weight=np.ones(50)), TypeError,
                                "sample_weight must be a dask.array.Array chunked by rows, got "
                                "numpy.ndarray"),
        "sample_weight chunks": (dict(sample_weight=da.ones(50, chunks=25)), ValueError,
                                 "X and sample_weight must have the same row chunks, got "
                                 "(20, 20, 10) for X and (25, 25) for sample_weight"),
        "sample_weight length": (dict(sample_weight=da.ones(40, chunks=20)), ValueError,
                                 "sample_weight has 40 entries but X has 50 samples"),
        "all-zero sample_weight": (dict(sample_weight=da.zeros(50, chunks=(20, 20, 10))),
                                   ValueError, "sample_weight must not be all zero"),
        "negative sample_weight": (dict(sample_weight=-da.ones(50, chunks=(20, 20, 10))),
                                   ValueError, "sample_weight must be finite and >= 0, but "
                                               "sample_weight[0] = -1.0"),
        "activation": (dict(activation="gelu"), ValueError, "activation must be one of"),
        "client": (dict(client="tcp://127.0.0.1:1"), TypeError,
                   "client must be a dask.distributed.Client or None, got str"),
    }
    return w, Xd, yd, cases


@pytest.mark.parametrize("case", sorted(_bad_cases()[3]))
def test_bad_input(client, case):
    w, Xd, yd, cases = _bad_cases()
    change, exc, message = cases[case]
    args = dict(weights=w, X=Xd, y=yd, client=client)
    args.update(change)
    with pytest.raises(exc) as info:
        fd.gradient(**args)
    assert message in str(info.value)
    with pytest.raises(exc, match=None) as info:
        fd.error(**args)
    assert message in str(info.value)


def test_nan_is_named_by_chunk_and_row(client):
    w, X, y = make_problem([3, 4, 2], 100, seed=2)
    X[57, 2] = np.nan
    y[93, 1] = np.inf
    Xd, yd = dask_data(X, y, (30, 20, 30, 20))
    with pytest.raises(ValueError, match=r"X must be finite, but chunk 2 of X \(rows 50 to 79\) "
                                         r"holds X\[57, 2\] = nan"):
        fd.gradient(w, Xd, yd, client=client)
    X[57, 2] = 0.0
    Xd, yd = dask_data(X, y, (30, 20, 30, 20))
    with pytest.raises(ValueError, match=r"y must be finite, but chunk 3 of y \(rows 80 to 99\) "
                                         r"holds y\[93, 1\] = inf"):
        fd.error(w, Xd, yd, client=client)
    X[5, 0] = np.inf
    with pytest.raises(ValueError, match=r"chunk 0 of X \(rows 0 to 29\) holds X\[5, 0\] = inf"):
        client.compute(fd.forward(w, dask_data(X, y, 30)[0])).result()


def test_sparse_chunks(client):
    """A Dask array of scipy.sparse chunks: each chunk computed sparse on its worker (fastbp's
    sparse kernels), the sums those of the whole matrix in memory; a NaN named by chunk and row."""
    sparse = pytest.importorskip("scipy.sparse")
    w, X, y = make_problem([30, 4, 2], 300, seed=3)
    X[np.abs(X) < 1.2] = 0.0
    Xs = sparse.csr_matrix(X)
    Xd = da.from_array(Xs, chunks=(100, 30), asarray=False)
    yd = da.from_array(y, chunks=(100, 2))
    E, g = fd.gradient(w, Xd, yd, client=client)
    E0, g0 = fastbp.gradient(w, X, y)
    assert E == pytest.approx(E0, rel=1e-12)
    for a, b in zip(g, g0):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    out = client.compute(fd.forward(w, Xd)).result()
    np.testing.assert_allclose(out, fastbp.forward(w, X), rtol=1e-12)
    Xs.data[Xs.indptr[157]] = np.nan
    column = int(Xs.indices[Xs.indptr[157]])
    Xd = da.from_array(Xs, chunks=(100, 30), asarray=False)
    with pytest.raises(ValueError, match=rf"X must be finite, but chunk 1 of X \(rows 100 to "
                                         rf"199\) holds X\[157, {column}\] = nan"):
        fd.gradient(w, Xd, yd, client=client)


def test_no_client():
    w, X, y = make_problem([3, 4, 2], 50, seed=1)
    Xd, yd = dask_data(X, y, 20)
    with pytest.raises(ValueError, match="fastbp.distributed needs a Dask client: pass client="):
        fd.gradient(w, Xd, yd)


# ---------------------------------------------------------------------------------------------
# Kernel sets

def test_kernel_sets_reported_pinned_and_mixing_warned(client):
    """A worker started with FASTBP_SIMD=baseline runs the baseline kernels; with it in the
    cluster, kernels() and show_config() say so, and an evaluation whose chunks ran on different
    kernel sets warns."""
    best = fastbp._api.ISA
    sets = fd.kernels(client)
    assert len(sets) == 2 and set(sets.values()) == {best}
    if best == "baseline":
        pytest.skip("this CPU runs the baseline kernels only: no second kernel set to mix in")
    address = client.scheduler.address
    env = dict(os.environ, FASTBP_SIMD="baseline")
    # started from tests/, so that it imports the installed fastbp, not a checkout's unbuilt folder
    proc = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address,
                             "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
                             "--name", "fastbp-baseline-worker"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=os.path.dirname(os.path.abspath(__file__)))
    try:
        _wait_for(client, 3)
        sets = fd.kernels(client)
        assert sorted(sets.values()) == sorted([best, best, "baseline"])
        import io
        text = io.StringIO()
        fd.show_config(client, file=text)
        assert "MIXED" in text.getvalue() and "FASTBP_SIMD='baseline'" in text.getvalue()
        # one chunk on each worker: scatter them there
        baseline = next(a for a, s in sets.items() if s == "baseline")
        others = sorted(a for a, s in sets.items() if s != "baseline")
        w, X, y = make_problem([8, 16, 1], 3000, seed=4)
        futures = [client.scatter((X[i::3], y[i::3]), workers=[addr])
                   for i, addr in enumerate([baseline] + others)]
        import dask
        Xd = da.concatenate([da.from_delayed(dask.delayed(lambda p: p[0])(f), (1000, 8), float)
                             for f in futures])
        yd = da.concatenate([da.from_delayed(dask.delayed(lambda p: p[1])(f), (1000, 1), float)
                             for f in futures])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with get_task_stream(client=client) as ts:
                fd.gradient(w, Xd, yd, client=client)
        ran = _workers_that_ran(ts, "fastbp-gradient")
        mixed = [str(c.message) for c in caught if "different kernel sets" in str(c.message)]
        assert (baseline in ran and len(ran) > 1) == bool(mixed), (ran, mixed)
        assert baseline in ran and mixed
    finally:
        proc.terminate()
        proc.wait(30)
        _wait_for(client, 2)


# ---------------------------------------------------------------------------------------------
# fit: every full-batch method against fastbp.fit in memory

def fit_problem(n=600, chunks=(250, 100, 250), seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    y = 0.8 * np.tanh(X[:, :1] - X[:, 1:2])
    return fastbp.init_weights([4, 6, 1], seed=1), X, y, dask_data(X, y, chunks)


# (method, options, relative tolerance on every epoch's E_aug and on the final weights): the line
# searches of steepest and cg take many evaluations per epoch and amplify rounding differences
FIT_CASES = [
    ("gd", dict(learning_rate=0.5, momentum=0.5), 1e-12),
    ("variable-lr", dict(learning_rate=0.5), 1e-12),
    ("steepest", dict(line_search_steps=3), 1e-9),
    ("cg", dict(line_search_steps=3), 1e-9),
    ("rprop", dict(), 1e-12),
    ("lbfgs", dict(), 1e-12),
]


@pytest.mark.parametrize("method, options, tol", FIT_CASES, ids=[c[0] for c in FIT_CASES])
def test_fit_agrees_with_fastbp_fit(client, method, options, tol):
    if method == "lbfgs":
        pytest.importorskip("scipy", reason="method='lbfgs' needs SciPy")
    w0, X, y, (Xd, yd) = fit_problem()
    mem, dist = [w.copy() for w in w0], [w.copy() for w in w0]
    h_mem = fastbp.fit(mem, X, y, method=method, epochs=4, weight_decay=0.01, **options)
    h = fd.fit(dist, Xd, yd, method=method, epochs=4, weight_decay=0.01, client=client,
               **options)
    assert len(h) == len(h_mem) == 4 and h.stop_reason == h_mem.stop_reason == "epochs"
    assert h.E_aug[-1] < h.start["E_aug"]
    for a, b in zip(h.E_aug + h.E_in, h_mem.E_aug + h_mem.E_in):
        assert abs(a - b) <= tol * b
    for a, b in zip(dist, mem):
        assert rel_err(a, b) <= tol


def test_fit_validation_early_stopping_tol_callback(client):
    w0, X, y, (Xd, yd) = fit_problem()
    Xv, yv = X[:200] + 0.3, y[:200]
    Xvd, yvd = dask_data(Xv, yv, (120, 80))
    seen = []
    kw = dict(method="rprop", epochs=30, early_stopping=True, patience=3, tol=1e-9)
    mem, dist = [w.copy() for w in w0], [w.copy() for w in w0]
    h_mem = fastbp.fit(mem, X, y, validation_data=(Xv, yv), **kw)
    h = fd.fit(dist, Xd, yd, validation_data=(Xvd, yvd), client=client,
               callback=lambda hist: seen.append(len(hist)), **kw)
    assert (h.stop_reason, h.best_epoch, len(h)) == (h_mem.stop_reason, h_mem.best_epoch,
                                                    len(h_mem))
    assert seen == list(range(1, len(h) + 1))
    assert max(abs(a - b) / b for a, b in zip(h.E_val, h_mem.E_val)) <= 1e-12
    assert abs(h.start["E_val"] - h_mem.start["E_val"]) <= 1e-12 * h_mem.start["E_val"]
    assert all(rel_err(a, b) <= 1e-12 for a, b in zip(dist, mem))
    # a callback that returns False stops
    h = fd.fit([w.copy() for w in w0], Xd, yd, method="gd", epochs=10, client=client,
               callback=lambda hist: len(hist) < 2)
    assert h.stop_reason == "callback" and len(h) == 2


def test_fit_float32(client):
    w0, X, y, _ = fit_problem()
    w32 = [w.astype(np.float32) for w in w0]
    mem, dist = [w.copy() for w in w32], [w.copy() for w in w32]
    h_mem = fastbp.fit(mem, X.astype(np.float32), y.astype(np.float32), method="rprop", epochs=3)
    h = fd.fit(dist, *dask_data(X, y[:, 0], 300), method="rprop", epochs=3, client=client)
    assert all(a.dtype == np.float32 for a in dist)
    assert max(abs(a - b) / b for a, b in zip(h.E_in, h_mem.E_in)) <= 1e-5


def test_fit_is_bitwise_repeatable(client):
    w0, X, y, (Xd, yd) = fit_problem()

    def ours():
        return {str(k) for k in client.who_has() if str(k).startswith("fastbp-")}

    before = ours()      # (what earlier tests' exceptions may still hold)
    runs = []
    for _ in range(2):
        w = [a.copy() for a in w0]
        h = fd.fit(w, Xd, yd, method="cg", epochs=3, line_search_steps=2, client=client)
        runs.append((h.E_aug, w))
    assert runs[0][0] == runs[1][0]
    assert all(np.array_equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))
    # and fit leaves nothing of its own in the workers' memory
    import gc
    gc.collect()
    t0 = time.time()
    while ours() - before:
        assert time.time() - t0 < 10, sorted(ours() - before)[:5]
        time.sleep(0.05)


@pytest.mark.parametrize("delay, inline", [(0.0, True), (0.01, False)],
                         ids=["between evaluations, weights in the tasks",
                              "during one, weights a key of their own"])
def test_worker_killed_mid_fit_gives_the_same_weights(delay, inline, monkeypatch):
    """A worker process killed (SIGKILL) in the middle of fit, after epoch 3 (at once, or 10 ms
    into epoch 4's evaluation): Dask recomputes the chunks it held from their source (and the
    weights, when they are a key that worker held), and the fit ends with bitwise the weights of an
    undisturbed run. On a cluster of its own: the nanny's restart of the killed worker took over
    30 s once in a CI run of the whole suite, and the shared cluster's next test then found one
    worker."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster:
        with Client(cluster, set_as_default=False) as client:
            _kill_a_worker_mid_fit(client, delay, inline, monkeypatch)


def _kill_a_worker_mid_fit(client, delay, inline, monkeypatch):
    import threading
    if not inline:
        monkeypatch.setattr(fd, "_INLINE_BYTES", 0)
    w0, X, y, (Xd, yd) = fit_problem(n=2000, chunks=(500, 500, 500, 500))
    kw = dict(method="rprop", epochs=8, client=client)
    calm = [w.copy() for w in w0]
    h_calm = fd.fit(calm, Xd, yd, **kw)
    killed, timers = [], []

    def kill_one(history):
        if len(history) == 3:
            pids = client.run(os.getpid)
            victim = pids[sorted(pids)[0]]
            timers.append(threading.Timer(delay, os.kill, (victim, 9)))
            timers[0].start()
            killed.append(victim)

    hit = [w.copy() for w in w0]
    h_hit = fd.fit(hit, Xd, yd, callback=kill_one, **kw)
    assert killed, "the callback did not kill a worker"
    timers[0].join()
    _wait_for(client, 2, timeout=120)
    assert killed[0] not in client.run(os.getpid).values()
    assert h_hit.E_aug == h_calm.E_aug and len(h_hit) == 8
    assert all(np.array_equal(a, b) for a, b in zip(hit, calm))


def test_ctrl_c_on_the_client_keeps_the_last_completed_epoch(client, sigint_raises):
    """SIGINT while the client waits for the cluster: fit stops, "interrupted", and the weights
    are bitwise those of an undisturbed fit of the epochs it completed."""
    import signal
    import threading
    w0, X, y, (Xd, yd) = fit_problem()
    timers = []

    def interrupt_soon(history):
        if len(history) == 3:
            timers.append(threading.Timer(0.02, os.kill, (os.getpid(), signal.SIGINT)))
            timers[0].start()

    w = [a.copy() for a in w0]
    h = fd.fit(w, Xd, yd, method="gd", epochs=1000, callback=interrupt_soon, client=client)
    timers[0].join()
    assert h.stop_reason == "interrupted" and 3 <= len(h) < 1000
    ref = [a.copy() for a in w0]
    fd.fit(ref, Xd, yd, method="gd", epochs=len(h), client=client)
    assert all(np.array_equal(a, b) for a, b in zip(w, ref))
    # the cluster is still usable
    assert fd.error(w, Xd, yd, client=client) == h.E_in[-1]


def test_fit_bad_input_leaves_the_weights_alone(client):
    w0, X, y, (Xd, yd) = fit_problem()
    Xnan = X.copy()
    Xnan[444, 1] = np.nan
    ro = [w.copy() for w in w0]
    ro[1].flags.writeable = False
    cases = [
        (dict(method="sgd"), ValueError, "method 'sgd' steps through mini-batches"),
        (dict(method="adam"), ValueError, "fastbp.distributed.fit runs the full-batch methods"),
        (dict(method="gd", num_threads=2), ValueError, "num_threads does not apply"),
        (dict(method="gd", validation_fraction=0.2), ValueError,
         "validation_fraction does not apply"),
        (dict(method="gd", batch_size=10), ValueError, "method 'gd' does not take the option"),
        (dict(method="gd", validation_data=(Xd,)), TypeError,
         "validation_data must be a pair (X_val, y_val) of Dask arrays"),
        (dict(method="gd", validation_data=(Xd[:, :2], yd)), ValueError,
         "validation_data[0] must have shape (N, 4) for d(0) = 4, got shape (600, 2)"),
        (dict(method="gd", X=dask_data(Xnan, y, (250, 100, 250))[0]), ValueError,
         "X must be finite, but chunk 2 of X (rows 350 to 599) holds X[444, 1] = nan"),
        (dict(method="gd", validation_data=dask_data(Xnan, y, (250, 100, 250))), ValueError,
         "validation_data[0] must be finite, but chunk 2 of validation_data[0]"),
        (dict(method="gd", y=da.from_array(y, chunks=(300, 1))), ValueError,
         "X and y must have the same row chunks"),
        (dict(method="gd", weights=ro), ValueError, "weights[1] is read-only"),
        (dict(method="gd", client=None), ValueError, "needs a Dask client"),
    ]
    for change, exc, message in cases:
        w = change.pop("weights", [a.copy() for a in w0])
        before = [a.copy() for a in w]
        args = dict(weights=w, X=Xd, y=yd, client=client, epochs=2)
        args.update(change)
        with pytest.raises(exc) as info:
            fd.fit(**args)
        assert message in str(info.value), (change, str(info.value))
        assert all(np.array_equal(a, b) for a, b in zip(w, before))


def test_a_worker_of_two_threads_uses_both_and_agrees_bitwise(client):
    """LocalCluster(n_workers=1, threads_per_worker=2): fastbp runs on the worker's 2 threads
    (not OMP_NUM_THREADS=1, which Dask's nanny sets), and the results are bitwise those of 2
    workers x 1 thread."""
    weights, X, y = make_problem([6, 9, 2], 3000, seed=8)
    Xd, yd = dask_data(X, y, (1000, 1200, 800))
    two_by_one = fd.gradient(weights, Xd, yd, client=client)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                      dashboard_address=":0") as cluster:
        with Client(cluster, set_as_default=False) as c:
            threads = c.submit(lambda: fd._worker_slot()[0], pure=False).result()
            omp = c.run(lambda: os.environ.get("OMP_NUM_THREADS"))
            one_by_two = fd.gradient(weights, Xd, yd, client=c)
    assert threads == 2 and list(omp.values()) == ["1"]
    assert same(one_by_two, two_by_one)


def test_persisted_chunks_are_spread_in_row_order(client):
    """fit's data: consecutive chunks on one worker, every worker its share (Dask alone may put
    two large chunks on one worker and leave the other idle)."""
    _wait_for(client, 2)
    w0, X, y, (Xd, yd) = fit_problem(n=800, chunks=(200, 200, 200, 200))
    obj = fd.ClusterObjective(client, Xd, yd, [4, 6, 1], np.float64, "tanh")
    try:
        holders = client.who_has([b for pair in obj.blocks for b in pair])
        workers = fd._worker_addresses(client)
        first = [holders[pair[0].key] for pair in obj.blocks]
        assert [h[0] for h in first] == [workers[0], workers[0], workers[1], workers[1]]
        g = np.empty(obj.size)
        E = obj.gradient(obj.flat(w0), g)
        assert abs(E[0] - fastbp.error(w0, X, y)) <= 1e-12 * E[0]
    finally:
        obj.release()


def test_without_dask_the_import_error_names_the_extra():
    code = ("import sys; sys.modules['distributed'] = None\n"
            "try:\n    import fastbp.distributed\nexcept ImportError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=os.path.dirname(__file__), check=True).stdout
    assert 'fastbp.distributed needs Dask' in out and 'pip install "fastbp[dask]"' in out


# ---------------------------------------------------------------------------------------------
# Every activation and output, and sample weights, as in memory

@pytest.mark.parametrize("activation,output", [("relu", "softmax"), ("logistic", "logistic"),
                                               ("identity", "linear"), ("tanh", "tanh")])
def test_units_and_sample_weights_agree_with_memory(client, activation, output):
    rng = np.random.default_rng(7)
    widths = [3, 5, 4]
    w = [a * 1.5 for a in fastbp.init_weights(widths, seed=3)]
    X = rng.standard_normal((90, 3))
    if output == "softmax":
        y = np.eye(4)[rng.integers(0, 4, 90)]
    elif output == "logistic":
        y = (rng.uniform(size=(90, 4)) > 0.5).astype(float)
    else:
        y = rng.uniform(-0.8, 0.8, (90, 4))
    sw = rng.uniform(0, 2, 90)
    sw[30:40] = 0                          # a whole chunk of weight 0 adds nothing
    Xd, yd = dask_data(X, y, (30, 10, 50))
    swd = da.from_array(sw, chunks=((30, 10, 50),))
    for weights in (None, sw):
        wd = None if weights is None else swd
        E, g = fd.gradient(w, Xd, yd, output=output, activation=activation, sample_weight=wd,
                           client=client)
        E0, g0 = fastbp.gradient(w, X, y, output=output, activation=activation,
                                 sample_weight=weights)
        assert E == pytest.approx(E0, rel=1e-12)
        for a, b in zip(g, g0):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14 * np.abs(b).max())
        assert fd.error(w, Xd, yd, output=output, activation=activation, sample_weight=wd,
                        client=client) == E
    out = fd.forward(w, Xd, output=output, activation=activation).compute()
    np.testing.assert_array_equal(out[:30], fastbp.forward(w, X[:30], output=output,
                                                           activation=activation))
    np.testing.assert_allclose(out, fastbp.forward(w, X, output=output, activation=activation),
                               rtol=1e-13)


def test_weighted_fit_agrees_with_memory(client):
    rng = np.random.default_rng(8)
    widths = [3, 5, 4]
    X = rng.standard_normal((80, 3))
    y = np.eye(4)[rng.integers(0, 4, 80)]
    sw = rng.uniform(0.5, 2, 80)
    Xd, yd = dask_data(X, y, 40)
    a = fastbp.init_weights(widths, seed=3)
    b = [x.copy() for x in a]
    fd.fit(a, Xd, yd, output="softmax", activation="relu", method="rprop", epochs=5,
           sample_weight=da.from_array(sw, chunks=40), client=client)
    fastbp.fit(b, X, y, output="softmax", activation="relu", method="rprop", epochs=5,
               sample_weight=sw)
    for x, z in zip(a, b):
        np.testing.assert_allclose(x, z, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# fastbp.sklearn's estimators on Dask arrays: the full-batch solvers on the cluster

@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_sklearn_estimators_fit_and_predict_dask_arrays(client, kind):
    sk = pytest.importorskip("sklearn")  # noqa: F841
    from fastbp import sklearn as fb
    rng = np.random.default_rng(4)
    X = rng.standard_normal((120, 4))
    if kind == "classifier":
        y = np.digitize(X[:, 0] + 0.5 * X[:, 1], [-0.5, 0.5])     # three classes
        est = fb.MLPClassifier(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=15,
                               random_state=0)
    else:
        y = np.sin(X[:, 0]) + 0.1 * X[:, 1]
        est = fb.MLPRegressor(hidden_layer_sizes=(6,), solver="rprop", max_iter=15,
                              random_state=0)
    with client.as_current():    # the estimators use the current (default) client
        _sklearn_on_dask(est, X, y, kind)


def _sklearn_on_dask(est, X, y, kind):
    from fastbp import sklearn as fb
    Xd = da.from_array(X, chunks=40)
    yd = da.from_array(y, chunks=40)
    mem = type(est)(**est.get_params())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(Xd, yd)
        mem.fit(X, y)
    assert est.n_iter_ == mem.n_iter_ and est.loss_ == pytest.approx(mem.loss_, rel=1e-9)
    for a, b in zip(est.coefs_ + est.intercepts_, mem.coefs_ + mem.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
    pred = est.predict(Xd)
    assert isinstance(pred, da.Array)
    np.testing.assert_array_equal(pred.compute(), est.predict(X))
    if kind == "classifier":
        np.testing.assert_array_equal(est.classes_, mem.classes_)
        proba = est.predict_proba(Xd)
        assert isinstance(proba, da.Array)
        np.testing.assert_allclose(proba.compute(), est.predict_proba(X), rtol=1e-12)
        with pytest.raises(ValueError, match="steps through mini-batches one after another"):
            fb.MLPClassifier(solver="adam").fit(Xd, yd)


def test_partial_fit_under_dask_ml_incremental(client):
    """Mini-batch training is sequential: dask-ml's Incremental hands the chunks one after another
    to partial_fit; the model is the one of partial_fit called on the chunks in order."""
    dask_ml_wrappers = pytest.importorskip("dask_ml.wrappers")
    from fastbp import sklearn as fb
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    params = dict(hidden_layer_sizes=(5,), random_state=0, shuffle=False,
                  learning_rate_init=0.01)
    with client.as_current():
        inc = dask_ml_wrappers.Incremental(fb.MLPClassifier(**params), shuffle_blocks=False)
        inc.fit(da.from_array(X, chunks=100), da.from_array(y, chunks=100), classes=[0, 1])
        predicted = inc.predict(da.from_array(X, chunks=100))
        assert isinstance(predicted, da.Array)
        predicted = predicted.compute()
    ref = fb.MLPClassifier(**params)
    for i in range(3):
        ref.partial_fit(X[i * 100:(i + 1) * 100], y[i * 100:(i + 1) * 100], classes=[0, 1])
    assert inc.estimator_.t_ == 300
    fitted = inc.estimator_
    assert all(np.array_equal(a, b) for a, b in zip(fitted.coefs_ + fitted.intercepts_,
                                                    ref.coefs_ + ref.intercepts_))
    np.testing.assert_array_equal(predicted, ref.predict(X))
