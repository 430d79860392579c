"""bench/sparse.py (issue 24's benchmark): its data, its crossover arithmetic, its peak-memory
probe in a child process, and a --quick run end to end. Skipped where scikit-learn, SciPy or
pandas is missing, or bench/ is not next to tests/: they are benchmark tools, not fastbp's."""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastbp

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")
SCRIPT = os.path.join(BENCH, "sparse.py")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastbp.__file__)))


@pytest.fixture(scope="module")
def sparse_bench():
    """bench/sparse.py, loaded from its path under another name: `import sparse` may give the
    PyData package of that name (Dask imports it where it is installed)."""
    if not os.path.isdir(BENCH):
        pytest.skip("bench/ is not next to tests/ (an installed test run)")
    pytest.importorskip("scipy")
    saved = list(sys.path)
    try:
        spec = importlib.util.spec_from_file_location("fastbp_bench_sparse", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved             # the script puts bench/ first on the path
    return module


def test_tfidf_like_is_text_like(sparse_bench):
    """Distinct sorted columns, the density asked for, unit rows, a few columns in most rows
    and most in few, 20 balanced classes; the same seed the same matrix."""
    n, d, density = 3000, 20000, 0.005
    X, y = sparse_bench.tfidf_like(n, d, density, classes=20, seed=3)
    assert X.format == "csr" and X.shape == (n, d) and X.dtype == np.float64
    assert X.has_canonical_format            # sorted, no duplicates
    assert X.nnz == pytest.approx(density * n * d, rel=0.02)
    lengths = np.diff(X.indptr)
    assert lengths.min() >= 1 and lengths.std() > 0.3 * lengths.mean()   # documents vary
    np.testing.assert_allclose(np.sqrt(np.asarray(X.multiply(X).sum(axis=1))).ravel(), 1.0,
                               rtol=1e-12)
    assert (X.data > 0).all()
    df = np.bincount(X.indices, minlength=d) / n
    assert df.max() > 0.5 and np.median(df) < density    # Zipf: frequent and rare columns
    assert y.shape == (n,) and set(np.unique(y)) == set(range(20))
    assert np.bincount(y).min() > 0.5 * n / 20
    X2, y2 = sparse_bench.tfidf_like(n, d, density, classes=20, seed=3)
    assert (X2 != X).nnz == 0 and (y2 == y).all()
    X3, _ = sparse_bench.tfidf_like(n, d, density, classes=20, seed=4)
    assert (X3 != X).nnz > 0


def test_tfidf_like_labels_are_learnable(sparse_bench):
    """The classes show in the columns: a nearest-centroid rule on half the rows gets well above
    chance (1/20: 0.05) on the other half, and below 1 (10 % of the labels are random)."""
    X, y = sparse_bench.tfidf_like(4000, 5000, 0.01, classes=20, seed=0)
    Xa, ya, Xb, yb = X[:2000], y[:2000], X[2000:], y[2000:]
    centroids = np.vstack([np.asarray(Xa[ya == k].mean(axis=0)) for k in range(20)])
    accuracy = (np.argmax(np.asarray(Xb @ centroids.T), axis=1) == yb).mean()
    assert 0.2 < accuracy < 0.95, accuracy


def test_onehot_pipeline_output_stays_sparse(sparse_bench):
    """Section (b)'s ColumnTransformer: a CSR matrix of one column per level seen plus the five
    numeric ones, 8 + 5 stored entries a row; unseen levels of held-out rows ignored."""
    pytest.importorskip("sklearn")
    pytest.importorskip("pandas")
    df, y = sparse_bench.onehot_frame(3000, seed=1)
    assert df.shape == (3000, 13) and set(np.unique(y)) <= set(range(10))
    assert [df[f"cat{j}"].nunique() for j in range(8)][0] == sparse_bench.LEVELS_B[0]
    ct, mlp = sparse_bench.onehot_pipeline_parts("mlp")
    Xt = ct.fit_transform(df.iloc[:2000])
    levels = sum(df.iloc[:2000][f"cat{j}"].nunique() for j in range(8))
    assert Xt.format == "csr" and Xt.shape == (2000, levels + 5) and mlp == "mlp"
    assert (np.diff(Xt.indptr) == 13).all()
    Xh = ct.transform(df.iloc[2000:])
    assert Xh.shape[1] == levels + 5 and (np.diff(Xh.indptr) <= 13).all()


def test_crossover_density(sparse_bench):
    f = sparse_bench.crossover_density
    dens = [0.001, 0.01, 0.1, 1.0]
    assert f(dens, [3.0, 2.0, 1.5, 1.2]) == (None, None)           # tiles never win
    assert f(dens, [0.5, 0.5, 0.4, 0.3]) == (0.001, 0.0)           # tiles always win
    first, crossing = f(dens, [4.0, 2.0, 0.5, 0.25])
    assert first == 0.1 and crossing == pytest.approx(0.01 * 10 ** 0.5)   # log-log midpoint
    # a win at one density only, below a loss: not a crossover
    assert f(dens, [4.0, 0.9, 1.1, 1.2]) == (None, None)
    assert f(dens, [4.0, 0.9, 1.1, 0.8])[0] == 1.0


def test_gradient_flops(sparse_bench):
    # 4 nnz d(1) for the first layer, 6 (d(1) + 1) d(2) N above
    assert sparse_bench.gradient_flops(1000, [100000, 128, 20], 50) == (
        4 * 1000 * 128 + 6 * 129 * 20 * 50)


def test_peak_memory_of_a_child_is_its_own(tmp_path):
    """The probe the fits' memory is measured with, in a child started by a parent that has
    used 400 MB: after the reset the child's peak is its RSS (not the parent's peak, which
    getrusage's ru_maxrss reports), and 200 MB allocated after it show in full."""
    if not os.path.isdir(BENCH):
        pytest.skip("bench/ is not next to tests/ (an installed test run)")
    if not os.path.exists("/proc/self/status"):
        pytest.skip("no /proc (not Linux)")
    code = f"""
import resource, sys
import numpy as np
import importlib.util
spec = importlib.util.spec_from_file_location("fastbp_bench_sparse", {SCRIPT!r})
sparse = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sparse)
rss = sparse._rss()
reset = sparse._reset_peak()
before = sparse._peak() - rss
a = np.ones(200 * 2**20 // 8)
after = sparse._peak() - rss
print(reset, before, after, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss)
"""
    ballast = np.ones(400 * 2**20 // 8)         # this process's peak: 400 MB more
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=str(tmp_path), timeout=120)
    del ballast
    assert out.returncode == 0, out.stderr[-2000:]
    reset, before, after, maxrss = out.stdout.split()
    before, after = int(before), int(after)
    assert abs(before) < 16 * 2**20, before
    assert 195 * 2**20 < after < 260 * 2**20, after
    if reset == "True":
        # the reason for VmHWM: ru_maxrss reports at least this process's peak
        assert int(maxrss) > 350 * 2**20, maxrss


def test_quick_run(tmp_path):
    """bench/sparse.py --quick end to end (fits in child processes, every section): the JSON
    has each fit's time, its peak memory (measured: positive, and a fit's, not the loading's),
    scores that agree, the gradient contenders that agree with fastbp, the crossover rows; the
    PNG is written when matplotlib is there."""
    if not os.path.isdir(BENCH):
        pytest.skip("bench/ is not next to tests/ (an installed test run)")
    for module in ("sklearn", "scipy", "pandas"):
        pytest.importorskip(module)
    png, record = tmp_path / "sparse.png", tmp_path / "sparse.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    out = subprocess.run([sys.executable, SCRIPT, "--quick",
                          "--out", str(png), "--json", str(record)],
                         capture_output=True, text=True, cwd=str(tmp_path), env=env,
                         timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "| problem |" in out.stdout and "| density |" in out.stdout
    with open(record) as f:
        rec = json.load(f)
    assert rec["meta"]["quick"] and rec["meta"]["rounds"] == 1
    assert [r["problem"] for r in rec["fits"]] == ["tfidf 0.001", "tfidf 0.01",
                                                  "onehot pipeline"]
    for r in rec["fits"]:
        for side in ("sklearn", "fastbp"):
            assert r[f"{side}_errors"] == [], r[f"{side}_errors"]
            assert r[f"{side}_fit_s"] > 0 and r[f"{side}_n_iter"] == 5
            assert 0 < r[f"{side}_peak_bytes"] < 2**31 and r[f"{side}_peak_is_fit"]
            (run,) = r["runs"][side]
            assert run["rss_data"] > run["rss_start"]
        assert r["scores_equal"] and r["memory_ratio"] > 0 and r["speedup"] > 0
    assert rec["fits"][2]["format"] == "csr" and rec["fits"][2]["nnz"] == 13 * 4000
    grads = rec["gradient"]
    assert [(g["density"], g["dtype"]) for g in grads] == [(0.001, "float64"),
                                                           (0.01, "float64")]
    for g in grads:
        assert set(g["median_s"]) >= {"fastbp", "fastbp tiles"}
        assert all(e <= 1e-10 for e in g["check_errors"].values()), g["check_errors"]
        assert g["gflops"] > 0 and g["dense_subset"]["check_error"] <= 1e-10
    cross = rec["crossover"]
    assert [c["widths"] for c in cross] == [[300, 32, 10], [1000, 32, 10]]
    for c in cross:
        assert [p["density"] for p in c["points"]] == [0.003, 0.03, 0.3]
        assert all(p["ratio"] > 0 and p["check_error"] <= 1e-10 for p in c["points"])
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert png.stat().st_size > 10_000
