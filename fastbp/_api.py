"""The public functions over the compiled kernels: check and convert once, then one kernel call."""
from __future__ import annotations

import functools
import os
import sys

import numpy as np

from . import _checks, _core

_FORWARD, _ERROR, _GRADIENT = 0, 1, 2

# A chunk is the unit of the ordered reduction: its size depends on the network only, never on the
# thread count, so that results are bitwise the same on any number of threads. About this many
# flops per chunk keep its fixed costs (zeroing and merging a gradient buffer) under a percent.
_CHUNK_FLOPS = 1 << 20
_MAX_CHUNK_TILES = 32
# Zeroing and merging a chunk's buffer run at memory speed, not at the kernels' speed: at least
# this many tiles per chunk keep them a few percent even for the widest networks (8 rather than
# 4: 2-5 % faster on every config of bench/, D f32 most).
_MIN_CHUNK_TILES = 8
# Samples per tile: the kernels run each step for a whole tile at a time, so that every weight
# fetched from cache serves that many samples. A multiple of every kernel set's sample block.
_TILE = 64
# Below this many flops a call runs on one thread: starting an OpenMP team costs more.
_SERIAL_FLOPS = 1 << 18
# From this many values of X on, its finiteness screen is shared out among the threads.
_PARALLEL_SCREEN = 1 << 19
# Chunks one thread takes per round (one OpenMP region), bounded by the memory of their buffers.
_ROUND_BYTES = 1 << 22
_MAX_SLOTS_PER_THREAD = 64

_forked = False


def _after_fork_in_child() -> None:
    # GNU OpenMP's thread pool does not survive fork(); a child that entered a parallel region
    # would hang. A forked child therefore runs serially (see README, "Threads").
    global _forked
    _forked = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


_SIMD_LEVELS = {"baseline": 0, "none": 0, "0": 0, "avx2": 1, "avx512": 2}


def _isa() -> str:
    """Select the kernels: the best this CPU runs, or at most FASTBP_SIMD (baseline, avx2, avx512)."""
    wanted = os.environ.get("FASTBP_SIMD", "").strip().lower()
    return _core.select_kernels(_SIMD_LEVELS.get(wanted, 2))


ISA = _isa()


def available_threads() -> int:
    """Threads `num_threads=None` stands for: usable cores, capped by OMP_NUM_THREADS."""
    if not _core.openmp_enabled() or _forked:
        return 1
    return max(1, min(_core.openmp_max_threads(), _checks.usable_cores()))


def _screen_threads(X, num_threads) -> int:
    """Threads for the NaN/infinity screen of X: those of the kernel when X is large (the screen
    reads X once at the speed of memory; on one thread, it was up to 8 % of a gradient)."""
    if _forked or getattr(X, "size", 0) < _PARALLEL_SCREEN:
        return 1
    return _checks.check_num_threads(num_threads, available_threads)


def _n_params(widths) -> int:
    return sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:]))


@functools.lru_cache(maxsize=256)
def _layout_plan(widths: tuple, itemsize: int):
    """(flops per sample, tile, chunk, slots per thread): what depends on the network only."""
    n_params = _n_params(widths)
    flops_per_sample = 6 * n_params
    tiles = _CHUNK_FLOPS // (flops_per_sample * _TILE)
    chunk = _TILE * min(_MAX_CHUNK_TILES, max(_MIN_CHUNK_TILES, tiles))
    slots = min(_MAX_SLOTS_PER_THREAD, max(1, _ROUND_BYTES // (n_params * itemsize)))
    return flops_per_sample, _TILE, chunk, slots


def _plan(widths, n_samples, num_threads, itemsize):
    """(threads, tile, chunk, slots per thread) for a batch; num_threads as the user gave it
    (checked here: a small batch runs on one thread whatever it says, but a bad value is still
    refused)."""
    flops_per_sample, tile, chunk, slots = _layout_plan(tuple(widths), itemsize)
    if _forked or n_samples * flops_per_sample < _SERIAL_FLOPS:
        if num_threads is not None:
            _checks.check_num_threads(num_threads, available_threads)  # refuse a bad value
        return 1, tile, chunk, slots
    threads = _checks.check_num_threads(num_threads, available_threads)
    return max(1, min(threads, -(-n_samples // chunk))), tile, chunk, slots


def _run(weights, widths, output, X, y, mode, num_threads, grads=None, scale=1.0,
         accumulate=False):
    threads, tile, chunk, slots = _plan(widths, X.shape[0], num_threads, X.dtype.itemsize)
    outputs = np.empty((X.shape[0], widths[-1]), dtype=X.dtype) if mode == _FORWARD else None
    err = _core.run(weights, widths, output == "linear", X, y, outputs, mode, threads, tile, chunk,
                    slots, grads, scale, accumulate)
    return err, outputs


def forward(weights, X, output="tanh") -> np.ndarray:
    """Outputs x(L) for every row of X: shape (N, d(L)), in the weights' dtype."""
    weights, widths, dtype, X, _ = _checks.check_batch(weights, X, None, _screen_threads(X, None))
    output = _checks.check_output(output)
    return _run(weights, widths, output, X, None, _FORWARD, None)[1]


def error(weights, X, y, output="tanh", num_threads=None) -> float:
    """E_in = (1/N) sum_n ||x(L)_n - y_n||^2."""
    weights, widths, dtype, X, y = _checks.check_batch(weights, X, y,
                                                       _screen_threads(X, num_threads))
    output = _checks.check_output(output)
    err, _ = _run(weights, widths, output, X, y, _ERROR, num_threads)
    return err / X.shape[0]


def gradient(weights, X, y, output="tanh", num_threads=None, reduction="mean", out=None,
             accumulate=False):
    """(E_in, [dE_in/dW(1), ..., dE_in/dW(L)]) by backpropagation over the batch.

    reduction="sum" gives N E_in and the summed gradient instead. With out= the gradient is written
    into those arrays (accumulate=True: added to them) and they are returned.
    """
    weights, widths, dtype, X, y = _checks.check_batch(weights, X, y,
                                                       _screen_threads(X, num_threads))
    output = _checks.check_output(output)
    reduction = _checks.check_reduction(reduction)
    if out is not None:
        out = _checks.check_out(out, weights)
    elif accumulate:
        raise ValueError("accumulate=True needs out=, the arrays to add the gradient into")
    scale = 1.0 / X.shape[0] if reduction == "mean" else 1.0
    if out is not None and all(o.flags.c_contiguous and o.flags.aligned for o in out):
        err, _ = _run(weights, widths, output, X, y, _GRADIENT, num_threads, out, scale,
                      accumulate)
        return err * scale, out
    if out is None:
        grads = [np.empty_like(w) for w in weights]
        err, _ = _run(weights, widths, output, X, y, _GRADIENT, num_threads, grads, scale)
        return err * scale, grads
    # `out` arrays of other layouts: the same arithmetic on contiguous copies, then copied back
    grads = [np.array(o, order="C") for o in out]
    err, _ = _run(weights, widths, output, X, y, _GRADIENT, num_threads, grads, scale, accumulate)
    for o, g in zip(out, grads):
        o[...] = g
    return err * scale, out


SGD_RULES = {"sgd": 0, "nesterov": 1, "adam": 2}


def sgd_epoch(weights, widths, X, y, order, batch_size, lr, momentum, velocity, decay, output,
              rule="sgd", moment2=None, beta2=0.999, eps=1e-8, steps=0) -> int:
    """One epoch of mini-batch SGD, Nesterov or Adam in one kernel call (fastbp._methods says
    what a step computes; for Adam, `momentum` is beta1, `velocity` the first and `moment2` the
    second moments, `steps` the step count so far). Returns the step count after the epoch.
    Arguments are already checked: weights and moments C-contiguous and writeable, X, y, weights
    of one dtype, order a permutation of range(N)."""
    _, tile, chunk, _ = _plan(widths, batch_size, 1, X.dtype.itemsize)
    code = SGD_RULES[rule]
    return _core.sgd_epoch(weights, widths, output == "linear", X, y,
                           np.ascontiguousarray(order, dtype=np.intp), batch_size, lr, momentum,
                           velocity if (momentum or code) else None, decay, tile, chunk, code,
                           moment2, beta2, eps, steps)


def backprop(weights, x, y, output="tanh"):
    """One sample: ([x(0), ..., x(L)], [delta(1), ..., delta(L)]).

    Hidden x(l) carry their leading 1; the output x(L) does not. de_n/dW(l) is
    np.outer(xs[l-1], deltas[l-1]).
    """
    weights, widths, dtype = _checks.check_weights(weights)
    output = _checks.check_output(output)
    x, y = _checks.check_sample(x, y, widths, dtype)
    return _core.backprop_sample(weights, widths, output == "linear", x, y)


def show_config(file=None) -> None:
    """Print the version, OpenMP, the threads used by default and the kernels' instruction set."""
    from . import __version__
    file = sys.stdout if file is None else file
    lines = [
        f"fastbp {__version__}",
        f"  numpy:            {np.__version__}",
        f"  OpenMP:           {'on' if _core.openmp_enabled() else 'off (serial build)'}",
        f"  default threads:  {available_threads()} (usable cores {_checks.usable_cores()}, "
        f"OMP max threads {_core.openmp_max_threads()})",
        f"  kernels:          {ISA} (best this CPU runs: "
        f"{['baseline', 'avx2+fma', 'avx512'][_core.cpu_level()]}; "
        f"FASTBP_SIMD={os.environ.get('FASTBP_SIMD', '')!r})",
        f"  samples per tile: {_TILE}",
    ]
    print("\n".join(lines), file=file)
