"""Reliability, memory: repeated calls neither grow the resident memory nor leak (issue 5).
"""
import gc
import os
import tracemalloc

import numpy as np
import pytest

import fastbp
from _helpers import (
    make_problem,
    rss_bytes,
)

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
