"""Reliability: no bad input, thread, fork or memory fault crashes fastbp, hangs it or corrupts a
result (issue 5). What tests/test_bad_input.py, test_gradient.py and test_training.py already cover
is not repeated here; this file adds the fault classes they leave out.

Timing tests compare fastbp against a control that certainly runs in parallel (hashing in two
threads, which releases the GIL) and skip when even the control cannot, i.e. when the machine has no
second free core at the moment: a busy shared machine must not fail the suite.
"""
import gc
import hashlib
import io
import json
import multiprocessing
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import fastbp
from _helpers import (
    assert_unchanged,
    bitwise_equal,
    copies,
    exact,
    make_problem,
    raises_unchanged,
    rel_err,
    rounding_spread,
)
from fastbp import _api, reference

HERE = os.path.dirname(os.path.abspath(__file__))


def usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# ================================================================================================
# Bad input

def be(a):
    return np.asarray(a).astype(np.asarray(a).dtype.newbyteorder(">"))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_big_endian_everywhere_is_accepted_and_converted(dtype):
    """Big-endian weights, X, y and x give bitwise the native results in every public function;
    fit trains big-endian weights in place and leaves them big-endian."""
    weights, X, y = make_problem([3, 7, 2], 50, dtype=dtype)
    wb, Xb, yb = [be(w) for w in weights], be(X), be(y)
    assert wb[0].dtype.byteorder == ">" and wb[0].dtype.newbyteorder("=") == np.dtype(dtype)
    e, g = fastbp.gradient(weights, X, y)
    e_b, g_b = fastbp.gradient(wb, Xb, yb)
    assert e == e_b and bitwise_equal(g, g_b) and all(a.dtype == np.dtype(dtype) for a in g_b)
    assert np.array_equal(fastbp.forward(wb, Xb), fastbp.forward(weights, X))
    assert fastbp.error(wb, Xb, yb) == fastbp.error(weights, X, y)
    xs, ds = fastbp.backprop(weights, X[0], y[0])
    xs_b, ds_b = fastbp.backprop(wb, Xb[0], yb[0])
    assert bitwise_equal(xs, xs_b) and bitwise_equal(ds, ds_b)
    net = fastbp.Network([3, 7, 2], dtype=dtype, weights=wb)
    assert all(w.dtype == np.dtype(dtype) for w in net.weights)
    assert bitwise_equal(net.weights, weights)
    # fit: in place, in the caller's byte order
    native = copies(weights)
    h = fastbp.fit(native, X, y, method="gd", epochs=3)
    h_b = fastbp.fit(wb, Xb, yb, method="gd", epochs=3)
    assert h.E_in == h_b.E_in
    assert all(w.dtype.byteorder == ">" for w in wb) and bitwise_equal(wb, native)


N0 = r"X holds no samples \(N = 0\); need at least one"


@pytest.mark.parametrize("call", [
    lambda w, X, y: fastbp.forward(w, X),
    lambda w, X, y: fastbp.error(w, X, y),
    lambda w, X, y: fastbp.gradient(w, X, y, out=[np.zeros_like(a) for a in w]),
    lambda w, X, y: fastbp.fit(w, X, y),
    lambda w, X, y: fastbp.Network([3, 4, 1], weights=w).fit(X, y),
    lambda w, X, y: fastbp.Network([3, 4, 1], weights=w).predict(X),
    lambda w, X, y: fastbp.check_gradient(w, X, y),
    lambda w, X, y: reference.gradient(w, X, y),
], ids=["forward", "error", "gradient-out", "fit", "Network.fit", "predict", "check_gradient",
        "reference"])
def test_empty_batch_is_refused_everywhere(call):
    weights = fastbp.init_weights([3, 4, 1], seed=0)
    raises_unchanged(ValueError, N0, call, weights, np.zeros((0, 3)), np.zeros(0))


def test_empty_y_and_empty_sample():
    weights, X, y = make_problem([3, 4, 2], 5)
    raises_unchanged(ValueError, r"y must have shape \(5, 2\) for d\(L\) = 2, got shape \(5, 0\)",
                     fastbp.gradient, weights, X, np.zeros((5, 0)))
    raises_unchanged(ValueError, r"y has 0 rows but X has 5 samples", fastbp.error, weights, X,
                     np.zeros((0, 2)))
    raises_unchanged(ValueError, r"x must have shape \(3,\) for d\(0\) = 3, got shape \(0,\)",
                     fastbp.backprop, weights, np.zeros(0), y[0])
    raises_unchanged(ValueError, r"y must have shape \(2,\) for d\(L\) = 2, got shape \(0,\)",
                     fastbp.backprop, weights, X[0], np.zeros(0))


@pytest.mark.parametrize("weights, exc, pattern", [
    ([np.zeros((0, 3)), np.zeros((4, 1))], ValueError, r"weights\[0\] has shape \(0, 3\) but needs "
                                                       r"at least 2 rows"),
    ([np.zeros((4, 3)), np.zeros((4, 0))], ValueError, r"weights\[1\] has shape \(4, 0\): layer 2 "
                                                       r"needs at least one unit"),
    ([np.zeros((4, 3)), np.zeros((1, 1))], ValueError, r"weights\[1\] has shape \(1, 1\) but layer "
                                                       r"2 needs \(4, 1\) for d\(1\) = 3"),
    ([np.zeros((0, 0))], ValueError, r"weights\[0\]"),
], ids=["no-input-row", "zero-units", "no-rows-for-hidden", "empty"])
def test_zero_width_layers(weights, exc, pattern):
    X, y = np.zeros((2, 3)), np.zeros(2)
    for fn in (fastbp.gradient, fastbp.error, reference.gradient):
        raises_unchanged(exc, pattern, fn, weights, X, y)
    raises_unchanged(exc, pattern, fastbp.forward, weights, X)
    raises_unchanged(exc, pattern, fastbp.backprop, weights, X[0], y[0])
    raises_unchanged(exc, pattern, fastbp.fit, weights, X, y)
    with pytest.raises(exc, match=pattern):
        fastbp.Network([3, 3, 1], weights=weights)
    # and an input or target with no columns
    good = fastbp.init_weights([3, 3, 1])
    raises_unchanged(ValueError, r"X must have shape \(N, 3\) for d\(0\) = 3, got shape \(2, 0\)",
                     fastbp.gradient, good, np.zeros((2, 0)), y)


NON_NUMERIC = {
    "bool": np.zeros((4, 3), dtype=bool),
    "complex": np.zeros((4, 3), dtype=complex),
    "object-of-floats": np.zeros((4, 3)).astype(object),
    "object-of-None": np.full((4, 3), None),
    "str": np.full((4, 3), "1.0"),
    "bytes": np.full((4, 3), b"1.0"),
    "datetime": np.zeros((4, 3), dtype="M8[s]"),
    "timedelta": np.zeros((4, 3), dtype="m8[s]"),
    "structured": np.zeros((4, 3), dtype=[("a", "f8")]),
    "void": np.zeros((4, 3), dtype="V8"),
}


@pytest.mark.parametrize("kind", sorted(NON_NUMERIC))
@pytest.mark.parametrize("where", ["weights", "X", "y", "x", "out", "fit-X", "fit-y"])
def test_non_numeric_arrays_are_type_errors(kind, where):
    """Every array argument of every function: bool, complex, object (even of numbers), strings,
    dates and records are TypeErrors naming the argument; nothing is changed."""
    weights, X, y = make_problem([3, 3, 3], 4)
    bad = NON_NUMERIC[kind]
    if where == "weights":
        raises_unchanged(TypeError, r"weights\[1\] must", fastbp.gradient, [weights[0], bad], X, y)
        raises_unchanged(TypeError, r"weights\[1\] must", fastbp.forward, [weights[0], bad], X)
    elif where == "X":
        raises_unchanged(TypeError, r"X must", fastbp.forward, weights, bad)
        raises_unchanged(TypeError, r"X must", fastbp.error, weights, bad, y)
    elif where == "y":
        raises_unchanged(TypeError, r"y must", fastbp.gradient, weights, X, bad)
        raises_unchanged(TypeError, r"y must", fastbp.error, weights, X, bad)
    elif where == "x":
        raises_unchanged(TypeError, r"x must", fastbp.backprop, weights, bad[0], y[0])
        raises_unchanged(TypeError, r"y must", fastbp.backprop, weights, X[0], bad[0])
    elif where == "out":
        out = [np.zeros_like(weights[0]), bad]
        raises_unchanged(TypeError, r"out\[1\] must", fastbp.gradient, weights, X, y, out=out)
    elif where == "fit-X":
        raises_unchanged(TypeError, r"X must", fastbp.fit, weights, bad, y)
    else:
        raises_unchanged(TypeError, r"y must", fastbp.fit, weights, X, bad)


@pytest.mark.parametrize("weights, exc, pattern", [
    (None, TypeError, r"weights must be a list of 2-D arrays W\(1\), \.\.\., W\(L\), got NoneType"),
    ("weights", TypeError, r"weights must be a list of 2-D arrays .* got str"),
    (np.zeros((2, 4, 3)), TypeError, r"weights must be a list of 2-D arrays .* got ndarray"),
    ({0: np.zeros((4, 3))}, TypeError, r"weights must be a list of 2-D arrays .* got dict"),
    ({np.pi}, TypeError, r"weights must be a list of 2-D arrays .* got set"),
    ((w for w in [np.zeros((4, 3))]), TypeError, r"weights must be a list .* got generator"),
    (fastbp.Network([3, 1]), TypeError, r"weights must be a list .* got Network"),
    ([np.zeros((4, 3)), None], TypeError, r"weights\[1\] must hold real numbers .* got dtype "
                                          r"object"),
    ([np.zeros((4, 3)), 2.0], ValueError, r"weights\[1\] must be 2-D .* got shape \(\)"),
    ([np.zeros((4, 3)), np.zeros(4)], ValueError, r"weights\[1\] must be 2-D .* got shape \(4,\)"),
    ([np.zeros((4, 3)), np.zeros((1, 4, 1))], ValueError, r"weights\[1\] must be 2-D .* got "
                                                          r"shape \(1, 4, 1\)"),
    ([np.zeros((4, 3)), [[1.0], [2.0, 3.0]]], TypeError, r"weights\[1\] must be an array of real "
                                                         r"numbers; numpy could not convert it"),
    ([np.zeros((4, 3)), np.zeros((4, 1), dtype=np.longdouble)], TypeError, r"float32 or float64"),
], ids=["None", "str", "3-D-array", "dict", "set", "generator", "Network", "None-layer",
        "scalar-layer", "1-D-layer", "3-D-layer", "ragged-layer", "longdouble"])
def test_weights_that_are_not_a_list_of_2d_arrays(weights, exc, pattern):
    X, y = np.zeros((2, 3)), np.zeros(2)
    raises_unchanged(exc, pattern, fastbp.gradient, weights, X, y)
    raises_unchanged(exc, pattern, fastbp.forward, weights, X)
    raises_unchanged(exc, pattern, fastbp.backprop, weights, X[0], y[0])
    raises_unchanged(exc, pattern, fastbp.fit, weights, X, y)


def test_nested_lists_and_tuples_of_numbers_are_weights():
    weights, X, y = make_problem([2, 3, 1], 6)
    as_lists = tuple(w.tolist() for w in weights)
    assert bitwise_equal(fastbp.gradient(as_lists, X.tolist(), y[:, 0].tolist())[1],
                   fastbp.gradient(weights, X, y)[1])


def huge_view(shape, dtype=np.float64):
    """An array of `shape` that takes one element of memory (all strides zero)."""
    return as_strided(np.zeros(1, dtype=dtype), shape=shape, strides=(0,) * len(shape))


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_huge_batch_fails_cleanly_before_allocating(dtype):
    """X of 2**40 rows (a zero-stride view: no memory behind it) cannot be converted: a
    MemoryError at once, nothing allocated, nothing run, the caller's arrays untouched."""
    weights = fastbp.init_weights([3, 4, 1], dtype=dtype)
    X = huge_view((2 ** 40, 3))
    y = huge_view((2 ** 40,))
    rss0, t0 = rss_bytes(), time.perf_counter()
    for call in (lambda: fastbp.forward(weights, X), lambda: fastbp.error(weights, X, y),
                 lambda: fastbp.gradient(weights, X, y), lambda: fastbp.fit(weights, X, y)):
        with pytest.raises(MemoryError):
            call()
    assert time.perf_counter() - t0 < 5
    assert rss_bytes() - rss0 < 64 << 20
    # a y of 2**40 rows against a small X: the shape check comes first
    with pytest.raises(ValueError, match=r"y has 1099511627776 rows but X has 2 samples"):
        fastbp.gradient(weights, np.zeros((2, 3)), y)


@pytest.mark.parametrize("widths", [[2 ** 31, 2 ** 31], [1, 2 ** 40], [3, 2 ** 62, 1],
                                    [2 ** 25, 1], [1, 2 ** 25 + 1, 1]])
def test_widths_whose_sizes_overflow_are_refused(widths):
    """Widths past what the kernels index (or whose byte counts wrap) are a ValueError at once,
    naming the width: never a wrapped allocation, never an attempt to allocate them."""
    t0 = time.perf_counter()
    for make in (fastbp.init_weights, fastbp.Network, reference.init_weights):
        with pytest.raises(ValueError, match=r"widths\[\d\] = d\(\d\) = \d+ is more than"):
            make(widths)
    assert time.perf_counter() - t0 < 5


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_weights_too_wide_for_the_kernels_are_refused_before_conversion():
    """A layer of 2**25 units (zero-stride views, so that building them costs nothing): the kernels
    index a tile of a layer with a C int, which would wrap; refused before any copy is made."""
    d = 2 ** 25
    weights = [huge_view((2, d)), huge_view((d + 1, 1))]
    rss0 = rss_bytes()
    for call in (lambda: fastbp.gradient(weights, np.zeros((64, 1)), np.zeros(64)),
                 lambda: fastbp.forward(weights, np.zeros((64, 1))),
                 lambda: fastbp.Network([1, d, 1], weights=weights)):
        with pytest.raises(ValueError, match=r"(weights\[0\] has 33554432 columns: |widths\[1\] = )"
                                             r"d\(1\) = 33554432 is more than 16777216"):
            call()
    assert rss_bytes() - rss0 < 64 << 20


@pytest.mark.parametrize("fn", ["gradient", "error", "fit"])
@pytest.mark.parametrize("value, exc, pattern", [
    (0, ValueError, r"num_threads must be a positive or negative integer or None, got 0"),
    (np.int64(0), ValueError, r"num_threads must be a positive or negative integer or None, "
                              r"got 0"),
    (2.0, TypeError, r"num_threads must be an integer or None, got 2.0"),
    # NumPy scalars are shown by value and type, the same on NumPy 1.x (repr 2.0) and 2.x
    (np.float64(2), TypeError,
     r"num_threads must be an integer or None, got 2.0 \(numpy.float64\)"),
    ("2", TypeError, r"num_threads must be an integer or None, got '2'"),
    ([2], TypeError, r"num_threads must be an integer or None, got \[2\]"),
    (2j, TypeError, r"num_threads must be an integer or None, got 2j"),
    (np.bool_(True), TypeError, r"num_threads must be an integer or None, got True \(numpy.bool"),
])
def test_bad_num_threads_everywhere(fn, value, exc, pattern):
    weights, X, y = make_problem([3, 4, 1], 10)
    raises_unchanged(exc, pattern, getattr(fastbp, fn), weights, X, y, num_threads=value)


def os_threads():
    """Threads of this process as the OS sees them (OpenMP's included), or 0 where unknown."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 0


@pytest.mark.parametrize("value", [1025, 10 ** 6, 2 ** 70, np.int64(2 ** 40), np.uint64(2 ** 63)])
def test_absurd_num_threads_are_clamped_with_a_warning(value):
    """Clamped to the usable cores with a RuntimeWarning, for gradient, error and fit: the same
    results, and no more OS threads than cores (not thousands)."""
    weights, X, y = make_problem([8, 32, 32, 1], 3000)
    e, g = fastbp.gradient(weights, X, y, num_threads=None)
    started = os_threads()
    for fn in (fastbp.gradient, fastbp.error):
        with pytest.warns(RuntimeWarning, match=r"num_threads=\d+ is more than 1024; using \d+, "
                                                r"the number of usable cores"):
            result = fn(weights, X, y, num_threads=value)
        if fn is fastbp.gradient:
            assert result[0] == e and bitwise_equal(result[1], g)
        else:
            assert result == fastbp.error(weights, X, y)
    w = copies(weights)
    with pytest.warns(RuntimeWarning, match=r"num_threads=\d+ is more than 1024"):
        fastbp.fit(w, X, y, method="gd", epochs=2, num_threads=value)
    assert os_threads() <= started + usable_cores()


@pytest.mark.parametrize("value", [-1, -2, -1000, -(2 ** 70)])
def test_negative_num_threads_count_back_silently(value):
    weights, X, y = make_problem([8, 32, 32, 1], 3000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        e, g = fastbp.gradient(weights, X, y, num_threads=value)
    e1, g1 = fastbp.gradient(weights, X, y, num_threads=1)
    assert e == e1 and bitwise_equal(g, g1)


def test_float64_data_that_overflows_float32_is_refused():
    """A float32 network given float64 data beyond float32's range: ValueError naming the entry and
    its value (not "inf", which the user never wrote), and no NumPy overflow warning."""
    weights = fastbp.init_weights([2, 3, 1], dtype="float32")
    X = np.array([[1e39, 0.0], [0.0, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        raises_unchanged(ValueError, r"X\[0, 0\] = 1e\+39 does not fit in float32", fastbp.gradient,
                         weights, X, np.zeros(2))
        raises_unchanged(ValueError, r"y\[1, 0\] = -1e\+40 does not fit in float32",
                         fastbp.gradient, weights, X[1:].repeat(2, 0), np.array([0.0, -1e40]))


# ================================================================================================
# Concurrency

def test_many_threads_share_read_only_weights_and_data():
    """16 Python threads, each calling gradient/error/forward/backprop with various thread counts
    on the same read-only arrays, get bitwise the serial results; the arrays stay unchanged."""
    weights, X, y = make_problem([8, 32, 16, 2], 2000, seed=3)
    for a in weights + [X, y]:
        a.flags.writeable = False
    before = copies(weights + [X, y])
    serial = {t: fastbp.gradient(weights, X, y, num_threads=t) for t in (1, 2, 3)}
    out_serial = fastbp.forward(weights, X)
    err_serial = fastbp.error(weights, X, y)
    bp_serial = fastbp.backprop(weights, X[5], y[5])

    def work(i):
        t = (1, 2, 3)[i % 3]
        results = []
        for _ in range(4):
            e, g = fastbp.gradient(weights, X, y, num_threads=t)
            results.append(e == serial[t][0] and bitwise_equal(g, serial[t][1]))
            results.append(np.array_equal(fastbp.forward(weights, X), out_serial))
            results.append(fastbp.error(weights, X, y) == err_serial)
            xs, ds = fastbp.backprop(weights, X[5], y[5])
            results.append(bitwise_equal(xs, bp_serial[0]) and bitwise_equal(ds, bp_serial[1]))
        return all(results)

    with ThreadPoolExecutor(16) as pool:
        assert all(pool.map(work, range(48)))
    assert_unchanged(before, weights + [X, y])
    assert bitwise_equal(serial[1][1], serial[2][1]) and bitwise_equal(serial[1][1], serial[3][1])


def test_many_threads_train_separate_networks():
    """8 Python threads each train their own network (every method, out= buffers too) at once:
    bitwise the weights and histories of the same fits run one after the other."""
    _, X, y = make_problem([4, 6, 2], 200, seed=5)
    jobs = [(method, seed) for method in ("gd", "sgd", "variable-lr", "steepest", "cg")
            for seed in (1, 2)]

    def train(job):
        method, seed = job
        weights = fastbp.init_weights([4, 6, 2], seed=seed)
        h = fastbp.fit(weights, X, y, method=method, epochs=8, num_threads=1 + seed % 2, seed=seed,
                       learning_rate=0.05)
        out = [np.zeros_like(w) for w in weights]
        fastbp.gradient(weights, X, y, out=out)
        return weights, h.E_in, out

    serial = [train(job) for job in jobs]
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(train, jobs))
    for (w1, e1, o1), (w2, e2, o2) in zip(serial, parallel):
        assert bitwise_equal(w1, w2) and e1 == e2 and bitwise_equal(o1, o2)


MUTATE_DURING_CALL = textwrap.dedent("""
    import sys, threading, time
    import numpy as np
    import fastbp
    rng = np.random.default_rng(0)
    d = 1000
    A = rng.standard_normal((d + 1, d)) * 0.03
    B = -A
    w1 = rng.standard_normal((d + 1, 1)) * 0.03
    weights = [A.copy(), w1]
    X = rng.standard_normal((64, d))
    y = np.zeros(64)
    e_A = fastbp.gradient([A, w1], X, y, num_threads=1)[0]
    e_B = fastbp.gradient([B, w1], X, y, num_threads=1)[0]
    stop = False

    def mutate():             # replace weights[0] by a fresh array: the old one is freed at once
        i = 0
        while not stop:
            weights[0] = (A if i % 2 else B).copy()
            i += 1

    thread = threading.Thread(target=mutate)
    thread.start()
    t0, calls, wrong = time.perf_counter(), 0, 0
    try:
        while time.perf_counter() - t0 < float(sys.argv[1]):
            e = fastbp.gradient(weights, X, y, num_threads=1)[0]
            calls += 1
            wrong += e != e_A and e != e_B
    finally:
        stop = True
        thread.join()
    print(calls, wrong)
""")


def test_replacing_a_weight_array_during_a_call_is_safe():
    """Another thread replaces weights[0] in the caller's list while gradient runs with the GIL
    released. Each call must see either the old or the new array, whole: fastbp must hold its own
    references, never read an array the caller's list no longer keeps alive (that was a
    use-after-free: a segfault within a second, or results from freed memory)."""
    res = subprocess.run([sys.executable, "-c", MUTATE_DURING_CALL, "2"], cwd=HERE,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, (res.returncode, res.stderr[-2000:])
    calls, wrong = map(int, res.stdout.split())
    assert calls > 0 and wrong == 0


def big_problem(n=300_000):
    weights, X, y = make_problem([16, 64, 64, 1], n, seed=2)
    return weights, X, y


def test_the_kernel_releases_the_gil():
    """While one thread is inside a long gradient call, a pure-Python thread keeps running. (If the
    kernel held the GIL, the Python thread would stand still for the whole call.) Independent of
    machine load: it needs progress, not speed."""
    weights, X, y = big_problem()
    fastbp.gradient(weights, X[:1000], y[:1000], num_threads=1)
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())

    old = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    thread = threading.Thread(target=ticker)
    try:
        thread.start()
        while len(ticks) < 100:
            time.sleep(0.001)
        t0 = time.perf_counter()
        fastbp.gradient(weights, X, y, num_threads=1)
        t1 = time.perf_counter()
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(old)
    inside = [t for t in ticks if t0 <= t <= t1]
    gaps = np.diff([t0] + inside + [t1])
    assert len(inside) > 100, (len(inside), t1 - t0)
    assert gaps.max() < 0.5 * (t1 - t0), (gaps.max(), t1 - t0)


def _pair_ratio(fn, repeats=5):
    """(min time of fn run in two threads at once) / (min time of one fn)."""
    one, two = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        one.append(time.perf_counter() - t)
        threads = [threading.Thread(target=fn) for _ in range(2)]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        two.append(time.perf_counter() - t)
    return min(two) / min(one)


def two_cores_free():
    """Can two threads run at once right now? Hashing a large buffer releases the GIL."""
    data = os.urandom(1 << 25)
    ratio = _pair_ratio(lambda: hashlib.sha256(data).digest(), repeats=3)
    return ratio < 1.35, ratio


def skip_if_busy(when):
    free, control = two_cores_free()
    if not free:
        pytest.skip(f"the machine is busy {when}: even GIL-free hashing in two threads took "
                    f"{control:.2f}x the time of one")
    return control


@pytest.mark.skipif(usable_cores() < 2, reason="needs two cores")
def test_two_threads_take_about_the_time_of_one():
    weights, X, y = big_problem(150_000)
    fastbp.gradient(weights, X, y, num_threads=1)
    control = skip_if_busy("before")
    ratio = _pair_ratio(lambda: fastbp.gradient(weights, X, y, num_threads=1))
    skip_if_busy("after")
    assert ratio < 1.6, f"two threads took {ratio:.2f}x one call (control: {control:.2f}x)"


# ================================================================================================
# Fork

def _child(queue, weights, X, y):
    try:
        e, g = fastbp.gradient(weights, X, y, num_threads=2)
        e_default, _ = fastbp.gradient(weights, X, y)
        queue.put(("ok", e, e_default, [a.tobytes() for a in g], _api._forked,
                   _api.available_threads()))
    except BaseException as exc:  # report, don't hang the parent
        queue.put(("error", repr(exc)))


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_forked_child_after_a_multithreaded_parent_finishes():
    """GNU OpenMP's thread pool does not survive fork(): a child that entered a parallel region
    would hang (scikit-learn issues 7650, 19272). fastbp's at-fork handler makes forked children
    serial; here the parent runs a multi-threaded gradient first, then a fork child computes the
    same gradient (asking for 2 threads) and exits, under a timeout."""
    weights, X, y = make_problem([16, 64, 64, 1], 20_000, seed=4)
    assert _api._plan([16, 64, 64, 1], len(X), 2, 8)[0] == 2   # the parent really runs 2 threads
    e, g = fastbp.gradient(weights, X, y, num_threads=2)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)   # 3.12+: fork with threads
        child = ctx.Process(target=_child, args=(queue, weights, X, y))
        child.start()
    try:
        result = queue.get(timeout=60)
        child.join(timeout=30)
    finally:
        if child.is_alive():
            child.kill()
            child.join()
    assert result[0] == "ok", result
    _, e_child, e_default, g_child, forked, threads = result
    assert forked is True and threads == 1
    assert e_child == e == e_default
    assert all(a.tobytes() == b for a, b in zip(g, g_child))
    assert child.exitcode == 0
    # the parent is not affected: still multi-threaded and the same
    assert not _api._forked
    e2, g2 = fastbp.gradient(weights, X, y, num_threads=2)
    assert e2 == e and bitwise_equal(g2, g)


# ================================================================================================
# Oversubscription: BLAS threads and fastbp's threads in one process

OVERSUBSCRIPTION = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    import fastbp
    from _helpers import make_problem
    serial = sys.argv[1] == "serial"
    rng = np.random.default_rng(0)
    A = rng.standard_normal((300, 300))
    weights, X, y = make_problem([16, 64, 64, 1], 40_000, seed=1)
    threads = 1 if serial else None

    def step():
        for _ in range(4):
            A @ A                         # BLAS, on as many threads as it was given
        fastbp.gradient(weights, X, y, num_threads=threads)
        fastbp.error(weights, X, y, num_threads=threads)

    step()
    times = []
    for _ in range(5):
        t = time.perf_counter()
        step(); step()
        times.append(time.perf_counter() - t)
    print(json.dumps({"time": min(times), "threads": fastbp._api.available_threads()}))
""")

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def _run_mix(mode):
    env = {k: v for k, v in os.environ.items() if k not in _THREAD_VARS}
    if mode == "serial":
        env["OPENBLAS_NUM_THREADS"] = env["MKL_NUM_THREADS"] = "1"
    res = subprocess.run([sys.executable, "-c", OVERSUBSCRIPTION, mode], cwd=HERE, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(usable_cores() < 2, reason="needs two cores")
def test_blas_threads_and_fastbp_threads_do_not_oversubscribe():
    """A process alternating multi-threaded BLAS (NumPy's OpenBLAS at its default thread count)
    with fastbp at its default thread count is not slower than the same work all serial (BLAS
    limited to 1 thread, num_threads=1), within 25 % for the noise of a shared machine. With GNU
    OpenMP's default spin the mix was 1.2-1.7x the serial time on a quiet machine and 2-8x on a busy
    one; since fastbp's runtime spins briefly (GOMP_SPINCOUNT=2000, fastbp/__init__.py) it measured
    0.96-1.05x."""
    skip_if_busy("before")
    serial, default = [], []
    for _ in range(3):       # alternate, so that both see the same machine load
        serial.append(_run_mix("serial")["time"])
        default.append(_run_mix("default")["time"])
    skip_if_busy("after")
    assert min(default) < 1.25 * min(serial), (default, serial)


# ================================================================================================
# Memory

CALLS = int(os.environ.get("FASTBP_MEMORY_CALLS", 100_000))


def small_calls():
    weights, X, y = make_problem([3, 4, 2], 5, seed=1)
    w32, X32, y32 = make_problem([3, 4, 2], 5, dtype="float32", seed=1)
    out = [np.zeros_like(w) for w in weights]
    Xf = np.asfortranarray(X)
    return {
        "gradient": lambda: fastbp.gradient(weights, X, y),
        "gradient-float32": lambda: fastbp.gradient(w32, X32, y32),
        "gradient-out": lambda: fastbp.gradient(weights, X, y, out=out, accumulate=True),
        "gradient-fortran": lambda: fastbp.gradient(weights, Xf, y),
        "error": lambda: fastbp.error(weights, X, y),
        "forward": lambda: fastbp.forward(weights, X),
        "backprop": lambda: fastbp.backprop(weights, X[0], y[0]),
        "bad-input": lambda: _swallow(fastbp.gradient, weights, X, y[:3]),
    }, {
        "init_weights": lambda: fastbp.init_weights([3, 4, 2], seed=1),
        "Network": lambda: fastbp.Network([3, 4, 2], seed=1),
        "fit": lambda: fastbp.fit(fastbp.init_weights([3, 4, 2], seed=1), X, y, method="sgd",
                                  epochs=1),
    }


def _swallow(fn, *args):
    try:
        fn(*args)
    except ValueError:
        pass


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_resident_memory_stays_flat():
    """CALLS (10^5) calls of each kernel function, 10^4 of the Python-heavy ones: the resident set
    grows by less than 4 MiB per function after a warm-up (a leak of even one scratch buffer or
    array per call would show as tens of MiB)."""
    kernels, others = small_calls()
    grown = {}
    for name, fn in list(kernels.items()) + list(others.items()):
        n = CALLS if name in kernels else max(1, CALLS // 10)
        for _ in range(max(1, n // 10)):
            fn()
        gc.collect()
        before = rss_bytes()
        for _ in range(n):
            fn()
        gc.collect()
        grown[name] = (rss_bytes() - before) / 2 ** 20
    assert max(grown.values()) < 4, grown


def test_tracemalloc_shows_no_growth():
    """Python-level allocations (numpy arrays included) do not accumulate: after a warm-up, two
    equal windows of calls leave the traced total where it was (within 64 KiB)."""
    kernels, others = small_calls()
    n = max(100, CALLS // 20)
    tracemalloc.start()
    try:
        growth = {}
        for name, fn in list(kernels.items()) + list(others.items()):
            m = n if name in kernels else max(10, n // 10)
            for _ in range(m):
                fn()
            gc.collect()
            first = tracemalloc.get_traced_memory()[0]
            for _ in range(m):
                fn()
            gc.collect()
            growth[name] = tracemalloc.get_traced_memory()[0] - first
    finally:
        tracemalloc.stop()
    assert max(growth.values()) < 64 << 10, growth


# ================================================================================================
# Numerics

@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("output", ["tanh", "linear"])
@pytest.mark.parametrize("w_scale, x_scale", [
    (1e3, 1e3), (1e6, 1.0), (1.0, 1e6), (1e6, 1e6),        # saturated: |s| from 1e3 up to 1e12
    (30.0, 1.0), (5.0, 5.0),                                # partly saturated, ill-conditioned
    (1e-150, 1e-150), (1e-300, 1.0), (1.0, 1e-300), (1e-20, 1e-20),   # tiny, subnormal products
], ids=lambda v: f"{v:g}")
def test_saturated_huge_and_tiny_values(dtype, output, w_scale, x_scale):
    """Finite results, as accurate as the precision and the problem allow. Measured against
    extended precision, fastbp's error (E_in, outputs, each gradient) is within the core tolerance
    (1e-12; float32 1e-5), or within 10x what one rounding of the data and of each tanh value moves
    the exact result (saturated tanh is ill-conditioned), or, for a gradient among dtype's
    subnormals, within 4 steps of dtype's smallest subnormal. The bounds come from the extended-
    precision computation and dtype alone, never from the reference (whose own error is no
    yardstick: it reached 1000 % of the norm in the float32 (1e3, 1e3) case)."""
    widths = [4, 8, 8, 3]
    rng = np.random.default_rng(int(np.log10(w_scale) * 7 + np.log10(x_scale)) % 1000)
    weights = [(rng.standard_normal(w.shape) * w_scale).astype(dtype)
               for w in fastbp.init_weights(widths, seed=1)]
    X = (rng.standard_normal((300, widths[0])) * x_scale).astype(dtype)
    y = rng.uniform(-1, 1, (300, widths[-1])).astype(dtype)
    tol = 1e-12 if dtype == "float64" else 1e-5

    e, grads = fastbp.gradient(weights, X, y, output=output, num_threads=2)
    out = fastbp.forward(weights, X, output=output)
    e_ex, g_ex, out_ex = exact(weights, X, y, output)
    spread = rounding_spread(weights, X, y, output, dtype, rng)

    assert np.isfinite(e) and all(np.isfinite(g).all() for g in grads) and np.isfinite(out).all()
    if output == "tanh":
        assert np.abs(out).max() <= 1
    assert abs(e - e_ex) / e_ex <= max(tol, 10 * spread[0]), (abs(e - e_ex) / e_ex, spread[0])
    assert rel_err(out, out_ex) <= max(tol, 10 * spread[1]), (rel_err(out, out_ex), spread[1])
    tiny = float(np.finfo(dtype).smallest_subnormal)
    for g, gx, sp in zip(grads, g_ex, spread[2]):
        assert g.dtype == np.dtype(dtype)
        # gradients among dtype's subnormals (the 1e-20 scales in float32) are stored in steps of
        # its smallest subnormal: a few of those steps are as close as dtype can get
        floor = 4 * tiny / max(float(np.abs(gx).max()), tiny)
        assert rel_err(g, gx) <= max(tol, 10 * sp, floor), (rel_err(g, gx), sp, floor)
    e1, g1 = fastbp.gradient(weights, X, y, output=output, num_threads=1)
    assert e1 == e and bitwise_equal(g1, grads)


def test_deeply_saturated_units_have_zero_sensitivity():
    """|s| ~ 1e6: tanh is exactly +-1, 1 - x^2 is exactly 0, so the gradient of the saturated
    layer's inputs is exactly 0, not NaN or a rounding residue."""
    weights = [np.array([[0.0], [1e6]]), np.array([[0.1], [0.5]])]
    X = np.array([[1.0], [-2.0], [3.0]])
    y = np.array([0.2, -0.3, 0.1])
    e, g = fastbp.gradient(weights, X, y)
    xs, ds = fastbp.backprop(weights, X[0], y[0])
    assert xs[1][1] == 1.0 and ds[0][0] == 0.0
    assert np.all(g[0] == 0.0)
    e_ref, g_ref = reference.gradient(weights, X, y)
    assert e == pytest.approx(e_ref, rel=1e-15) and bitwise_equal(g[0], g_ref[0])


@pytest.mark.parametrize("method", ["gd", "sgd", "variable-lr", "steepest", "cg"])
def test_float32_network_on_float64_data_stays_float32(method, monkeypatch):
    """Every kernel call fit makes gets float32 weights and data; the result is bitwise the one of
    fitting on data converted to float32 beforehand; the weights stay float32."""
    _, X, y = make_problem([3, 6, 2], 64, seed=2)
    Xv, yv = make_problem([3, 6, 2], 16, seed=3)[1:]
    seen = set()
    for name in ("gradient", "error", "sgd_epoch"):
        real = getattr(_api, name)

        def spy(*args, _real=real, _name=name, **kw):
            for a in list(args) + list(kw.values()):
                for b in (a if isinstance(a, (list, tuple)) else [a]):
                    if isinstance(b, np.ndarray) and b.dtype.kind == "f":
                        seen.add((_name, b.dtype.name))
            return _real(*args, **kw)
        monkeypatch.setattr(_api, name, spy)
    w64data = fastbp.init_weights([3, 6, 2], seed=1, dtype="float32")
    w32data = copies(w64data)
    kw = dict(method=method, epochs=5, learning_rate=0.05, validation_data=(Xv, yv))
    h = fastbp.fit(w64data, X, y, **kw)
    assert seen and {dt for _, dt in seen} == {"float32"}, seen
    h32 = fastbp.fit(w32data, X.astype(np.float32), y.astype(np.float32),
                     **dict(kw, validation_data=(Xv.astype(np.float32), yv.astype(np.float32))))
    assert all(w.dtype == np.float32 for w in w64data)
    assert bitwise_equal(w64data, w32data) and h.E_in == h32.E_in and h.E_val == h32.E_val
    net = fastbp.Network([3, 6, 2], dtype="float32", seed=1)
    net.fit(X, y, **kw)
    assert all(w.dtype == np.float32 for w in net.weights)
    assert net.forward(X).dtype == np.float32
    assert all(g.dtype == np.float32 for g in net.gradient(X, y)[1])


# ================================================================================================
# Training: exceptions other than Ctrl-C, and hostile files

@pytest.mark.parametrize("exc", [RuntimeError("boom"), MemoryError("no memory"), ValueError("x")])
@pytest.mark.parametrize("method", ["gd", "sgd", "cg"])
def test_an_exception_inside_fit_leaves_the_last_completed_epoch(exc, method, monkeypatch):
    """A callback raising, or a kernel call failing (e.g. MemoryError) in the middle of an epoch:
    the exception reaches the caller and the weights are those of the last completed epoch.
    (tests/test_training.py covers KeyboardInterrupt.)"""
    _, X, y = make_problem([2, 5, 1], 40, seed=6)
    seen = []

    def callback(hist):
        seen.append(copies(weights))
        if len(hist) == 3:
            raise exc
    weights = fastbp.init_weights([2, 5, 1], seed=1)
    with pytest.raises(type(exc), match=str(exc)):
        fastbp.fit(weights, X, y, method=method, epochs=10, learning_rate=0.05, callback=callback)
    assert len(seen) == 3 and bitwise_equal(weights, seen[-1])

    # a kernel call failing in the 4th epoch
    name = "sgd_epoch" if method == "sgd" else "gradient"
    real = getattr(_api, name)

    def failing(*args, **kw):
        if len(seen) == 3:
            raise exc
        return real(*args, **kw)
    seen.clear()
    weights = fastbp.init_weights([2, 5, 1], seed=1)
    monkeypatch.setattr(_api, name, failing)
    with pytest.raises(type(exc), match=str(exc)):
        fastbp.fit(weights, X, y, method=method, epochs=10, learning_rate=0.05,
                   callback=lambda hist: seen.append(copies(weights)))
    assert len(seen) == 3 and bitwise_equal(weights, seen[-1])


class _Payload:
    """Unpickling this runs code: it must never happen inside fastbp.load."""
    marker = None

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_load_never_unpickles(tmp_path):
    marker = tmp_path / "pwned"
    _Payload.marker = str(marker)
    net = fastbp.Network([2, 3, 1], seed=0)
    good = {"fastbp_format": np.array(1), "widths": np.array([2, 3, 1]),
            "output": np.array("tanh"), "dtype": np.array("float64"),
            "weights_0": net.weights[0], "weights_1": net.weights[1]}
    payload = np.empty((), dtype=object)
    payload[()] = _Payload()
    for key in list(good):
        path = tmp_path / f"hostile_{key}.npz"
        with open(path, "wb") as f:
            np.savez(f, **dict(good, **{key: payload}))
        with pytest.raises(ValueError, match="cannot load a fastbp model"):
            fastbp.load(path)
        assert not marker.exists()
    # a bare pickle renamed .npz
    path = tmp_path / "pickle.npz"
    path.write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(ValueError, match="cannot load a fastbp model"):
        fastbp.load(path)
    assert not marker.exists()



def test_load_survives_random_corruption():
    """Flipped bits anywhere in a saved model (600 files): a clear ValueError, or, where the flips
    hit nothing that matters (zip slack), a model bitwise equal to the saved one; never a crash,
    another exception or different weights. Cutting the file at any length: ValueError."""
    net = fastbp.Network([3, 5, 2], seed=0)
    buf = io.BytesIO()
    net.save(buf)
    data = buf.getvalue()
    rng = np.random.default_rng(0)
    refused = 0
    for _ in range(600):
        bad = bytearray(data)
        for pos in rng.integers(0, len(bad), size=rng.integers(1, 4)):
            bad[pos] ^= 1 << int(rng.integers(0, 8))
        try:
            back = fastbp.load(io.BytesIO(bytes(bad)))
        except ValueError as exc:
            assert "cannot load a fastbp model" in str(exc)
            refused += 1
        else:
            assert back.widths == net.widths and bitwise_equal(back.weights, net.weights)
    assert refused > 400
    for n in range(0, len(data), 5):
        with pytest.raises(ValueError, match="cannot load a fastbp model"):
            fastbp.load(io.BytesIO(data[:n]))


def test_load_of_a_member_flagged_encrypted_is_a_clear_error():
    net = fastbp.Network([2, 3, 1], seed=0)
    buf = io.BytesIO()
    net.save(buf)
    data = bytearray(buf.getvalue())
    central = data.index(b"PK\x01\x02")       # the first member's central directory entry
    data[central + 8] |= 1                     # general purpose flag bit 0: encrypted
    with pytest.raises(ValueError, match="cannot load a fastbp model"):
        fastbp.load(io.BytesIO(bytes(data)))
