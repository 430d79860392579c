"""The kernel driver's contracts: the codes it knows (an unknown one fails loudly, before any
kernel runs), the kernel sets it chooses by name, one chunk loop for every caller (bitwise the
same sums on 1 to 4 threads, oversubscribed included), and fastbp.sklearn's full-batch solvers
run in the kernel's blocks of epochs, bitwise as their epoch-by-epoch NumPy path."""
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import fastbp
from _helpers import bitwise_equal
from fastbp import _api, _core, _methods


def _problem(widths, n, dtype="float64", seed=0):
    rng = np.random.default_rng(seed)
    w = fastbp.init_weights(widths, seed=seed, dtype=dtype)
    X = rng.standard_normal((n, widths[0])).astype(dtype)
    y = np.tanh(rng.standard_normal((n, widths[-1]))).astype(dtype)
    return w, X, y


@pytest.mark.parametrize("spec, name", [((9, 0, None), "activation"), ((0, 5, None), "output"),
                                         ((-1, 0, None), "activation"), ((0, 77, None), "output")])
def test_an_unknown_unit_or_output_code_is_refused_before_any_kernel_runs(spec, name):
    w, X, y = _problem([3, 4, 2], 10)
    grads = [np.full_like(a, 7.0) for a in w]
    with pytest.raises(ValueError, match=f"{name} code must be one of"):
        _core.run(w, [3, 4, 2], spec, X, y, None, _api._GRADIENT, 1, 64, 512, 1, grads)
    assert all((g == 7.0).all() for g in grads)


def test_kernel_sets_by_name():
    sets = _core.kernel_sets()
    names = [name for name, _ in sets]
    assert names[-1] == "baseline" and dict(sets)["baseline"] is True
    assert len(set(names)) == len(names)
    if not os.environ.get("FASTBP_SIMD"):
        assert _api.ISA == next(name for name, runs in sets if runs)
    try:
        # a cap picks that set where the CPU runs it, else the best below it
        for i, (name, _) in enumerate(sets):
            expect = next(n for n, runs in sets[i:] if runs)
            assert _core.select_kernels(name) == expect
        assert _core.select_kernels("no-such-set") == next(n for n, runs in sets if runs)
    finally:
        assert _core.select_kernels(_api._SIMD_ALIASES.get(
            os.environ.get("FASTBP_SIMD", "").strip().lower(),
            os.environ.get("FASTBP_SIMD", "").strip().lower())) == _api.ISA


@pytest.mark.parametrize("simd", ["none", "0", "baseline", "avx2", "AVX512 ", "nonsense"])
def test_fastbp_simd_spellings(simd):
    here = os.path.dirname(os.path.abspath(__file__))
    code = ("from fastbp import _api, _core\n"
            "print(_api.ISA, [n for n, r in _core.kernel_sets() if r])\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=here, capture_output=True, text=True,
                         env=dict(os.environ, FASTBP_SIMD=simd), timeout=120)
    assert res.returncode == 0, res.stderr
    isa, runnable = res.stdout.split(" ", 1)
    runnable = eval(runnable)
    names = [n for n, _ in _core.kernel_sets()]
    cap = {"none": "baseline", "0": "baseline", "avx2": "avx2+fma"}.get(
        simd.strip().lower(), simd.strip().lower())
    first = names.index(cap) if cap in names else 0
    assert isa == next(n for n in names[first:] if n in runnable)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("widths", [[5, 1], [7, 33, 4], [3, 9, 9, 9, 2]])
def test_the_chunk_loop_is_bitwise_the_same_on_one_to_four_threads(widths, dtype, monkeypatch):
    """One chunk loop serves gradient, error and forward: with small chunks (many rounds, more
    chunks than threads, a short last round) every thread count gives the one-thread bits,
    oversubscribed (3, 4 threads on this machine) included."""
    monkeypatch.setattr(_api, "_SERIAL_FLOPS", 0)
    monkeypatch.setattr(_api, "_MAX_SLOTS_PER_THREAD", 1)
    w, X, y = _problem(widths, 64 * 37 + 5, dtype)
    sw = np.random.default_rng(3).random(len(X)).astype(dtype)
    results = []
    for threads in (1, 2, 3, 4):
        monkeypatch.setattr(_api, "available_threads", lambda: 4)
        E, g = fastbp.gradient(w, X, y, num_threads=threads, sample_weight=sw)
        e = fastbp.error(w, X, y, num_threads=threads)
        results.append((E, g, e))
    for E, g, e in results[1:]:
        assert E == results[0][0] and e == results[0][2]
        assert bitwise_equal(g, results[0][1])


SKLEARN_SOLVERS = ["gd", "variable-lr", "rprop"]


@pytest.mark.parametrize("solver", SKLEARN_SOLVERS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind", ["classifier", "regressor"])
@pytest.mark.parametrize("tol", [0.0, 3e-3])
def test_sklearn_full_batch_solvers_run_in_the_kernel(solver, dtype, kind, tol, monkeypatch):
    """fastbp.sklearn's full-batch solvers (scikit-learn's loss: its L2 term on the coefficients
    only, its factors on the squared error; its n_iter_no_change rule) run their epochs in the
    kernel's blocks, and give bitwise the coefficients, loss curve and n_iter_ of the
    epoch-by-epoch NumPy path. With tol > 0 the rule stops the fit inside a block: the block is
    run again up to that epoch."""
    pytest.importorskip("sklearn")
    from fastbp.sklearn import MLPClassifier, MLPRegressor
    rng = np.random.default_rng(5)
    X = rng.standard_normal((700, 6)).astype(dtype)
    sw = rng.random(700)
    if kind == "classifier":
        y = rng.integers(0, 3, 700)
        params = dict(hidden_layer_sizes=(7, 4))
    else:
        y = np.tanh(X[:, :2].astype(float)).sum(axis=1)
        params = dict(hidden_layer_sizes=(8,), activation="relu")
    model = MLPClassifier if kind == "classifier" else MLPRegressor
    calls = []
    real = _api.full_batch_epochs

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(_api, "full_batch_epochs", counted)
    fits = []
    for kernel in (False, True):
        monkeypatch.setattr(_methods, "KERNEL_EPOCHS", kernel)
        calls.clear()
        est = model(solver=solver, max_iter=60, random_state=0, alpha=0.01, tol=tol,
                    n_iter_no_change=3, **params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X, y, sample_weight=sw)
        fits.append((est, len(calls)))
    (python, n_python), (kernel, n_kernel) = fits
    assert n_python == 0
    # one block for the whole fit, and one more where the rule stopped it inside the first
    assert 1 <= n_kernel <= 2 < kernel.n_iter_
    if tol == 0.0:
        assert kernel.n_iter_ == 60
    assert python.n_iter_ == kernel.n_iter_
    assert bitwise_equal(python.coefs_ + python.intercepts_, kernel.coefs_ + kernel.intercepts_)
    assert [repr(v) for v in python.loss_curve_] == [repr(v) for v in kernel.loss_curve_]


def test_large_work_buffers_kept_for_reuse_start_from_zero():
    """The aligned allocator keeps freed blocks of 16 MiB or more for the next call (_simd.h):
    a kept block is handed out cleared. Gradients of >16 MiB of sums, alternating between two
    data sets and dtypes, give each data set's first result bit for bit."""
    widths = [30000, 70, 2]                 # 2.1 M weights: 17 MB of float64 sums
    rng = np.random.default_rng(5)
    w = fastbp.init_weights(widths, seed=1)
    X1, X2 = rng.standard_normal((40, 30000)), rng.standard_normal((60, 30000))
    y1, y2 = rng.standard_normal((40, 2)), rng.standard_normal((60, 2))
    first = fastbp.gradient(w, X1, y1)
    fastbp.gradient(w, X2, y2)
    fastbp.gradient([a.astype(np.float32) for a in w], X2, y2)
    again = fastbp.gradient(w, X1, y1)
    assert first[0] == again[0]
    assert all(np.array_equal(a, b) for a, b in zip(first[1], again[1]))
