"""The benchmark's LIBXSMM peer (bench/libxsmm_peer.c) against fastbp.gradient, and the small
problem's data (bench/train_small.py). Skipped where LIBXSMM (libxsmm-dev), a C compiler or
scikit-learn is missing: they are benchmark tools, not fastbp's dependencies."""
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import fastbp

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")


@contextlib.contextmanager
def _bench_on_path():
    """bench/ importable for the duration only: the bench scripts put their folder on sys.path
    when imported, and a bench/ left there shadows packages in processes started later (Dask's
    workers inherit sys.path, and bench/distributed.py hides the `distributed` package)."""
    saved = list(sys.path)
    sys.path.insert(0, BENCH)
    try:
        yield
    finally:
        sys.path[:] = saved


@pytest.fixture(scope="module")
def peers(tmp_path_factory):
    if not os.path.isdir(BENCH):
        pytest.skip("bench/ is not next to tests/ (an installed test run)")
    if not os.path.exists("/usr/include/libxsmm.h"):
        pytest.skip("LIBXSMM not installed (apt-get install libxsmm-dev)")
    if shutil.which(os.environ.get("CC", "cc")) is None:
        pytest.skip("no C compiler")
    with _bench_on_path():
        import peers
    peers.libxsmm_build(out_dir=str(tmp_path_factory.mktemp("libxsmm_peer")))
    return peers


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 1e-4)])
@pytest.mark.parametrize("num_threads", [1, 2])
@pytest.mark.parametrize("output", ["tanh", "linear"])
@pytest.mark.parametrize("widths, n", [([3, 5, 4, 2], 130), ([2, 1], 64), ([4, 7, 1], 3)])
def test_libxsmm_peer_matches_fastbp(peers, dtype, rtol, num_threads, output, widths, n):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, widths[0])).astype(dtype)
    y = rng.uniform(-0.8, 0.8, (n, widths[-1])).astype(dtype)
    weights = fastbp.init_weights(widths, seed=1, dtype=dtype)
    p = peers.prepare_libxsmm(weights, X, y, num_threads, output)
    try:
        E, grads = p.convert(p.run())
    finally:
        p.close()
    E0, grads0 = fastbp.gradient(weights, X, y, output=output, num_threads=1)
    assert E == pytest.approx(float(E0), rel=rtol)
    for g, g0 in zip(grads, grads0):
        assert g.dtype == dtype and g.shape == g0.shape
        np.testing.assert_allclose(g, g0, rtol=0, atol=rtol * np.max(np.abs(g0)))


def test_small_problem_data():
    pytest.importorskip("sklearn")
    if not os.path.isdir(BENCH):
        pytest.skip("bench/ is not next to tests/")
    with _bench_on_path():
        from train_small import digits_1_vs_5
    X, y = digits_1_vs_5()
    assert X.shape == (364, 2) and y.shape == (364, 1)
    assert np.allclose(X.min(axis=0), -1) and np.allclose(X.max(axis=0), 1)
    assert sorted(np.unique(y)) == [-1.0, 1.0] and (y > 0).sum() == 182


@pytest.mark.parametrize("dtype", ["double", "float"])
def test_kernel_timer_builds_and_runs(tmp_path, dtype):
    """bench/kernels.c (the micro-kernels one by one) compiles against today's fastbp/_simd.h and
    times every kernel of a small network on every kernel set this CPU has: a change of a
    kernel's signature must not leave the tool behind (an `outer` argument once did)."""
    cc = shutil.which(os.environ.get("CC", "cc"))
    if cc is None:
        pytest.skip("no C compiler")
    if not os.path.isdir(BENCH):
        pytest.skip("bench/ is not next to tests/ (an installed test run)")
    exe = str(tmp_path / "kernels")
    subprocess.run([cc, "-O1", "-o", exe, os.path.join(BENCH, "kernels.c"), "-lm"], check=True)
    for kernel_set in ("baseline", "avx2+fma", "avx512"):
        out = subprocess.run([exe, dtype, kernel_set, "3.0", "3", "5", "1"], check=True,
                             capture_output=True, text=True, timeout=60).stdout.splitlines()
        labels = [re.match(r"(.*?)\s+[\d.]+ us", line).group(1) for line in out[1:]]
        # 2 layers: forward + activation each, one backward + derivative, 2 outer products, sum
        assert labels == ["linear forward  4 -> 5", "tanh            5 rows",
                          "linear forward  6 -> 1", "tanh            1 rows",
                          "linear backward 1 -> 5", "dtanh_mul       5 rows",
                          "outer           4 x 5", "outer           6 x 1", "sum"], out
        assert float(out[-1].split()[-2]) > 0


def _bench_module(name):
    if not os.path.isdir(BENCH):
        pytest.skip("bench/ is not next to tests/ (an installed test run)")
    with _bench_on_path():
        return __import__(name)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("output, activation", [("tanh", "tanh"), ("linear", "tanh"),
                                                ("linear", "relu")])
def test_torch_model_computes_fastbp_forward(dtype, rtol, output, activation):
    """bench/_common.torch_model, the PyTorch network the peers and the training benchmarks
    build from fastbp's weights: its outputs are fastbp.forward's, a tanh after the output layer
    exactly when fastbp's output is tanh; torch_set_weights copies other weights in."""
    torch = pytest.importorskip("torch")
    _common = _bench_module("_common")
    rng = np.random.default_rng(4)
    widths = [3, 6, 5, 2]
    weights = [w * 1.5 for w in fastbp.init_weights(widths, seed=2, dtype=dtype)]
    X = rng.standard_normal((50, 3)).astype(dtype)
    model = _common.torch_model(weights, output, activation, threads=1)

    def outputs():
        with torch.no_grad():
            return model(torch.from_numpy(X)).numpy()
    want = fastbp.forward(weights, X, output=output, activation=activation)
    got = outputs()
    assert got.dtype == dtype and got.shape == (50, 2)
    np.testing.assert_allclose(got, want, rtol=0, atol=rtol * np.abs(want).max())
    other = "linear" if output == "tanh" else "tanh"       # the other output: not the same
    assert not np.allclose(got, fastbp.forward(weights, X, output=other, activation=activation),
                           rtol=0, atol=1e-3)
    moved = [w + dtype(0.25) for w in weights]
    _common.torch_set_weights(model, moved)
    want = fastbp.forward(moved, X, output=output, activation=activation)
    np.testing.assert_allclose(outputs(), want, rtol=0, atol=rtol * np.abs(want).max())
    with pytest.raises(ValueError, match="output must be 'tanh' or 'linear', got 'softmax'"):
        _common.torch_model(weights, "softmax")


@pytest.mark.parametrize("output, activation", [("tanh", "tanh"), ("linear", "tanh"),
                                                ("softmax", "relu")])
def test_torch_peer_matches_fastbp(output, activation):
    """The PyTorch peer (eager) on torch_model's network: fastbp's E_in and gradient, converted
    from nn.Linear's layout."""
    pytest.importorskip("torch")
    peers = _bench_module("peers")
    rng = np.random.default_rng(5)
    widths = [4, 7, 3]
    weights = fastbp.init_weights(widths, seed=3)
    X = rng.standard_normal((40, 4))
    y = (np.eye(3)[rng.integers(0, 3, 40)] if output == "softmax"
         else rng.uniform(-0.8, 0.8, (40, 3)))
    if output == "softmax":
        p = peers.prepare("torch", weights, X, y, 1, activation=activation, output=output)
    else:
        p = peers.prepare_torch(weights, X, y, 1, output)
    assert p.output == output
    E, grads = p.convert(p.run())
    E0, grads0 = fastbp.gradient(weights, X, y, output=output, activation=activation)
    assert E == pytest.approx(E0, rel=1e-12)
    for g, g0 in zip(grads, grads0):
        assert g.shape == g0.shape
        np.testing.assert_allclose(g, g0, rtol=0, atol=1e-12 * np.abs(g0).max())


def test_done_flops_count_what_backpropagation_does():
    """bench/_common.done_flops, the flops of "% of the FMA peak": forward and gradient products
    of every layer, backward products of every layer but the first, no bias row in them."""
    if not os.path.isdir(BENCH):
        pytest.skip("bench/ is not next to tests/ (an installed test run)")
    with _bench_on_path():
        import _common
    # [2, 3, 1]: forward 2 (3*3 + 4*1), gradient the same, backward delta(1) from delta(2): 2*3*1
    assert _common.done_flops([2, 3, 1]) == 26 + 26 + 6
    assert _common.done_flops([4, 7]) == 2 * 5 * 7 * 2           # no hidden layer: no backward
    assert _common.done_flops([784, 256, 256, 10]) == (
        4 * (785 * 256 + 257 * 256 + 257 * 10) + 2 * (256 * 256 + 256 * 10))
    assert _common.work_flops([784, 256, 256, 10]) - _common.done_flops([784, 256, 256, 10]) == (
        2 * 784 * 256 + 2 * (256 + 256 + 10))


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].split() for line in f
                         if line.startswith("flags")), [])
    except OSError:
        return None


def test_fma_peak_probe(tmp_path, monkeypatch):
    """bench/fma_peak.c builds without -march and measures each kernel set this CPU has; a set it
    lacks, or one the probe does not know, gives None (never a crash: an illegal instruction would
    kill the benchmark)."""
    if shutil.which(os.environ.get("CC", "cc")) is None:
        pytest.skip("no C compiler")
    if not os.path.isdir(BENCH):
        pytest.skip("bench/ is not next to tests/ (an installed test run)")
    flags = _cpu_flags()
    if flags is None or "sse2" not in flags:
        pytest.skip("not an x86-64 Linux machine")
    with _bench_on_path():
        import _common
    monkeypatch.setattr(_common, "HERE", str(tmp_path))     # build into tmp_path
    monkeypatch.setattr(_common, "FMA_PEAK_SOURCE", os.path.join(BENCH, "fma_peak.c"))
    has = {"baseline": True, "avx2+fma": "avx2" in flags and "fma" in flags,
           "avx512": "avx512f" in flags}
    assert set(has) == set(_common.FMA_PEAK_ISA)
    # every kernel set fastbp can run has its probe, under the name fastbp gives it (the child
    # runs in tmp_path: from the checkout's root, its source tree would shadow the installed
    # fastbp)
    code = "import fastbp._api as a; print(a.ISA)"
    for simd in ("baseline", "avx2", ""):
        child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               cwd=str(tmp_path), env={**os.environ, "FASTBP_SIMD": simd})
        assert child.returncode == 0, child.stderr[-2000:]
        assert child.stdout.strip() in has, child.stdout
    for isa, present in has.items():
        for dtype in ("float64", "float32"):
            for threads in (1, 2):
                gflops = _common.fma_peak(dtype, threads, isa, seconds=0.02)
                if present:
                    assert gflops is not None and 0 < gflops < 1e5, (isa, dtype, threads, gflops)
                else:
                    assert gflops is None, (isa, dtype)
    assert _common.fma_peak("float64", 1, "neon") is None
    assert list(tmp_path.glob("results/fma_peak-*.so"))


def test_torch_compile_peer_compiles_every_configuration(tmp_path):
    """Dynamo stops compiling a code object after recompile_limit graphs and runs it eagerly: the
    torch.compile peer, one loss function for every configuration, ran E float32 and A32 as
    plain PyTorch in full compare.py runs. With the limit lowered to 2, three configurations in
    one process must still give three compiled graphs."""
    pytest.importorskip("torch")
    if not os.path.isdir(BENCH):
        pytest.skip("bench/ is not next to tests/ (an installed test run)")
    code = f"""
import sys
import numpy as np
sys.path.insert(0, {BENCH!r})
import torch._dynamo.config
from torch._dynamo.utils import counters
import fastbp, peers
torch._dynamo.config.recompile_limit = 2
for k, dtype in enumerate((np.float64, np.float32, np.float64)):
    widths, n = [2, 3 + k, 1], 8 + k
    w = fastbp.init_weights(widths, seed=0, dtype=dtype)
    p = peers.prepare("torch.compile", w, np.ones((n, 2), dtype), np.zeros((n, 1), dtype), 1)
    p.run()
print(counters["stats"]["unique_graphs"])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=str(tmp_path), timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split()[-1] == "3", out.stdout + out.stderr[-3000:]


def test_libxsmm_peer_leaves_openmp_binding_alone(peers, tmp_path):
    """LIBXSMM's first JIT sets OMP_PROC_BIND=TRUE in the process's C environment, which made an
    OpenMP runtime loaded later (scikit-learn's) bind the main thread, and every thread started
    from it, to CPU 0. In a fresh process: the peer's first use, then scikit-learn's OpenMP."""
    pytest.importorskip("sklearn")
    code = f"""
import ctypes, os, sys
import numpy as np
sys.path.insert(0, {BENCH!r})
import peers
import fastbp
libc = ctypes.CDLL(None)
libc.getenv.restype = ctypes.c_char_p
cpus = os.sched_getaffinity(0)
peers.libxsmm_build(out_dir={str(tmp_path)!r})
w = fastbp.init_weights([3, 4, 1], seed=0)
p = peers.prepare_libxsmm(w, np.zeros((64, 3)), np.zeros((64, 1)), 1)
p.run()
p.close()
import sklearn.cluster  # loads scikit-learn's OpenMP runtime
print(libc.getenv(b"OMP_PROC_BIND"), os.sched_getaffinity(0) == cpus)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(tmp_path), env={k: v for k, v in os.environ.items()
                                                 if k not in ("OMP_PROC_BIND", "OMP_PLACES")})
    assert out.stdout.split() == ["None", "True"], out.stdout + out.stderr


def test_ab_tool_times_two_builds_in_turn():
    """bench/ab.py (before/after figures of a kernel change) runs a case through two workers;
    here both are this interpreter's fastbp, one small case, and the table has its ratio."""
    if not os.path.isdir(BENCH):
        pytest.skip("bench/ is not next to tests/ (an installed test run)")
    with _bench_on_path():
        import ab
        ratios = ab.main(["--old", sys.executable, "--new", sys.executable,
                          "--cases", "A:float64:1,A:float64:2", "--rounds", "2", "--calls", "1"])
    assert set(ratios) == {"A:float64:1", "A:float64:2"}
    assert all(0 < r < float("inf") for r in ratios.values())
    with pytest.raises(SystemExit), _bench_on_path():
        ab.main(["--old", sys.executable, "--cases", "D:float64"])


def test_compare_times_a_row_in_turn(tmp_path):
    """bench/compare.py --interleave: fastbp and the peers of a row timed in rounds, each round
    every implementation in turn; every timed record keeps its rounds' medians, and the JSON says
    how the run was timed."""
    if not os.path.isdir(BENCH):
        pytest.skip("bench/ is not next to tests/ (an installed test run)")
    with _bench_on_path():
        import compare
        compare.main(["--quick", "--configs", "A32", "--peers", "numpy,reference",
                      "--interleave", "3", "--no-chart", "--out-dir", str(tmp_path)])
    (path,) = list(tmp_path.glob("compare-*.json"))
    with open(path) as f:
        result = json.load(f)
    assert result["meta"]["timing"]["method"] == "in turn"
    assert result["meta"]["timing"]["rounds"] == 3
    rows = {r["impl"]: r for r in result["rows"] if r["config"] == "A32"}
    for impl in ("fastbp", "fastbp-1thread", "numpy"):
        assert rows[impl]["status"] == "ok"
        assert rows[impl]["rounds"] == 3 and len(rows[impl]["round_medians_s"]) == 3
        assert rows[impl]["median_s"] == pytest.approx(
            sorted(rows[impl]["round_medians_s"])[1])
    # the reference is timed once, apart from the rounds
    assert rows["reference"]["status"] == "ok" and "rounds" not in rows["reference"]
    assert [r["impl"] for r in result["rows"]][:2] == ["fastbp", "fastbp-1thread"]
    # the FMA peak of fastbp's kernel set, measured at the start and the end, the better kept
    fma = result["meta"]["fma_peak_gflops"]
    if shutil.which(os.environ.get("CC", "cc")) and _cpu_flags():
        assert fma["isa"] == result["meta"]["fastbp_kernels"]
        for dt in ("float64", "float32"):
            both = [result["meta"]["fma_peak_by_time"][t][dt] for t in ("start", "end")]
            assert fma[dt] == max(both) > 0
        assert rows["fastbp"]["pct_fma_peak"] == pytest.approx(
            100 * rows["fastbp"]["gflops_done"] / fma["float64"])


def test_compare_records_a_peer_that_fails_in_the_rounds(tmp_path, monkeypatch):
    """A peer that raises while the row is timed in turn is recorded as an error, with its
    traceback; fastbp's rows are still timed."""
    if not os.path.isdir(BENCH):
        pytest.skip("bench/ is not next to tests/ (an installed test run)")
    with _bench_on_path():
        import compare
        import peers
        prepare = peers.prepare

        def failing_numpy(name, *args, **kwargs):
            p = prepare(name, *args, **kwargs)
            if name == "numpy":
                calls = []

                def run(first=p.run):
                    calls.append(1)
                    if len(calls) > 1:              # the check passes, the rounds fail
                        raise RuntimeError("peer failed while timed")
                    return first()
                p.run = run
            return p

        monkeypatch.setattr(peers, "prepare", failing_numpy)
        compare.main(["--quick", "--configs", "A32", "--peers", "numpy", "--interleave", "2",
                      "--no-chart", "--out-dir", str(tmp_path)])
    (path,) = list(tmp_path.glob("compare-*.json"))
    with open(path) as f:
        rows = {r["impl"]: r for r in json.load(f)["rows"]}
    assert rows["numpy"]["status"] == "error"
    assert rows["numpy"]["error"] == "RuntimeError: peer failed while timed"
    assert "Traceback" in rows["numpy"]["traceback"]
    assert rows["fastbp"]["status"] == "ok" and rows["fastbp"]["rounds"] == 2


def test_fma_peaks_best_of_the_measurements():
    """bench/_common.best_fma_peaks keeps, dtype by dtype and thread count by thread count, the
    better of the start's and the end's peaks; a missing measurement gives None."""
    _common = _bench_module("_common")
    start = {"float64": {1: 50.0, 2: 90.0}, "float32": {1: 100.0, 2: 170.0}}
    end = {"float64": {1: 55.0, 2: 80.0}, "float32": {1: 90.0, 2: 180.0}}
    assert _common.best_fma_peaks(start, end) == {"float64": {1: 55.0, 2: 90.0},
                                                  "float32": {1: 100.0, 2: 180.0}}
    assert _common.best_fma_peaks(start, None) is None
    assert _common.fma_peaks_text({"float64": {2: 117.5, 1: 58.7}}) == (
        "float64: 1 thread 58.7, 2 threads 117.5 GFLOP/s")
    assert _common.fma_peaks_text(None) == "not measured"
    assert _common.n_params([64, 100, 10]) == 65 * 100 + 101 * 10
    assert _common.work_flops([64, 100, 10]) == 6 * _common.n_params([64, 100, 10])


@pytest.mark.parametrize("method", ["adam", "sgd+nesterov"])
@pytest.mark.parametrize("activation, output", [("relu", "softmax"), ("tanh", "tanh")])
def test_train_epoch_times_fits_epoch(monkeypatch, method, activation, output):
    """bench/train_epoch.py's mini-batch steps section times fastbp._api.sgd_epoch directly: its
    epoch leaves bitwise the weights fit's epoch leaves (on 1 and 3 threads), and the check
    notices when it does not (another learning rate in the timed call than in fit's)."""
    train_epoch = _bench_module("train_epoch")
    widths = [5, 6, 3] if output == "softmax" else [5, 6, 1]
    weights0, X, Y = train_epoch.step_problem(widths, output, 53)
    train_epoch.check_against_fit(weights0, X, Y, 7, method, activation, output, 3)
    rule, lr, momentum, fit_options = train_epoch.STEP_METHODS[method]
    monkeypatch.setitem(train_epoch.STEP_METHODS, method, (rule, lr * 2, momentum, fit_options))
    with pytest.raises(RuntimeError, match="is not fit's"):
        train_epoch.check_against_fit(weights0, X, Y, 7, method, activation, output, 3)


def test_train_epoch_steps_rows(monkeypatch):
    """The section's rows on small networks: both thread counts timed every round, the ratio of
    the medians, the flops of an epoch 6 x weights x N."""
    train_epoch = _bench_module("train_epoch")
    monkeypatch.setattr(train_epoch, "STEP_NETS", [
        ("a", [4, 6, 3], "relu", "softmax", 999, 90, 20, 1.6),
        ("b", [3, 5, 1], "tanh", "tanh", 999, 70, 8, 0.95)])
    rows = train_epoch.steps_runs(threads=2, rounds=3, min_sample=0.0, quick=True)
    assert [(r["net"], r["method"]) for r in rows] == [
        ("a", "adam"), ("a", "sgd+nesterov"), ("b", "adam"), ("b", "sgd+nesterov")]
    for r in rows:
        assert sorted(r["times_s"]) == [1, 2] and all(len(v) == 3 for v in r["times_s"].values())
        assert r["speedup"] == pytest.approx(r["median_s"][1] / r["median_s"][2])
        assert r["N"] == (90 if r["net"] == "a" else 70) and r["bitwise_equal"]
    assert rows[0]["flops_per_epoch"] == 6 * (5 * 6 + 7 * 3) * 90


def test_sklearn_mlp_row_and_fma():
    """bench/sklearn_mlp.py's row: both sides fitted --repeats times, the same epochs and score,
    the flops 6 x weights x samples x epochs, %FMA from the median and the peak of the dtype."""
    pytest.importorskip("sklearn")
    sklearn_mlp = _bench_module("sklearn_mlp")
    from sklearn.datasets import load_digits
    digits = load_digits()
    X, y = digits.data[:300] / 16.0, digits.target[:300]
    params = dict(hidden_layer_sizes=(10,), solver="adam", batch_size=50, max_iter=2,
                  n_iter_no_change=1000)
    for dtype, peak in ((np.float64, 10.0), (np.float32, 20.0)):
        rec = sklearn_mlp.run_row(("t", "MLPClassifier", X.astype(dtype), y, params, 0.0, 60.0),
                                  threads=2, repeats=2)
        assert rec["dtype"] == np.dtype(dtype).name
        assert len(rec["sklearn_times_s"]) == len(rec["fastbp_times_s"]) == 2
        assert rec["n_iter_fastbp"] == rec["n_iter_sklearn"] == 2
        assert rec["scores_equal"], (rec["score_sklearn"], rec["score_fastbp"])
        assert rec["flops_fastbp"] == 6 * (65 * 10 + 11 * 10) * 300 * 2
        sklearn_mlp.add_fma(rec, {rec["dtype"]: {2: peak, 4: 2 * peak}}, threads=2, cpus=4)
        assert rec["pct_fma_fastbp"] == pytest.approx(
            100 * rec["flops_fastbp"] / rec["fastbp_s"] / 1e9 / peak)
        assert rec["pct_fma_sklearn"] == pytest.approx(
            100 * rec["flops_sklearn"] / rec["sklearn_s"] / 1e9 / (2 * peak))
        # met: speed-up >= its target (0 here), scores equal, and %FMA >= 60 %
        rate = rec["flops_fastbp"] / rec["fastbp_s"] / 1e9
        for pct, met in ((50.0, False), (70.0, True)):
            sklearn_mlp.add_fma(rec, {rec["dtype"]: {2: 100 * rate / pct}}, threads=2, cpus=2)
            assert rec["pct_fma_fastbp"] == pytest.approx(pct) and rec["met"] is met
