"""fastbp's compiled gradient against the reference, finite differences, and itself across
threads."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastbp
from _helpers import bitwise_equal, make_problem, rel_err
from fastbp import _api, _core, reference

SHAPES = {
    "one-unit": [1, 1, 1],
    "no-hidden": [3, 2],
    "no-hidden-one-unit": [1, 1],
    "small": [2, 3, 1],
    "multi-output": [4, 6, 3],
    "B": [8, 32, 32, 1],
    "deep": [3] + [5] * 8 + [2],
    "wide-odd": [13, 37, 11, 5],
}


def chunk_of(widths, dtype="float64"):
    return _api._plan(widths, 10**9, 2, np.dtype(dtype).itemsize)[2]


@pytest.mark.parametrize("output", ["tanh", "linear"])
@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("n", [1, 31, 33, 200])
def test_gradient_matches_reference_float64(name, output, n):
    widths = SHAPES[name]
    weights, X, y = make_problem(widths, n, seed=n)
    e, grads = fastbp.gradient(weights, X, y, output=output)
    e_ref, grads_ref = reference.gradient(weights, X, y, output=output)
    assert abs(e - e_ref) <= 1e-12 * abs(e_ref)
    assert len(grads) == len(weights)
    for g, g_ref, w in zip(grads, grads_ref, weights):
        assert g.shape == w.shape and g.dtype == np.float64
        assert rel_err(g, g_ref) < 1e-12
    out, out_ref = fastbp.forward(weights, X, output), reference.forward(weights, X, output)
    assert rel_err(out, out_ref) < 1e-12
    assert abs(fastbp.error(weights, X, y, output) - e_ref) <= 1e-12 * abs(e_ref)


@pytest.mark.parametrize("name", ["one-unit", "small", "B", "deep"])
def test_gradient_above_chunk_size_matches_reference(name):
    widths = SHAPES[name]
    n = chunk_of(widths) * 2 + 45  # three chunks, the last one partial
    weights, X, y = make_problem(widths, n, seed=3)
    e, grads = fastbp.gradient(weights, X, y, num_threads=2)
    e_ref, grads_ref = reference.gradient(weights, X, y)
    assert abs(e - e_ref) <= 1e-12 * abs(e_ref)
    for g, g_ref in zip(grads, grads_ref):
        assert rel_err(g, g_ref) < 1e-12


@pytest.mark.parametrize("output", ["tanh", "linear"])
@pytest.mark.parametrize("name", sorted(SHAPES))
def test_float32_close_to_float64(name, output):
    widths = SHAPES[name]
    weights, X, y = make_problem(widths, 500, seed=7)
    e64, g64 = fastbp.gradient(weights, X, y, output=output)
    w32 = [w.astype(np.float32) for w in weights]
    e32, g32 = fastbp.gradient(w32, X, y, output=output)  # X, y converted to float32
    assert isinstance(e32, float)
    assert abs(e32 - e64) <= 1e-5 * abs(e64)
    for a, b in zip(g32, g64):
        assert a.dtype == np.float32
        assert rel_err(a, b) < 1e-5
    out32 = fastbp.forward(w32, X, output)
    assert out32.dtype == np.float32
    assert rel_err(out32, fastbp.forward(weights, X, output)) < 1e-5


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ["small", "B", "deep", "multi-output", "wide"])
def test_bitwise_identical_across_thread_counts(name, dtype):
    # "wide" has enough parameters for the merge of chunk sums to be split over the threads
    widths = SHAPES[name] if name != "wide" else [64, 300, 10]
    n = chunk_of(widths, dtype) * 7 + 13
    weights, X, y = make_problem(widths, n, dtype=dtype, seed=11)
    # the test means something only if several threads really run
    assert _api._plan(widths, n, 3, np.dtype(dtype).itemsize)[0] == 3
    e1, g1 = fastbp.gradient(weights, X, y, num_threads=1)
    for threads in (2, 3, 7):
        e, g = fastbp.gradient(weights, X, y, num_threads=threads)
        assert e == e1
        for a, b in zip(g, g1):
            assert np.array_equal(a, b)
    e_again, g_again = fastbp.gradient(weights, X, y, num_threads=2)
    assert e_again == e1 and all(np.array_equal(a, b) for a, b in zip(g_again, g1))


def test_large_batches_take_larger_chunks():
    """A batch of 8 chunks or more of the network's own chunk is cut into larger chunks (up to 32
    tiles): the chunk grows with the batch, in whole tiles, and never depends on the threads."""
    widths = [8, 32, 32, 1]
    base = _api._layout_plan(tuple(widths), 8)[2]
    assert base == 8 * _api._TILE       # this network's own chunk is the smallest one
    chunks = []
    for n in (100, base, 8 * base, 9 * base, 10_000, 20_000, 10**6, 10**9):
        plans = [_api._plan(widths, n, threads, 8) for threads in (1, 2, 3)]
        chunk = plans[0][2]
        assert all(p[2] == chunk for p in plans)
        assert chunk % plans[0][1] == 0 and base <= chunk <= _api._MAX_CHUNK_TILES * _api._TILE
        # 8 chunks or more, unless they would be smaller than the network's own
        assert n // chunk >= _api._BALANCE_CHUNKS or chunk == base
        chunks.append(chunk)
    assert chunks == sorted(chunks)
    assert chunks[:4] == [base, base, base, base + _api._TILE]
    assert chunks[-1] == _api._MAX_CHUNK_TILES * _api._TILE


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_larger_chunks_match_reference_on_any_thread_count(dtype):
    widths = [8, 32, 32, 1]
    n = 10_007                      # chunks of 19 tiles (1216 samples): 9 and a partial one
    assert _api._plan(widths, n, 2, np.dtype(dtype).itemsize)[2] == 19 * _api._TILE
    weights, X, y = make_problem(widths, n, dtype=dtype, seed=21)
    e1, g1 = fastbp.gradient(weights, X, y, num_threads=1)
    for threads in (2, 3):
        e, g = fastbp.gradient(weights, X, y, num_threads=threads)
        assert e == e1 and bitwise_equal(g, g1)
    e_ref, g_ref = reference.gradient(weights, X, y)
    tol = 1e-12 if dtype == "float64" else 1e-5
    assert abs(e1 - e_ref) <= tol * abs(e_ref)
    assert all(rel_err(a, b) < tol for a, b in zip(g1, g_ref))


@pytest.mark.parametrize("output", ["tanh", "linear"])
@pytest.mark.parametrize("name", ["one-unit", "no-hidden", "small", "multi-output", "deep"])
def test_gradient_matches_finite_differences(name, output):
    widths = SHAPES[name]
    weights, X, y = make_problem(widths, 20, seed=5)
    _, grads = fastbp.gradient(weights, X, y, output=output)
    eps = 1e-5  # truncation error ~eps^2, rounding ~1e-16/eps: both far below the tolerance
    for l, w in enumerate(weights):
        numeric = np.zeros_like(w)
        for idx in np.ndindex(w.shape):
            plus = [v.copy() for v in weights]
            minus = [v.copy() for v in weights]
            plus[l][idx] += eps
            minus[l][idx] -= eps
            numeric[idx] = (fastbp.error(plus, X, y, output) -
                            fastbp.error(minus, X, y, output)) / (2 * eps)
        assert rel_err(grads[l], numeric) < 1e-6, (l, grads[l], numeric)


def test_reduction_sum_and_streaming_with_out_and_accumulate():
    weights, X, y = make_problem([5, 7, 2], 1000, seed=2)
    n = X.shape[0]
    e_mean, g_mean = fastbp.gradient(weights, X, y)
    e_sum, g_sum = fastbp.gradient(weights, X, y, reduction="sum")
    assert abs(e_sum - n * e_mean) <= 1e-12 * e_sum
    for a, b in zip(g_sum, g_mean):
        assert rel_err(a, n * b) < 1e-12
    out = [np.full(w.shape, np.nan) for w in weights]
    e0, ret = fastbp.gradient(weights, X[:300], y[:300], reduction="sum", out=out)
    assert ret is out or all(r is o for r, o in zip(ret, out))
    total = e0
    for start in (300, 650):
        e, _ = fastbp.gradient(weights, X[start:start + 350], y[start:start + 350],
                               reduction="sum", out=out, accumulate=True)
        total += e
    assert abs(total - e_sum) <= 1e-12 * e_sum
    for a, b in zip(out, g_sum):
        assert rel_err(a, b) < 1e-12


@pytest.mark.parametrize("output, activation, weighted", [
    ("tanh", "tanh", False), ("linear", "tanh", True), ("softmax", "relu", True),
    ("logistic", "logistic", False)])
def test_error_reduction_sum(output, activation, weighted):
    """error(..., reduction="sum") is the sum of the errors (weighted with sample weights):
    bitwise the error gradient(..., reduction="sum") returns, the total weight times the mean,
    and the reference's sum; "mean" is the default."""
    rng = np.random.default_rng(3)
    weights, X, y = make_problem([5, 7, 3], 700, seed=3)
    if output == "softmax":
        y = np.eye(3)[rng.integers(0, 3, 700)]
    elif output == "logistic":
        y = (y + 1) / 2
    sw = rng.uniform(0, 2, 700) if weighted else None
    kw = dict(output=output, activation=activation, sample_weight=sw)
    e_sum = fastbp.error(weights, X, y, reduction="sum", **kw)
    assert e_sum == fastbp.gradient(weights, X, y, reduction="sum", **kw)[0]
    total = 700 if sw is None else float(np.sum(sw))
    e_mean = fastbp.error(weights, X, y, **kw)
    assert e_mean == fastbp.error(weights, X, y, reduction="mean", **kw)
    assert abs(e_sum - total * e_mean) <= 1e-12 * e_sum
    assert abs(reference.error(weights, X, y, reduction="sum", **kw) - e_sum) <= 1e-12 * e_sum


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_forward_num_threads(dtype, monkeypatch):
    """forward(..., num_threads=t) runs the kernel on the threads asked for (within the plan's
    limits) and gives bitwise the same outputs on any number; the reference checks and ignores
    it."""
    widths = [64, 300, 10]
    n = chunk_of(widths, dtype) * 7 + 13
    weights, X, _ = make_problem(widths, n, dtype=dtype, seed=5)
    planned = []
    plan = _api._plan

    def spy(widths, n_samples, num_threads, *args, **kwargs):
        planned.append(num_threads)
        return plan(widths, n_samples, num_threads, *args, **kwargs)
    monkeypatch.setattr(_api, "_plan", spy)
    out = fastbp.forward(weights, X, output="linear")
    for threads in (1, 2, 3):
        assert np.array_equal(fastbp.forward(weights, X, output="linear", num_threads=threads),
                              out)
    assert planned == [None, 1, 2, 3]
    assert plan(widths, n, 3, np.dtype(dtype).itemsize)[0] == 3   # 3 threads really run
    ref = reference.forward(weights, X[:20], output="linear", num_threads=2)
    assert rel_err(ref, out[:20]) < (1e-12 if dtype == "float64" else 1e-5)


def test_out_float32():
    weights, X, y = make_problem([3, 4, 2], 100, dtype="float32")
    out = [np.ones(w.shape, np.float32) for w in weights]
    _, g = fastbp.gradient(weights, X, y, out=out, accumulate=True)
    _, g_plain = fastbp.gradient(weights, X, y)
    for o, p in zip(out, g_plain):
        assert o.dtype == np.float32
        np.testing.assert_allclose(o, 1 + p, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("output", ["tanh", "linear"])
def test_backprop_matches_reference_and_gradient(output):
    weights, X, y = make_problem([3, 4, 5, 2], 1, seed=9)
    xs, deltas = fastbp.backprop(weights, X[0], y[0], output=output)
    xs_ref, deltas_ref = reference.backprop(weights, X[0], y[0], output=output)
    assert len(xs) == 4 and len(deltas) == 3
    for a, b in zip(xs + deltas, xs_ref + deltas_ref):
        assert a.shape == b.shape
        assert rel_err(a, b) < 1e-13
    _, grads = fastbp.gradient(weights, X, y, output=output)
    for l in range(3):
        assert rel_err(np.outer(xs[l], deltas[l]), grads[l]) < 1e-13


def test_layouts_and_readonly_inputs_give_the_same_result():
    weights, X, y = make_problem([6, 9, 3], 257, seed=4)
    e, g = fastbp.gradient(weights, X, y)
    Xf = np.asfortranarray(X)
    big = np.zeros((X.shape[0] * 2, X.shape[1] * 3))
    big[::2, ::3] = X
    Xs = big[::2, ::3]
    wf = [np.asfortranarray(w) for w in weights]
    ro = [w.copy() for w in weights]
    for w in ro:
        w.flags.writeable = False
    Xro = X.copy()
    Xro.flags.writeable = False
    for args in [(weights, Xf, y), (weights, Xs, y), (wf, X, np.asfortranarray(y)), (ro, Xro, y)]:
        e2, g2 = fastbp.gradient(*args)
        assert e2 == e
        assert all(np.array_equal(a, b) for a, b in zip(g, g2))


def test_integer_and_big_endian_inputs_are_converted():
    weights, X, y = make_problem([2, 3, 1], 50)
    Xi = np.arange(100).reshape(50, 2) % 3 - 1
    yi = (np.arange(50) % 2) * 2 - 1
    e, g = fastbp.gradient(weights, Xi, yi)
    e_ref, g_ref = fastbp.gradient(weights, Xi.astype(float), yi.astype(float))
    assert e == e_ref
    assert all(np.array_equal(a, b) for a, b in zip(g, g_ref))
    wbe = [w.astype(">f8") for w in weights]
    e_be, g_be = fastbp.gradient(wbe, X.astype(">f8"), y)
    e_n, g_n = fastbp.gradient(weights, X, y)
    assert e_be == e_n and bitwise_equal(g_be, g_n)


def test_y_may_be_one_dimensional_for_one_output():
    weights, X, y = make_problem([2, 3, 1], 40)
    e1, g1 = fastbp.gradient(weights, X, y[:, 0])
    e2, g2 = fastbp.gradient(weights, X, y)
    assert e1 == e2 and bitwise_equal(g1, g2)


def test_network_methods():
    net = fastbp.Network([3, 5, 2], output="linear", seed=3)
    assert [w.shape for w in net.weights] == [(4, 5), (6, 2)]
    _, X, y = make_problem([3, 5, 2], 64)
    assert np.array_equal(net.forward(X), fastbp.forward(net.weights, X, "linear"))
    assert net.error(X, y) == fastbp.error(net.weights, X, y, "linear")
    e, g = net.gradient(X, y)
    e_ref, g_ref = reference.Network([3, 5, 2], output="linear", seed=3).gradient(X, y)
    assert abs(e - e_ref) <= 1e-12 * e_ref
    assert all(rel_err(a, b) < 1e-12 for a, b in zip(g, g_ref))


def test_init_weights_reproducible_and_scaled():
    a = fastbp.init_weights([10, 20, 3], seed=42)
    b = fastbp.init_weights([10, 20, 3], seed=42)
    c = fastbp.init_weights([10, 20, 3], seed=43)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    assert a[0].shape == (11, 20) and a[1].shape == (21, 3)
    f = fastbp.init_weights([10, 20, 3], seed=42, dtype="float32")
    assert all(w.dtype == np.float32 for w in f)
    big = fastbp.init_weights([400, 300], seed=0)[0]
    assert 0.8 < big.std() * np.sqrt(401) < 1.2


@pytest.mark.parametrize("simd, isa", [("baseline", "baseline"), ("avx2", "avx2+fma"),
                                       ("avx512", "avx512"), ("neon", "neon")])
def test_every_kernel_set_matches_the_reference(simd, isa):
    """FASTBP_SIMD caps the kernel set; each set this CPU runs gives the reference's results."""
    if not dict(_core.kernel_sets()).get(isa):
        pytest.skip(f"this CPU does not run the {isa} kernels")
    code = (
        "import fastbp, numpy as np\n"
        "from _helpers import make_problem, rel_err\n"
        "from fastbp import reference, _api\n"
        f"assert _api.ISA == {isa!r}, _api.ISA\n"
        "for dt in ('float64', 'float32'):\n"
        "  for widths in ([5, 17, 9, 2], [1, 1], [3, 1, 4], [12, 40, 33, 7]):\n"
        "    for n in (1, 7, 300):\n"
        "      w, X, y = make_problem(widths, n, dtype=dt)\n"
        "      e, g = fastbp.gradient(w, X, y)\n"
        "      w64 = [v.astype(float) for v in w]\n"
        "      e_ref, g_ref = reference.gradient(w64, X.astype(float), y.astype(float))\n"
        "      tol = 1e-12 if dt == 'float64' else 1e-5\n"
        "      assert abs(e - e_ref) <= tol * e_ref, (dt, widths, n)\n"
        "      assert max(rel_err(a, b) for a, b in zip(g, g_ref)) < tol, (dt, widths, n)\n"
        "print('ok')\n"
    )
    # run from tests/, as pytest does, so that the installed fastbp is imported, not the source tree
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, FASTBP_SIMD=simd)
    res = subprocess.run([sys.executable, "-c", code], cwd=here, env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stderr


# FASTBP_SIMD's names of the kernel sets (x86-64's three, aarch64's neon), and the sets' own names
KERNEL_SETS = {"baseline": "baseline", "avx2": "avx2+fma", "avx512": "avx512", "neon": "neon"}


@pytest.mark.skipif(not os.environ.get("FASTBP_SIMD"), reason="FASTBP_SIMD is not set")
def test_the_kernel_set_asked_for_runs():
    """Under FASTBP_SIMD (as the runs below set it), the kernels are that set, or the best this CPU
    has below it."""
    wanted = os.environ["FASTBP_SIMD"].strip().lower()
    if wanted not in KERNEL_SETS:
        pytest.skip(f"FASTBP_SIMD={wanted!r} is not one of {sorted(KERNEL_SETS)}")
    sets = [name for name, _ in _core.kernel_sets()]          # the best first
    if KERNEL_SETS[wanted] not in sets:
        pytest.skip(f"this build has no {KERNEL_SETS[wanted]} kernels (its sets: {sets})")
    runnable = [name for name, runs in _core.kernel_sets() if runs]
    capped = [name for name in runnable if sets.index(name) >= sets.index(KERNEL_SETS[wanted])]
    assert _api.ISA == capped[0]


@pytest.mark.skipif(bool(os.environ.get("FASTBP_SIMD")),
                    reason="FASTBP_SIMD is set: the whole suite runs under that kernel set")
@pytest.mark.parametrize("simd", list(KERNEL_SETS))
def test_gradient_and_property_tests_under_every_kernel_set(simd):
    """The rest of the suite runs the best kernel set this CPU has; this runs test_gradient.py and
    test_properties.py again under each other set it has (FASTBP_SIMD, in a subprocess)."""
    isa = KERNEL_SETS[simd]
    if not dict(_core.kernel_sets()).get(isa):
        pytest.skip(f"this CPU does not run the {isa} kernels")
    if _api.ISA == isa:
        pytest.skip(f"{isa} is the kernel set this whole run uses")
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, FASTBP_SIMD=simd)
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "test_gradient.py", "test_properties.py"],
                         cwd=here, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-5000:] + res.stderr[-2000:]
    assert " passed" in res.stdout.splitlines()[-1], res.stdout[-2000:]


@pytest.mark.parametrize("dtype, ulps", [("float64", 4), ("float32", 4)])
def test_kernel_tanh_is_accurate(dtype, ulps):
    x = np.concatenate([np.linspace(-25, 25, 100001), np.geomspace(1e-300, 30, 20000),
                        -np.geomspace(1e-300, 30, 20000), [0.0, -0.0, 1e-8, 0.55, 0.625, 20, 1e6]])
    x = x.astype(dtype)
    x = np.concatenate([x, np.zeros((-len(x)) % 64, dtype)])
    buf = np.zeros(len(x) + 64, dtype)
    shift = (-buf.ctypes.data % 64) // buf.itemsize
    y = buf[shift:shift + len(x)]
    y[:] = x
    _core.tanh(y)
    want = np.tanh(x.astype(np.float64))
    ulp = np.spacing(np.abs(want).astype(dtype)).astype(float)
    err_ulp = np.abs(y.astype(np.float64) - want) / ulp
    assert np.all(np.abs(y) <= 1)
    assert np.all(np.sign(y) == np.sign(want))
    assert err_ulp.max() <= ulps, (x[err_ulp.argmax()], err_ulp.max())


def test_show_config_reports_build(capsys):
    fastbp.show_config()
    text = capsys.readouterr().out
    assert fastbp.__version__ in text
    assert "OpenMP" in text and "threads" in text and _api.ISA in text


def test_reference_is_a_lazy_submodule():
    """`import fastbp; fastbp.reference` works without importing the submodule by name, and
    `import fastbp` alone does not load it; unknown names still raise AttributeError."""
    code = ("import sys, fastbp\n"
            "assert 'fastbp.reference' not in sys.modules\n"
            "assert 'reference' in dir(fastbp)\n"
            "ref = fastbp.reference\n"
            "import fastbp.reference\n"
            "assert ref is sys.modules['fastbp.reference'] is fastbp.reference\n"
            "assert callable(ref.gradient)\n"
            "try:\n"
            "    fastbp.no_such_name\n"
            "except AttributeError as exc:\n"
            "    assert 'no_such_name' in str(exc)\n"
            "else:\n"
            "    raise AssertionError('no AttributeError')\n")
    # run from tests/, as pytest does, so that the installed fastbp is imported, not the source tree
    here = os.path.dirname(os.path.abspath(__file__))
    res = subprocess.run([sys.executable, "-c", code], cwd=here, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr


def test_out_quick_path_agrees_with_check_out():
    """_core.out_ready (fastbp.gradient's quick path for `out=`) accepts only what check_out
    accepts and the kernel can write as it is; everything else goes through check_out."""
    from fastbp import _checks
    weights = fastbp.init_weights([3, 4, 2], seed=0)
    good = [np.empty_like(w) for w in weights]
    block = np.empty(sum(w.size for w in weights) + 8)
    overlapping = [block[:16].reshape(4, 4), block[10:20].reshape(5, 2)]
    readonly = [w.copy() for w in weights]
    readonly[1].flags.writeable = False
    cases = {
        "good": (good, True),
        "tuple": (tuple(good), True),
        "flat block": ([block[:16].reshape(4, 4), block[16:26].reshape(5, 2)], True),
        "overlapping": (overlapping, False),
        "read-only": (readonly, False),
        "float32": ([np.empty(w.shape, np.float32) for w in weights], False),
        "shape": ([good[0], np.empty((2, 5))], False),
        "too few": (good[:1], False),
        "not C order": ([np.empty((4, 4), order="F"), good[1]], None),
        "big-endian": ([np.empty((4, 4), ">f8"), good[1]], False),
        "a list": ([good[0], good[1].tolist()], False),
    }
    for name, (out, valid) in cases.items():
        quick = _core.out_ready(out, weights)
        try:
            _checks.check_out(out, weights)
            checked = True
        except (TypeError, ValueError):
            checked = False
        assert not quick or checked, name
        if valid is not None:
            assert quick == valid and checked == valid, name
    X = np.random.default_rng(0).standard_normal((30, 3))
    y = np.tanh(np.random.default_rng(1).standard_normal((30, 2)))
    E, grads = fastbp.gradient(weights, X, y)
    out = [np.full_like(w, 7.0) for w in weights]
    E2, got = fastbp.gradient(weights, X, y, out=tuple(out))
    assert E2 == E and type(got) is list and all(g is o for g, o in zip(got, out))
    assert bitwise_equal(got, grads)
    fastbp.gradient(weights, X, y, out=out, accumulate=True)
    assert bitwise_equal(out, [g + g for g in grads])
    with pytest.raises(ValueError, match="share memory"):
        fastbp.gradient(weights, X, y, out=overlapping)


# The inputs of gradient, error and forward are screened for NaN and infinity by the kernel, tile
# by tile as it loads them (fastbp._api._run): every place a bad value can sit in the tile loader's
# paths.
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("widths", [[1, 1], [5, 7, 2], [19, 4, 1], [40, 3, 2]])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_kernel_screen_finds_every_bad_input(dtype, widths, value):
    """A NaN or infinity anywhere in X (the first and last sample, a partial last tile, a feature
    in the loader's vector part or its tail, past the first chunk) is a ValueError naming it,
    on 1 and 2 threads, from gradient and error (and forward); `out` is left as it was, also with
    accumulate."""
    n = 2 * _api._plan(widths, 10**6, 1, np.dtype(dtype).itemsize)[2] + 37
    weights, X, y = make_problem(widths, n, dtype=dtype)
    d0 = widths[0]
    for i, j in ((0, 0), (n - 1, d0 - 1), (n - 37, d0 // 2), (n - 2, 0), (n // 2 + 5, d0 - 1)):
        bad = X.copy()
        bad[i, j] = value
        for threads in (1, 2):
            out = [np.full_like(w, 7.0) for w in weights]
            with pytest.raises(ValueError, match=rf"X must be finite, but X\[{i}, {j}\] = "):
                fastbp.gradient(weights, bad, y, out=out, accumulate=True, num_threads=threads)
            assert all((o == 7.0).all() for o in out)
            with pytest.raises(ValueError, match=rf"X\[{i}, {j}\]"):
                fastbp.error(weights, bad, y, num_threads=threads)
        with pytest.raises(ValueError, match=rf"X\[{i}, {j}\]"):
            fastbp.forward(weights, bad)


def test_kernel_screen_takes_a_nan_of_the_network_for_what_it_is():
    """A NaN error from finite inputs (here the cross-entropy of logits that overflow to
    infinity: inf - 1 * inf) is no input error: the gradient is computed and written as without
    the screen, bitwise, and `out` accumulates it."""
    weights = [np.array([[0.0], [1e300], [1e300]])]
    X = np.array([[1e10, 1e10], [1.0, 2.0]] * 40)
    y = np.ones(80)
    spec = _api._spec("tanh", "logistic")
    grads = [np.empty_like(w) for w in weights]
    err = _core.run(weights, [2, 1], spec, X, y.reshape(-1, 1), None, _api._GRADIENT, 1, 64, 512,
                    1, grads, 1.0 / 80)
    assert err != err
    out = [np.full_like(w, 7.0) for w in weights]
    E, got = fastbp.gradient(weights, X, y, output="logistic", out=out, accumulate=True)
    assert E != E and got[0] is out[0]
    assert bitwise_equal(out, [7.0 + g for g in grads])
    assert fastbp.error(weights, X, y, output="logistic") != fastbp.error(weights, X, y,
                                                                         output="logistic")
