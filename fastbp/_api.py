"""The public functions over the compiled kernels: check and convert once, then one kernel call."""
from __future__ import annotations

import functools
import os
import sys
import warnings

import numpy as np

from . import _checks, _core, _sparse

_FORWARD, _ERROR, _GRADIENT = 0, 1, 2

# A chunk is the unit of the ordered reduction: its size depends on the network and the batch
# size only, never on the thread count, so that results are bitwise the same on any number of
# threads. At least about this many flops per chunk, so that a tiny network's chunk is more than
# its fixed costs (zeroing and merging a gradient buffer, handing the chunk to a thread).
_CHUNK_FLOPS = 1 << 20
_MAX_CHUNK_TILES = 32
# Zeroing and merging a chunk's buffer run at memory speed, not at the kernels' speed: at least
# this many tiles per chunk keep them a few percent even for the widest networks (8 rather than
# 4: 2-5 % faster on every config of bench/, D f32 most).
_MIN_CHUNK_TILES = 8
# A batch of at least this many chunks of _MAX_CHUNK_TILES tiles is cut into chunks that large,
# a smaller one into this many chunks when it can be (none smaller than the network's own chunk):
# the chunks' fixed costs are per parameter, like their work per sample, so they are the same
# fraction of any network's time, and that fraction halves with every doubling of the chunk. On
# two threads they are dearer than they look: the buffers pass between the cores (the other
# thread merges half of every buffer) and each round of chunks ends at a barrier. Measured
# (Sapphire Rapids, 2 threads, chunks of 8 tiles -> 32, interleaved, medians of per-round minima):
# D float32 1.11x faster, D float64 1.04x, C 1.03-1.04x, E 1.01-1.05x, B 1.03-1.07x; D float32
# AVX2 1.06x on one thread. Eight chunks keep two threads (up to eight) busy to the end of a
# batch, chunks being handed out as threads finish theirs.
_BALANCE_CHUNKS = 8
# Samples per tile: the kernels run each step for a whole tile at a time, so that every weight
# fetched from cache serves that many samples. A multiple of every kernel set's sample block.
_TILE = 64
# Bytes of x(l-1) per row panel of the gradient update when panels are used (see _blocking): a
# panel is read by every column block of G(l) in turn, so it stays in L1 (32 KiB on Zen 3, 48 on
# Sapphire Rapids) with the column block's transposed sensitivities (2-8 KiB).
_PANEL_BYTES = 16384
# Below this many flops a call runs on one thread: starting an OpenMP team costs more.
_SERIAL_FLOPS = 1 << 18
# An epoch of mini-batch steps of at least this many flops each (6 n_params |batch|) shares every
# step among num_threads threads (fastbp/_sgd_epoch.pxi); below, each step runs on one thread.
# Measured (AMD EPYC Zen 4, 2 vCPUs, float64 adam, every step shared, tools of issue 23): 2
# threads against 1, [8, 32, 32, 1] 1.13x at batch 16 (0.13 MFLOP a step), 1.08-1.12x up to
# batch 128 (1.06 MFLOP), 1.38x at 256 (2.1 MFLOP); [16, 64, 64, 1] 1.39-1.47x from 1 MFLOP;
# [32, 128, 128, 4] 1.56-1.58x from 4 MFLOP. Below a megaflop the gain is a few microseconds a
# step, while a busy core makes every member of a team wait for it at each barrier: those steps
# stay on one thread.
_SHARED_STEP_FLOPS = 1 << 20
# A mini-batch epoch on a sparse X shares every step (shares_sparse_updates) from this many
# weights: the update of all of them is most of a wide network's step.
_SHARED_UPDATE_WEIGHTS = 1 << 16
# Chunks one thread takes per round (one OpenMP region), bounded by the memory of their buffers.
_ROUND_BYTES = 1 << 22
_MAX_SLOTS_PER_THREAD = 64

# The L2 cache per core assumed when neither FASTBP_L2_BYTES, sysconf nor sysfs tells (the Intel
# cores fastbp's defaults were tuned on).
_DEFAULT_L2_BYTES = 2 << 20

_forked = False


def _after_fork_in_child() -> None:
    # GNU OpenMP's thread pool does not survive fork(); a child that entered a parallel region
    # would hang. A forked child therefore runs serially (docs/user_guide/threads.rst).
    global _forked
    _forked = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# FASTBP_SIMD's other spellings of the kernel sets' names (fastbp._core.kernel_sets())
_SIMD_ALIASES = {"none": "baseline", "0": "baseline", "avx2": "avx2+fma"}


def _isa() -> str:
    """Select the kernels: the best set this CPU runs, or at most the set FASTBP_SIMD names
    (baseline, avx2, avx512 on x86-64; baseline, neon on aarch64; an unknown name caps
    nothing)."""
    wanted = os.environ.get("FASTBP_SIMD", "").strip().lower()
    return _core.select_kernels(_SIMD_ALIASES.get(wanted, wanted))


ISA = _isa()


def _parse_cache_size(text: str) -> int:
    """Bytes of a sysfs cache size: "2048K", "1M" or a plain number of bytes."""
    text = text.strip().upper()
    factor = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    return int(text[:-1] if factor > 1 else text) * factor


def _detect_l2(environ=None, sysfs="/sys/devices/system/cpu/cpu0/cache") -> tuple:
    """(bytes of the L2 cache per core, where that came from: "FASTBP_L2_BYTES", "sysconf",
    "sysfs" or "default"). FASTBP_L2_BYTES, when set, must be a positive integer (bytes); it
    overrides the CPU's figure so that every blocking can be forced on any machine (another
    value is ignored with a RuntimeWarning that names it)."""
    environ = os.environ if environ is None else environ
    wanted = environ.get("FASTBP_L2_BYTES", "").strip()
    if wanted:
        try:
            value = int(wanted)
        except ValueError:
            value = 0
        if value > 0:
            return value, "FASTBP_L2_BYTES"
        # a warning, not an error: a bad variable in the environment must not make the import fail
        warnings.warn(f"FASTBP_L2_BYTES must be a positive integer (bytes of the L2 cache per "
                      f"core), got {wanted!r}; ignored, the CPU's L2 size is used",
                      RuntimeWarning, stacklevel=2)
    try:
        value = os.sysconf("SC_LEVEL2_CACHE_SIZE")
    except (ValueError, OSError, AttributeError):
        value = 0
    if value > 0:
        return value, "sysconf"
    try:
        for entry in sorted(os.listdir(sysfs)):
            if not entry.startswith("index"):
                continue
            folder = os.path.join(sysfs, entry)
            with open(os.path.join(folder, "level")) as f:
                level = f.read().strip()
            with open(os.path.join(folder, "type")) as f:
                kind = f.read().strip()
            if level == "2" and kind in ("Unified", "Data"):
                with open(os.path.join(folder, "size")) as f:
                    value = _parse_cache_size(f.read())
                if value > 0:
                    return value, "sysfs"
    except (OSError, ValueError):
        pass
    return _DEFAULT_L2_BYTES, "default"


# Read once, at import: the L2 cache the blocking is chosen for (see _tile_for).
L2_BYTES, L2_SOURCE = _detect_l2()


def available_threads() -> int:
    """Threads `num_threads=None` stands for: usable cores, capped by OMP_NUM_THREADS."""
    if not _core.openmp_enabled() or _forked:
        return 1
    return max(1, min(_core.openmp_max_threads(), _checks.usable_cores()))


def _n_params(widths) -> int:
    return sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:]))


@functools.lru_cache(maxsize=256)
def _blocking(widths: tuple, itemsize: int, l2_bytes: int) -> tuple:
    """(tile, sweep, panel): samples per tile (per update of the gradient buffer), per forward /
    backward sweep (a divisor of the tile), and rows of x(l-1) per panel of the gradient update
    (0: all) for this network on an L2 cache of `l2_bytes` per core.

    The gradient update of a layer (the micro-kernel `outer`) reads the layer's inputs x(l-1) of
    the tile once per block of columns of G(l) (32 times for 256 units of doubles in AVX2). When
    that x(l-1) tile is more than a quarter of L2 (D = [784, 256, 256, 10]: 400 KB of doubles,
    against a 512 KiB L2 through which the 2 MB of panels and of G(1) stream every tile), those
    reads go beyond L2; in panels of _PANEL_BYTES of x(l-1), each panel through every column
    block, x(l-1) is read from beyond L1 once per tile. Cachegrind, D float64, 512 KiB LL, AVX2
    kernels: 2804 -> 2530 LL misses per sample, instructions +0.2 %. The panels change no result
    (every element of G sums its samples in the same order). On a 2 MiB L2 nothing changes:
    today's blocking, bitwise today's results. Tiles of 128 samples (G(l) and the panels read
    half as often per sample) were better on a 2 MiB LL (D float64: 2116 -> 1644) but three times
    worse on 512 KiB (the tile's x(0) no longer fits), 32 worse on both; a tile of 128 with
    sweeps of 64 (G once per 128, panels once per 64) worse on 512 KiB too (the transposed
    sensitivities of `outer` outgrow L2). Whatever the blocking, with one sweep a tile each dW(l)
    is updated in the backward sweep right after delta(l) (run_chunk): E = [16]+[64]*8+[1]
    float64, 441 -> 365 LL misses per sample on 512 KiB, D 2116 -> 2037 on 2 MiB, bitwise the
    same results. See tests/test_blocking.py for every path."""
    tile = sweep = _TILE
    widest_input = max(widths[:-1]) + 1
    panel = 0
    if widest_input * tile * itemsize * 4 > l2_bytes:
        panel = max(8, _PANEL_BYTES // (tile * itemsize) // 8 * 8)
    return tile, sweep, panel


@functools.lru_cache(maxsize=256)
def _layout_plan(widths: tuple, itemsize: int, l2_bytes: int | None = None):
    """(flops per sample, tile, chunk, slots per thread): what depends on the network (and the L2
    cache, L2_BYTES when `l2_bytes` is None) only; the chunk is that of a small batch (_plan
    takes larger ones for larger batches)."""
    l2_bytes = L2_BYTES if l2_bytes is None else l2_bytes
    n_params = _n_params(widths)
    flops_per_sample = 6 * n_params
    tile = _blocking(widths, itemsize, l2_bytes)[0]
    tiles = _CHUNK_FLOPS // (flops_per_sample * _TILE)
    chunk = _TILE * min(_MAX_CHUNK_TILES, max(_MIN_CHUNK_TILES, tiles))
    chunk = -(-chunk // tile) * tile   # a whole number of tiles
    slots = min(_MAX_SLOTS_PER_THREAD, max(1, _ROUND_BYTES // (n_params * itemsize)))
    return flops_per_sample, tile, chunk, slots


def _plan(widths, n_samples, num_threads, itemsize, l2_bytes=None, X=None, columns=True):
    """(threads, tile, chunk, slots per thread) for a batch of n_samples; num_threads as the user
    gave it (checked here: a small batch runs on one thread whatever it says, but a bad value is
    still refused). `l2_bytes` None plans for L2_BYTES, the cache fastbp detected at import. `X`:
    the batch's inputs, when they may be sparse (_sparse_chunk; `columns`: a batch of X's rows
    in order, whose gradient the kernel sums in column rounds, False for mini-batch steps)."""
    flops_per_sample, tile, chunk, slots = _layout_plan(
        tuple(widths), itemsize, L2_BYTES if l2_bytes is None else l2_bytes)
    sparse = X is not None and type(X) is not np.ndarray and X.input_layout == _sparse.INPUT_CSR
    if sparse:
        flops_per_sample, chunk = _sparse_chunk(widths, X, tile, chunk, columns)
    # (a larger chunk only from _BALANCE_CHUNKS chunks and a tile: the test alone costs the small
    # mini-batches little, where the whole expression added a third of a microsecond per call)
    if n_samples >= _BALANCE_CHUNKS * (chunk + tile):
        chunk = max(chunk, min(_MAX_CHUNK_TILES * _TILE,
                               n_samples // _BALANCE_CHUNKS // tile * tile))
    if sparse and columns:
        slots = _sparse_slots(widths, X, chunk, itemsize)
    if _forked or n_samples * flops_per_sample < _SERIAL_FLOPS:
        if num_threads is not None:
            _checks.check_num_threads(num_threads, available_threads)  # refuse a bad value
        return 1, tile, chunk, slots
    threads = _checks.check_num_threads(num_threads, available_threads)
    return max(1, min(threads, -(-n_samples // chunk))), tile, chunk, slots


# A chunk of a sparse X summed sample by sample (mini-batch steps: sparse_first_gradient) does at
# least this many flops per weight of the network: each chunk clears its dense gradient slot and
# has it added into the sums (about 3 x 8 bytes a weight through memory, some 8 flops' time), so
# that slot is at most a fifth of the chunk's time.
_SPARSE_FLOPS_PER_WEIGHT = 40
# A chunk in column rounds (a gradient of X's rows in order: no slot of W(1)) does at least this
# many flops per input feature: it clears, counts and scans one entry per column of X.
_SPARSE_FLOPS_PER_FEATURE = 64
# A thread's share of a column round's buffers, its chunks' delta(1) and nonzeros by column: a
# round's end adds each row of dW(1) into the float64 sums once, so the fewer rounds the better.
_SPARSE_ROUND_BYTES = 1 << 26


def _sparse_chunk(widths, X, tile, chunk, columns=True) -> tuple:
    """(flops per sample, chunk) of a sparse X computed from its nonzeros (INPUT_CSR): the first
    layer's work is its nonzeros', not d(0)'s, and a chunk large enough that what it costs beside
    its samples does not dominate (`columns`: see _plan). Depends on the data and the network
    alone, never on the thread count: the result is bitwise the same on any number of threads."""
    nnz_per_sample = X.nnz / max(1, X.shape[0])
    above = _n_params(widths[1:])
    flops = max(1.0, 4.0 * nnz_per_sample * widths[1] + 2.0 * widths[1] + 6.0 * above)
    if columns:
        least = int(_SPARSE_FLOPS_PER_FEATURE * widths[0] / flops)
    else:
        least = int(_SPARSE_FLOPS_PER_WEIGHT * _n_params(widths) / flops)
    return flops, max(chunk, -(-least // tile) * tile)


def _sparse_slots(widths, X, chunk, itemsize) -> int:
    """Chunks per thread in a column round: its slot (the layers above W(1)), its delta(1), its
    nonzeros by column (a chunk's share of X's, and twice as a margin for uneven rows) and their
    column starts, within _SPARSE_ROUND_BYTES."""
    nnz_chunk = 2 * X.nnz * chunk / max(1, X.shape[0])
    per_chunk = (itemsize * (_n_params(widths[1:]) + chunk * widths[1] + nnz_chunk)
                 + 4 * nnz_chunk + 8 * (widths[0] + 2))
    return int(min(_MAX_SLOTS_PER_THREAD, max(1, _SPARSE_ROUND_BYTES // per_chunk)))


# The specs of tanh networks with squared error and no sample weights (fastbp 0.1's networks):
# looked up, not built, on the path of every small mini-batch.
_TANH_SPECS = {"tanh": (0, 0, None), "linear": (0, 1, None)}


def _spec(activation, output, sample_weight=None) -> tuple:
    """What the kernel is told about the units and the error: (activation code, output code,
    sample weights or None), the codes the positions in _checks.ACTIVATIONS and OUTPUTS."""
    return (_checks.ACTIVATIONS.index(activation), _checks.OUTPUTS.index(output), sample_weight)


def _run(weights, widths, spec, X, y, mode, num_threads, grads=None, scale=1.0,
         accumulate=False, screen=False):
    """The kernel's run over the batch: (error sum, outputs (forward) or None). screen=True: X has
    not been screened for NaN and infinity (check_batch with x_threads=0), and the kernel screens
    each tile's rows as it loads them, in cache: a large X
    is read from memory once, not twice (D = [784, 256, 256, 10] float64, 2 threads: the screen
    before the call was 6 ms of a 255 ms gradient; [2, 3, 1] on 100000 samples 0.17 of 1.3 ms).
    A NaN error then means a NaN or infinity in X (ValueError, as check_X says it, `grads`
    untouched) or in the network's own arithmetic (the call runs again, unscreened)."""
    threads, tile, chunk, slots = _plan(widths, X.shape[0], num_threads, X.dtype.itemsize, X=X)
    outputs = np.empty((X.shape[0], widths[-1]), dtype=X.dtype) if mode == _FORWARD else None
    # a sparse X's values were screened as it was checked (fastbp._sparse.check_X)
    screen = screen and type(X) is np.ndarray
    _, sweep, panel = _blocking(tuple(widths), X.dtype.itemsize, L2_BYTES)
    err = _core.run(weights, widths, spec, X, y, outputs, mode, threads, tile, chunk, slots, grads,
                    scale, accumulate, sweep, panel, screen)
    if screen and err != err:
        _checks.check_X(X, widths, X.dtype)
        err = _core.run(weights, widths, spec, X, y, outputs, mode, threads, tile, chunk, slots,
                        grads, scale, accumulate, sweep, panel, False)
    return err, outputs


def _check_model(output, activation, widths):
    output = _checks.check_output(output)
    activation = _checks.check_activation(activation)
    _checks.check_output_width(output, widths)
    return output, activation


def forward(weights, X, output="tanh", activation="tanh", num_threads=None) -> np.ndarray:
    """Compute the outputs x(L) of the network for every row of `X`.

    Parameters
    ----------
    weights : list of ndarray
        W(1), ..., W(L), W(l) of shape (d(l-1)+1, d(l)), row 0 the bias; float32 or float64,
        the same dtype for all.
    X : array_like or scipy.sparse matrix of shape (N, d(0))
        The inputs, one per row; converted to the weights' dtype. A sparse one is computed
        sparse (CSR as it is, other formats converted once; never made dense).
    output : {"tanh", "linear", "logistic", "softmax", "poisson"}, default="tanh"
        The output activation theta_L.
    activation : {"tanh", "relu", "logistic", "identity"}, default="tanh"
        The activation theta of every hidden layer.
    num_threads : int or None, default=None
        Threads of the kernel, as for `error`; each row's outputs are bitwise the same on any
        number of threads.

    Returns
    -------
    ndarray of shape (N, d(L))
        The outputs x(L), in the weights' dtype.

    Raises
    ------
    ValueError
        If the weights' shapes do not chain, `X` does not have d(0) columns or holds NaN or
        infinity, `output` or `activation` is not one of the names above, or `num_threads` is 0.
    TypeError
        If the weights or `X` are not arrays of real numbers.

    See Also
    --------
    error : E_in of these outputs against targets.
    gradient : E_in and its gradient.

    Notes
    -----
    Forward propagation (Learning From Data): x(0) = [1; x], s(l) = W(l)^T x(l-1),
    x(l) = [1; theta(s(l))] for the hidden layers l < L and x(L) = theta_L(s(L)) at the output
    (no leading 1).

    Examples
    --------
    >>> import numpy as np
    >>> import fastbp
    >>> weights = fastbp.init_weights([2, 3, 1], seed=0)
    >>> X = np.array([[0.5, -1.0], [1.0, 2.0], [-0.5, 0.3]])
    >>> out = fastbp.forward(weights, X)
    >>> out.shape, out.dtype
    ((3, 1), dtype('float64'))
    >>> bool(np.all(np.abs(out) < 1))   # a tanh output
    True
    """
    # X is screened by the kernel, tile by tile (_run)
    weights, widths, dtype, X, _ = _checks.check_batch(weights, X, None, 0)
    output, activation = _check_model(output, activation, widths)
    return _run(weights, widths, _spec(activation, output), X, None, _FORWARD, num_threads,
                screen=True)[1]


def _model_spec(output, activation, sample_weight, widths, dtype, y):
    """(spec, total weight) of error and gradient, every argument checked (y already is)."""
    output, activation = _check_model(output, activation, widths)
    _checks.check_targets(y if y.ndim == 2 else y.reshape(-1, 1), output)
    sample_weight = _checks.check_sample_weight(sample_weight, y.shape[0], dtype)
    # the sum of the weights in float64, one fixed order (NumPy's pairwise sum): no thread count
    # enters it
    total = y.shape[0] if sample_weight is None else float(np.sum(sample_weight, dtype=np.float64))
    return _spec(activation, output, sample_weight), total


def error(weights, X, y, output="tanh", num_threads=None, activation="tanh",
          sample_weight=None, reduction="mean") -> float:
    """Compute the in-sample error E_in of the network on (`X`, `y`).

    Parameters
    ----------
    weights : list of ndarray
        W(1), ..., W(L), W(l) of shape (d(l-1)+1, d(l)), row 0 the bias; float32 or float64.
    X : array_like or scipy.sparse matrix of shape (N, d(0))
        The inputs, one per row; a sparse one is computed sparse (CSR as it is,
        other formats converted once; never made dense).
    y : array_like of shape (N, d(L)) or (N,)
        The targets (1-D when d(L) = 1): in [0, 1] for output "logistic", rows of class
        probabilities for "softmax", counts or rates >= 0 for "poisson".
    output : {"tanh", "linear", "logistic", "softmax", "poisson"}, default="tanh"
        The output activation theta_L, and with it the error measure e_n (see Notes).
    num_threads : int or None, default=None
        Threads of the kernel: None for every usable core (capped by OMP_NUM_THREADS), a
        negative count backwards from that (-1 all, -2 all but one); 0 is an error. The result
        is bitwise the same on any number of threads.
    activation : {"tanh", "relu", "logistic", "identity"}, default="tanh"
        The activation theta of every hidden layer.
    sample_weight : array_like of shape (N,) or None, default=None
        Weights w_n >= 0 of the samples (not all 0); None weights every sample 1.
    reduction : {"mean", "sum"}, default="mean"
        "mean" gives E_in; "sum" gives the sum instead: sum_n e_n (sum_n w_n e_n with sample
        weights), the error `gradient` returns with ``reduction="sum"``, bitwise.

    Returns
    -------
    float
        E_in = (1/N) sum_n e_n, or sum_n w_n e_n / sum_n w_n with `sample_weight` (the sum with
        ``reduction="sum"``).

    Raises
    ------
    ValueError
        If a shape does not match the weights' widths, an array holds NaN or infinity, the
        targets are out of range for `output`, or an option is not one of its values.
    TypeError
        If an argument is of the wrong type (the message names it).

    See Also
    --------
    gradient : E_in together with its gradient.
    forward : The outputs x(L).

    Notes
    -----
    e_n = ||x(L)_n - y_n||^2 for output "tanh" and "linear"; the binary cross-entropy summed over
    the output units for "logistic"; -sum_k y_nk log x(L)_nk for "softmax" (computed from s(L)
    by log-sum-exp, so that huge logits and targets of exactly 0 or 1 give finite errors); for
    "poisson", x(L) = exp(s(L)) and the Poisson deviance halved,
    sum_k y_nk log(y_nk / x(L)_nk) - y_nk + x(L)_nk (scikit-learn's loss="poisson"; computed
    from s(L) = log x(L)).

    Examples
    --------
    >>> import numpy as np
    >>> import fastbp
    >>> weights = fastbp.init_weights([2, 3, 1], seed=0)
    >>> X = np.array([[0.5, -1.0], [1.0, 2.0], [-0.5, 0.3]])
    >>> y = np.array([1.0, -1.0, 1.0])
    >>> round(fastbp.error(weights, X, y), 6)
    2.182504
    >>> round(fastbp.error(weights, X, y, sample_weight=[1.0, 0.0, 1.0]), 6)
    3.179643
    """
    # X is screened by the kernel, tile by tile (_run)
    weights, widths, dtype, X, y = _checks.check_batch(weights, X, y, 0)
    # a tanh network with squared error and no sample weights, the common case: looked up (a
    # function call here was 5 % of a small mini-batch's time)
    if (sample_weight is None and type(activation) is str and activation == "tanh"
            and type(output) is str and output in _TANH_SPECS):
        spec, total = _TANH_SPECS[output], X.shape[0]
    else:
        spec, total = _model_spec(output, activation, sample_weight, widths, dtype, y)
    if _checks.check_reduction(reduction) == "sum":
        total = 1.0
    err, _ = _run(weights, widths, spec, X, y, _ERROR, num_threads, screen=True)
    return err / total


def gradient(weights, X, y, output="tanh", num_threads=None, reduction="mean", out=None,
             accumulate=False, activation="tanh", sample_weight=None):
    r"""Compute E_in and its gradient dE_in/dW(l) by backpropagation over the batch.

    Parameters
    ----------
    weights : list of ndarray
        W(1), ..., W(L), W(l) of shape (d(l-1)+1, d(l)), row 0 the bias; float32 or float64.
    X : array_like or scipy.sparse matrix of shape (N, d(0))
        The inputs, one per row; a sparse one is computed sparse (CSR as it is,
        other formats converted once; never made dense).
    y : array_like of shape (N, d(L)) or (N,)
        The targets (1-D when d(L) = 1).
    output : {"tanh", "linear", "logistic", "softmax", "poisson"}, default="tanh"
        The output activation theta_L and its error measure, as for `error`.
    num_threads : int or None, default=None
        Threads of the kernel, as for `error`; the result is bitwise the same on any number of
        threads.
    reduction : {"mean", "sum"}, default="mean"
        "mean" gives E_in and its gradient; "sum" gives the sums instead: sum_n e_n
        (sum_n w_n e_n with sample weights) and its gradient.
    out : list of ndarray or None, default=None
        Arrays of the weights' shapes and dtype, written with the gradient (added to with
        `accumulate`) and returned; None allocates new ones.
    accumulate : bool, default=False
        Add the gradient to `out` instead of overwriting it; needs `out`.
    activation : {"tanh", "relu", "logistic", "identity"}, default="tanh"
        The activation theta of every hidden layer.
    sample_weight : array_like of shape (N,) or None, default=None
        Weights w_n >= 0 of the samples; E_in is then the weighted mean, as for `error`.

    Returns
    -------
    E_in : float
        The error, as `error` defines it (the sum with ``reduction="sum"``).
    grads : list of ndarray
        [dE_in/dW(1), ..., dE_in/dW(L)], each of the shape and dtype of its W(l) (the arrays of
        `out` when given).

    Raises
    ------
    ValueError
        If a shape does not match the weights' widths, an array holds NaN or infinity, an option
        is not one of its values, or `accumulate` is True without `out`.
    TypeError
        If an argument is of the wrong type, e.g. an `out` array of another dtype.

    See Also
    --------
    error : E_in alone.
    backprop : The x(l) and delta(l) of one sample.
    check_gradient : This gradient against finite differences.

    Notes
    -----
    Backward propagation (Learning From Data): for each sample,
    delta(L) = de_n/ds(L) (2 (x(L) - y) theta'(s(L)) for the squared error, x(L) - y for the
    cross-entropies), then delta(l) = theta'(s(l)) * [W(l+1) delta(l+1)] with the bias row
    dropped, for l = L-1, ..., 1. The gradient is

    .. math:: \frac{\partial E_{in}}{\partial W^{(l)}} = \frac{1}{N} \sum_{n=1}^{N}
              x^{(l-1)}_n \left(\delta^{(l)}_n\right)^T

    (sum_n w_n x(l-1)_n delta(l)_n^T / sum_n w_n with sample weights). The kernel sums fixed
    chunks of samples and merges them in a fixed order, so the result does not depend on the
    thread count.

    Examples
    --------
    >>> import numpy as np
    >>> import fastbp
    >>> weights = fastbp.init_weights([2, 3, 1], seed=0)
    >>> X = np.array([[0.5, -1.0], [1.0, 2.0], [-0.5, 0.3]])
    >>> y = np.array([1.0, -1.0, 1.0])
    >>> E_in, grads = fastbp.gradient(weights, X, y)
    >>> round(E_in, 6)
    2.182504
    >>> [g.shape for g in grads]
    [(3, 3), (4, 1)]

    The pure-Python reference computes the same:

    >>> from fastbp import reference
    >>> E_ref, grads_ref = reference.gradient(weights, X, y)
    >>> all(np.allclose(g, r) for g, r in zip(grads, grads_ref))
    True
    """
    # X is screened by the kernel, tile by tile (_run)
    weights, widths, dtype, X, y = _checks.check_batch(weights, X, y, 0)
    # a tanh network with squared error and no sample weights, the common case: looked up (a
    # function call here was 5 % of a small mini-batch's time)
    if (sample_weight is None and type(activation) is str and activation == "tanh"
            and type(output) is str and output in _TANH_SPECS):
        spec, total = _TANH_SPECS[output], X.shape[0]
    else:
        spec, total = _model_spec(output, activation, sample_weight, widths, dtype, y)
    reduction = _checks.check_reduction(reduction)
    scale = 1.0 / total if reduction == "mean" else 1.0
    if out is not None and _core.out_ready(out, weights):
        # arrays ready as they are (a training loop's): every check of check_out in one pass in C
        out = list(out)
        err, _ = _run(weights, widths, spec, X, y, _GRADIENT, num_threads, out, scale, accumulate,
                      True)
        return err * scale, out
    if out is not None:
        out = _checks.check_out(out, weights)
    elif accumulate:
        raise ValueError("accumulate=True needs out=, the arrays to add the gradient into")
    if out is not None and all(o.flags.c_contiguous and o.flags.aligned for o in out):
        err, _ = _run(weights, widths, spec, X, y, _GRADIENT, num_threads, out, scale, accumulate,
                      True)
        return err * scale, out
    if out is None:
        grads = [np.empty_like(w) for w in weights]
        err, _ = _run(weights, widths, spec, X, y, _GRADIENT, num_threads, grads, scale,
                      screen=True)
        return err * scale, grads
    # `out` arrays of other layouts: the same arithmetic on contiguous copies, then copied back
    grads = [np.array(o, order="C") for o in out]
    err, _ = _run(weights, widths, spec, X, y, _GRADIENT, num_threads, grads, scale, accumulate,
                  True)
    for o, g in zip(out, grads):
        o[...] = g
    return err * scale, out


SGD_RULES = {"sgd": 0, "nesterov": 1, "adam": 2}


def numpy_sum_block() -> int:
    """The blocks the installed NumPy reduces a contiguous sum in: 0 (NumPy 2: one pairwise sum
    of the whole array) or, on NumPy 1.x, np.getbufsize() elements (its reductions are buffered:
    a pairwise sum per block, the blocks added in turn). The kernels' penalties follow it, so they
    round as their NumPy twins (fastbp._objective.sum_squares) on either."""
    return 0 if _NUMPY_2 else int(np.getbufsize())


_NUMPY_2 = int(np.__version__.split(".")[0]) >= 2


def loss_spec(decay=0.0, alpha=0.0, total=0.0, grad_scale=1.0, loss_scale=1.0) -> tuple:
    """What the training kernels minimise beside the error measure (their Loss, _loss.pxi):
    fastbp's weight decay lambda / N (`decay`: + (lambda / N) sum w^2 over every weight),
    scikit-learn's L2 term (`alpha`: + alpha / 2 ||coefs||^2 / `total`, the samples' total weight;
    a mini-batch step divides by its batch's own), and scikit-learn's factors on the gradient of
    E_in (`grad_scale`) and on E_in in the loss reported (`loss_scale`); the sums of squares in
    the installed NumPy's blocks (numpy_sum_block)."""
    return (float(decay), float(alpha), float(total), float(grad_scale), float(loss_scale),
            numpy_sum_block())


def shares_steps(widths, batch_size, num_threads, itemsize=8) -> bool:
    """Whether the steps of a mini-batch epoch are shared among num_threads threads (as the user
    gave it, checked here): when there are several and a step does at least _SHARED_STEP_FLOPS
    flops (6 n_params |batch|); else each step runs on the calling thread alone, a team of many
    handing its values between cores for longer than it computes. Either way the epoch's result
    is bitwise the same. (`itemsize`: the weights' dtype, for a threshold by dtype.)"""
    threads = _checks.check_num_threads(num_threads, available_threads)
    return (not _forked and threads > 1
            and 6 * _n_params(widths) * batch_size >= _SHARED_STEP_FLOPS)


def shares_sparse_updates(widths, num_threads) -> bool:
    """Whether the steps of a mini-batch epoch on a sparse X (INPUT_CSR, batches of one chunk)
    are shared among num_threads threads: when there are several and the network has at least
    _SHARED_UPDATE_WEIGHTS weights. The samples are swept by member, and dW(1) summed by rows,
    each member adding every sample's nonzeros of its own rows; the update, which reads and
    writes every weight (and Adam's two moments) each step, whatever rows the batch touched, is
    shared by rows as well. Either way the epoch's result is bitwise the same."""
    threads = _checks.check_num_threads(num_threads, available_threads)
    return not _forked and threads > 1 and _n_params(widths) >= _SHARED_UPDATE_WEIGHTS


def sgd_epoch(weights, widths, X, y, order, batch_size, lr, momentum, velocity, decay, output,
              activation="tanh", sample_weight=None, rule="sgd", moment2=None, beta2=0.999,
              eps=1e-8, steps=0, grad_scale=1.0, l2=0.0, num_threads=1):
    """One epoch of mini-batch SGD, Nesterov or Adam in one kernel call (fastbp._methods says
    what a step computes; for Adam, `momentum` is beta1, `velocity` the first and `moment2` the
    second moments, `steps` the step count so far). `decay` is the step's weight-decay factor
    2 lambda / N. Returns (the step count after the epoch, the epoch's summed L2 and error parts
    of scikit-learn's loss); `grad_scale` and `l2` are scikit-learn's gradient factor and alpha
    (fastbp._core.sgd_epoch_run says what they do).
    Arguments are already checked: weights and moments C-contiguous and writeable, X, y, weights
    of one dtype, order a permutation of range(N), y valid targets for `output`
    (_checks.check_targets), sample_weight None or as _checks.check_sample_weight returns it.
    With sample weights a step's gradient is the batch's weighted mean,
    sum_b w_b grad e_b / sum_b w_b (a batch of zero weights makes no step from its gradient).
    `num_threads` (as the user gave it; default 1) share every step of the epoch when
    shares_steps says so, else each step runs on the calling thread. The result is bitwise the
    same for any thread count."""
    threads, tile, chunk, slots = _plan(widths, batch_size, num_threads, X.dtype.itemsize, X=X,
                                        columns=False)
    # the epoch's team: every thread on every step, or the calling thread alone (the chunks of
    # a batch of two or more included: below the threshold they are not worth a team either)
    if type(X) is np.ndarray:
        shared = shares_steps(widths, batch_size, num_threads, X.dtype.itemsize)
    else:
        shared = (X.input_layout == _sparse.INPUT_CSR and batch_size <= chunk
                  and shares_sparse_updates(widths, num_threads))
    threads = _checks.check_num_threads(num_threads, available_threads) if shared else 1
    code = SGD_RULES[rule]
    # chunk buffers: a round of `slots` chunks per thread, bounded by _ROUND_BYTES as in _run, and
    # no more than a batch holds
    slots = min(threads * slots, -(-batch_size // chunk)) if threads > 1 else 1
    # (decay / 2: the Loss holds lambda / N; halving and the kernel's doubling are exact)
    loss = loss_spec(decay=decay / 2.0, alpha=l2, grad_scale=grad_scale)
    return _core.sgd_epoch(weights, widths, _spec(activation, output, sample_weight), X, y,
                           np.ascontiguousarray(order, dtype=np.intp), batch_size, lr, momentum,
                           velocity if (momentum or code) else None, loss, tile, chunk, code,
                           moment2, beta2, eps, steps, threads, slots,
                           *_blocking(tuple(widths), X.dtype.itemsize, L2_BYTES)[1:])


FULL_BATCH_RULES = {"gd": 0, "nesterov": 1, "variable-lr": 2, "rprop": 3}
# what full_batch_epochs reports after its last epoch (fastbp._full_batch_epochs.pxi)
FULL_BATCH_DONE, FULL_BATCH_TOL, FULL_BATCH_CONVERGED, FULL_BATCH_DIVERGED = 0, 1, 2, 3


def full_batch_plan(widths, X, num_threads, activation, output, sample_weight):
    """(threads, tile, chunk, slots per thread, spec, total weight): how `gradient` and `error`
    run on this training set, fixed for a whole fit (the arguments are checked already)."""
    threads, tile, chunk, slots = _plan(widths, X.shape[0], num_threads, X.dtype.itemsize, X=X)
    total = (X.shape[0] if sample_weight is None
             else float(np.sum(sample_weight, dtype=np.float64)))
    return threads, tile, chunk, slots, _spec(activation, output, sample_weight), total


def full_batch_epochs(plan, weights, widths, X, y, rule, params, loss, w, g, v, steps, g_prev,
                      trial, state, k, records, result):
    """Up to k epochs of gd ("gd", "nesterov"), "variable-lr" or "rprop" in one kernel call, in
    place on the flat state vectors (fastbp._methods.KernelEpochs says what they are), on the
    objective E_aug that `loss` (loss_spec) describes. Writes the number of epochs kept and the
    status (FULL_BATCH_*) into `result`, their E_in, E_aug, learning rate and accepted flag into
    `records`."""
    threads, tile, chunk, slots, spec, _ = plan
    E_in, E_aug, lr, accepted = records
    _core.full_batch_epochs(weights, widths, spec, X, y, threads, tile, chunk, slots,
                            FULL_BATCH_RULES[rule], params, loss, w, g, v, steps, g_prev, trial,
                            state, k, E_in, E_aug, lr, accepted, result,
                            *_blocking(tuple(widths), X.dtype.itemsize, L2_BYTES)[1:])


def backprop(weights, x, y, output="tanh", activation="tanh"):
    """Propagate one sample forward and backward: its x(l) and delta(l).

    Parameters
    ----------
    weights : list of ndarray
        W(1), ..., W(L), W(l) of shape (d(l-1)+1, d(l)), row 0 the bias; float32 or float64.
    x : array_like of shape (d(0),)
        The input.
    y : array_like of shape (d(L),)
        The target.
    output : {"tanh", "linear", "logistic", "softmax", "poisson"}, default="tanh"
        The output activation theta_L and its error measure, as for `error`.
    activation : {"tanh", "relu", "logistic", "identity"}, default="tanh"
        The activation theta of every hidden layer.

    Returns
    -------
    xs : list of ndarray
        [x(0), ..., x(L)]; the hidden x(l) (and x(0)) carry their leading 1, the output x(L) does
        not.
    deltas : list of ndarray
        [delta(1), ..., delta(L)], delta(l) = de_n/ds(l) of shape (d(l),).

    Raises
    ------
    ValueError
        If a shape does not match the weights' widths, a value is NaN or infinite, or an option
        is not one of its values.
    TypeError
        If an argument is of the wrong type.

    See Also
    --------
    gradient : The same over a batch, averaged.

    Notes
    -----
    The gradient of this sample's error is de_n/dW(l) = x(l-1) delta(l)^T, that is
    ``np.outer(xs[l-1], deltas[l-1])``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastbp
    >>> weights = fastbp.init_weights([2, 3, 1], seed=0)
    >>> xs, deltas = fastbp.backprop(weights, [0.5, -1.0], [1.0])
    >>> [x.shape for x in xs], [d.shape for d in deltas]
    ([(3,), (4,), (1,)], [(3,), (1,)])
    >>> grad_W1 = np.outer(xs[0], deltas[0])     # de/dW(1)
    >>> grad_W1.shape
    (3, 3)
    """
    weights, widths, dtype = _checks.check_weights(weights)
    output, activation = _check_model(output, activation, widths)
    x, y = _checks.check_sample(x, y, widths, dtype)
    _checks.check_targets(y, output)
    return _core.backprop_sample(weights, widths, _spec(activation, output), x, y)


def _describe_blocking() -> str:
    """The blocking chosen for the L2 cache in use, for a wide and a small network."""
    parts = []
    for widths in ((784, 256, 256, 10), (8, 32, 32, 1)):
        tile, sweep, panel = _blocking(widths, 8, L2_BYTES)
        parts.append(f"{list(widths)} float64: tile {tile}, sweep {sweep}, "
                     f"panel {panel or 'all'} rows")
        widths_chunk = _layout_plan(widths, 8, L2_BYTES)[2]
        parts[-1] += (f", chunk {widths_chunk} (up to {_MAX_CHUNK_TILES * _TILE} in batches of "
                      f"{_BALANCE_CHUNKS} chunks or more)")
    return "; ".join(parts) + " (fastbp._api._blocking; FASTBP_L2_BYTES overrides the L2 size)"


def show_config(file=None) -> None:
    """Print the version, OpenMP, the threads used by default and the kernels' instruction set.

    Parameters
    ----------
    file : file-like or None, default=None
        Where to write (an object with a ``write`` method); None is ``sys.stdout``.

    Examples
    --------
    >>> import fastbp
    >>> fastbp.show_config()   # doctest: +ELLIPSIS
    fastbp ...
      numpy: ...
      OpenMP: ...
      default threads: ...
      kernels: ...
      samples per tile: ...
      L2 cache: ...
      blocking: ...
    """
    from . import __version__
    file = sys.stdout if file is None else file
    lines = [
        f"fastbp {__version__}",
        f"  numpy:            {np.__version__}",
        f"  OpenMP:           {'on' if _core.openmp_enabled() else 'off (serial build)'}",
        f"  default threads:  {available_threads()} (usable cores {_checks.usable_cores()}, "
        f"OMP max threads {_core.openmp_max_threads()})",
        f"  kernels:          {ISA} (best this CPU runs: "
        f"{next(name for name, runs in _core.kernel_sets() if runs)}; "
        f"FASTBP_SIMD={os.environ.get('FASTBP_SIMD', '')!r})",
        f"  samples per tile: {_TILE}",
        f"  L2 cache:         {L2_BYTES // 1024} KiB per core (from {L2_SOURCE})",
        "  blocking:         " + _describe_blocking(),
    ]
    print("\n".join(lines), file=file)
