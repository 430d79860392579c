"""fastbp on a Dask cluster: gradients, errors, outputs and full-batch training where the data is.

The in-sample error and its gradient are sums over the samples. Here X and y are Dask arrays cut
into row chunks; each chunk's partial sums (error, gradient, sample count) are computed by fastbp's
kernel on the worker that holds the chunk (`fastbp.gradient(..., reduction="sum")`, or
`fastbp.error(..., reduction="sum")` where only the error is asked for), added in float64 by a
tree whose shape depends only on the number of chunks, and divided by N once, on the client. The
tree adds the chunks' sums in row order, eight at a time, each group left to right
((p0 + p1) + p2 ...), then the groups' sums the same way, level after level: for 20 chunks,
(p0 + ... + p7) + (p8 + ... + p15) + (p16 + ... + p19). Only the weights travel to the workers
and only the partial sums travel back.

What runs where:
- the client checks every argument, builds the graph, runs the training method (the line search,
  L-BFGS, ...) and divides the final sums;
- each worker runs the kernel on its own chunks, one kernel call at a time, on as many threads as
  the worker has (`threads_per_worker`, `dask worker --nthreads`), never more: a cluster is not
  oversubscribed however many chunks a worker holds;
- `forward` / `predict` return a Dask array computed chunk by chunk on the workers.

Reproducibility: a chunk's partial sums do not depend on the worker or on its thread count (the
kernel's own reduction order depends on the network only), and the tree adds them in a fixed
order; so for a given chunking the results are bitwise the same from run to run and on any number
of workers, PROVIDED every worker runs the same kernel set (`fastbp._api.ISA`: AVX-512, AVX2+FMA
and baseline round differently). `kernels(client)` lists the sets the workers run, every
evaluation checks the sets the chunks actually ran with (a RuntimeWarning when they differ), and
`FASTBP_SIMD` in the workers' environment pins one (see `kernels`). A different chunking gives a
different (equally accurate) order of additions.

Dask is an optional dependency: `pip install "fastbp[dask]"`. `import fastbp` never imports it.
"""
from __future__ import annotations

import math
import threading
import uuid
import warnings

import numpy as np

try:
    import dask
    import dask.array as da
    import distributed
except ImportError as _exc:  # pragma: no cover - exercised only without dask
    raise ImportError(f"fastbp.distributed needs Dask (dask.array and dask.distributed), an "
                      f"optional dependency that is not installed: pip install \"fastbp[dask]\" "
                      f"({_exc})") from _exc

from . import _api, _checks
from ._methods import REGISTRY
from ._objective import Objective, flatten, layer_shapes, layer_views
from .training import History, _check_model_and_options, _check_start, train

__all__ = ["gradient", "error", "forward", "predict", "kernels", "show_config", "fit",
           "ClusterObjective"]

_GRADIENT, _ERROR = "gradient", "error"


# ---------------------------------------------------------------------------------------------
# Checks on the client (nothing is computed before they pass)

def _client(client):
    """The client to use: the one given, else the default one."""
    if client is not None:
        if not isinstance(client, distributed.Client):
            raise TypeError(f"client must be a dask.distributed.Client or None, got "
                            f"{type(client).__name__}")
        return client
    try:
        return distributed.default_client()
    except ValueError:
        raise ValueError("fastbp.distributed needs a Dask client: pass client=, or start one "
                         "first, e.g. distributed.Client(distributed.LocalCluster()) on this "
                         "machine or distributed.Client('tcp://scheduler:8786') for a cluster"
                         ) from None


def _chunks_text(chunks) -> str:
    chunks = tuple(int(c) if not math.isnan(c) else c for c in chunks)
    if len(chunks) <= 6:
        return str(chunks)
    return f"({', '.join(map(str, chunks[:3]))}, ..., {', '.join(map(str, chunks[-2:]))})"


def _check_array(a, name: str, ndims: tuple) -> None:
    if not isinstance(a, da.Array):
        raise TypeError(f"{name} must be a dask.array.Array chunked by rows, got "
                        f"{type(a).__module__}.{type(a).__name__} (for arrays in memory use "
                        f"fastbp itself, or wrap them with dask.array.from_array(a, chunks=...))")
    if a.ndim not in ndims:
        raise ValueError(f"{name} must be {' or '.join(f'{d}-D' for d in ndims)}, got {a.ndim}-D "
                         f"with shape {a.shape}")
    kind = a.dtype.kind
    if kind == "b" or kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers (integer or float), got dtype {a.dtype}")
    if any(math.isnan(c) for c in a.chunks[0]):
        raise ValueError(f"{name} has row chunks of unknown size {_chunks_text(a.chunks[0])}; "
                         f"call {name}.compute_chunk_sizes() first")
    if a.ndim == 2 and len(a.chunks[1]) != 1:
        raise ValueError(f"{name} must be chunked by rows only, with one chunk across its "
                         f"{a.shape[1]} columns, got column chunks {_chunks_text(a.chunks[1])}; "
                         f"rechunk with {name}.rechunk({{1: -1}})")


class _Data:
    """X and y (y may be None), checked: Dask arrays of the same row chunks."""

    # set by `persisted`: the chunks held in the workers' memory, as Delayed objects and Futures
    _blocks: list | None = None
    futures: list | None = None

    def __init__(self, X, y, widths, names=("X", "y")):
        nx, ny = names
        _check_array(X, nx, (2,))
        d0, dL = widths[0], widths[-1]
        if X.shape[1] != d0:
            raise ValueError(f"{nx} must have shape (N, {d0}) for d(0) = {d0}, got shape "
                             f"{X.shape}")
        if X.shape[0] == 0:
            raise ValueError(f"{nx} holds no samples (N = 0); need at least one")
        n = X.shape[0]
        if y is not None:
            _check_array(y, ny, (1, 2) if dL == 1 else (2,))
            if y.ndim == 2 and y.shape[1] != dL:
                alt = f" or ({n},)" if dL == 1 else ""
                raise ValueError(f"{ny} must have shape ({n}, {dL}){alt} for d(L) = {dL}, got "
                                 f"shape {y.shape}")
            if y.shape[0] != n:
                raise ValueError(f"{ny} has {y.shape[0]} rows but {nx} has {n} samples")
            if tuple(y.chunks[0]) != tuple(X.chunks[0]):
                raise ValueError(f"{nx} and {ny} must have the same row chunks, got "
                                 f"{_chunks_text(X.chunks[0])} for {nx} and "
                                 f"{_chunks_text(y.chunks[0])} for {ny}; rechunk with "
                                 f"{ny}.rechunk({{0: {nx}.chunks[0]}})")
        self.X, self.y, self.names = X, y, names
        self.n = int(n)
        self.row_chunks = tuple(int(c) for c in X.chunks[0])
        self.starts = tuple(int(s) for s in np.cumsum((0,) + self.row_chunks[:-1]))

    def weighted(self, sample_weight) -> _Data:
        """The same data with `sample_weight` (a Dask array (N,) of X's row chunks, or None) as
        one more column of y: the chunks' tasks then carry their weights with their targets."""
        if sample_weight is None:
            return self
        nx = self.names[0]
        _check_array(sample_weight, "sample_weight", (1,))
        if sample_weight.shape[0] != self.n:
            raise ValueError(f"sample_weight has {sample_weight.shape[0]} entries but {nx} has "
                             f"{self.n} samples")
        if tuple(sample_weight.chunks[0]) != self.row_chunks:
            raise ValueError(f"{nx} and sample_weight must have the same row chunks, got "
                             f"{_chunks_text(self.row_chunks)} for {nx} and "
                             f"{_chunks_text(sample_weight.chunks[0])} for sample_weight")
        y = self.y if self.y.ndim == 2 else self.y.reshape(-1, 1)
        dtype = np.result_type(y.dtype, sample_weight.dtype, np.float32)
        out = _Data.__new__(_Data)
        out.__dict__.update(self.__dict__)
        out.y = da.concatenate([y.astype(dtype), sample_weight[:, None].astype(dtype)],
                               axis=1).rechunk({1: -1})
        return out

    def blocks(self):
        """[(X block, y block or None)] as Delayed objects, in row order."""
        if getattr(self, "_blocks", None) is not None:
            return list(self._blocks)
        xs = self.X.to_delayed().ravel().tolist()
        ys = self.y.to_delayed().ravel().tolist() if self.y is not None else [None] * len(xs)
        return list(zip(xs, ys))

    def persisted(self, client, dtype) -> _Data:
        """The same data converted to `dtype` and held in the workers' memory (once, for fit).

        Consecutive chunks go to the same worker and every worker gets its share (chunk i to
        worker i W // n of W): left to itself, Dask may place a few large chunks on one worker
        and leave another idle. The placement is a preference (allow_other_workers), so that a
        chunk whose worker dies is recomputed on another."""
        X, y = self.X.astype(dtype), None if self.y is None else self.y.astype(dtype)
        if y is not None and y.ndim == 1:
            y = y.reshape(-1, 1)  # a reshape of a 1-D array keeps its row chunks
        workers = _worker_addresses(client)
        xs = X.to_delayed().ravel().tolist()
        ys = y.to_delayed().ravel().tolist() if y is not None else [None] * len(xs)
        token = uuid.uuid4().hex
        placed = []
        for i, (xb, yb) in enumerate(zip(xs, ys)):
            where = [workers[i * len(workers) // len(xs)]] if workers else None
            with dask.annotate(workers=where, allow_other_workers=True):
                placed.append(tuple(
                    None if b is None else dask.delayed(_hold, pure=False)(
                        b, dask_key_name=f"fastbp-data-{token}-{name}-{i}")
                    for name, b in (("X", xb), ("y", yb))))
        flat = [b for pair in placed for b in pair if b is not None]
        done = iter(client.persist(flat, optimize_graph=False))
        out = _Data.__new__(_Data)
        out.__dict__.update(self.__dict__)
        out.X, out.y = X, y
        out._blocks = [tuple(None if b is None else next(done) for b in pair) for pair in placed]
        out.futures = [tuple(None if b is None else _future_of(b) for b in pair)
                       for pair in out._blocks]
        return out


def _worker_addresses(client) -> list:
    try:
        info = client.scheduler_info(n_workers=-1)    # all of them (Dask >= 2025 lists 5 unless)
    except TypeError:                                 # older Dask: always all of them
        info = client.scheduler_info()
    return sorted(info["workers"])


def _future_of(block):
    """The Future behind a persisted Delayed block."""
    return next(f for f in distributed.futures_of(block) if f.key == block.key)


def _hold(block):
    """A chunk as it is (the task that keeps it on the worker chosen for it)."""
    return block


# ---------------------------------------------------------------------------------------------
# On the workers

_LOCKS_GUARD = threading.Lock()


def _worker_slot():
    """(threads, lock) for a kernel call on this worker: the worker's own thread count, and a lock
    that lets one kernel call run at a time in it (a worker with t threads runs up to t tasks at
    once; t kernels of t threads each would oversubscribe its cores)."""
    try:
        worker = distributed.get_worker()
    except ValueError:  # not on a worker (dask's local scheduler): one call, all threads
        return None, _LOCKS_GUARD
    with _LOCKS_GUARD:
        slot = getattr(worker, "_fastbp_slot", None)
        if slot is None:
            state = getattr(worker, "state", worker)
            slot = (max(1, int(state.nthreads)), threading.Lock())
            worker._fastbp_slot = slot
    return slot


def _nonfinite_message(Xb, yb, dtype, index, row0, names):
    """Where the first NaN or infinity of a chunk is, in the whole array's rows; None if none."""
    for a, name in ((Xb, names[0]), (yb, names[1])):
        if a is None:
            continue
        if hasattr(a, "tocoo"):
            # a scipy.sparse chunk: its stored values, where they are
            coo = a.tocoo()
            with np.errstate(over="ignore"):
                stored = np.asarray(coo.data, dtype=dtype)
            bad = np.flatnonzero(~np.isfinite(stored))
            if bad.size:
                r, c = int(coo.row[bad[0]]), int(coo.col[bad[0]])
                value = coo.data[bad[0]].item()
                rows = f"chunk {index} of {name} (rows {row0} to {row0 + a.shape[0] - 1})"
                if np.isfinite(value):
                    return (f"{name}[{row0 + r}, {c}] = {value!r}, in {rows}, does not fit in "
                            f"{stored.dtype} (the weights' dtype)")
                return (f"{name} must be finite, but {rows} holds {name}[{row0 + r}, {c}] = "
                        f"{value!r}")
            continue
        with np.errstate(over="ignore"):
            conv = np.asarray(a, dtype=dtype)
        bad = np.argwhere(~np.isfinite(conv))
        if bad.size:
            r, c = (int(v) for v in bad[0]) if conv.ndim == 2 else (int(bad[0][0]), None)
            where = f"[{row0 + r}, {c}]" if c is not None else f"[{row0 + r}]"
            value = np.asarray(a)[tuple(bad[0])].item()
            rows = f"chunk {index} of {name} (rows {row0} to {row0 + conv.shape[0] - 1})"
            if np.isfinite(value):
                return (f"{name}{where} = {value!r}, in {rows}, does not fit in {conv.dtype} "
                        f"(the weights' dtype)")
            return f"{name} must be finite, but {rows} holds {name}{where} = {value!r}"
    return None


def _chunk_sums(flat_w, shapes, model, mode, Xb, yb, index, row0, names):
    """One chunk's float64 partial sums: (sum of w_n e_n, flat sum of the w_n-weighted gradients
    or None, the chunk's total weight (its sample count without sample weights), kernel sets,
    None), or, when the chunk's data are bad, (..., a message naming the chunk): the message
    travels up the tree (the first bad chunk in row order wins) and the client raises it.
    model is (output, activation, weighted); weighted: the sample weights are y's last column."""
    output, activation, weighted = model
    n = int(Xb.shape[0])
    size = int(flat_w.size)
    if n == 0:  # an empty chunk adds nothing
        return 0.0, np.zeros(size) if mode == _GRADIENT else None, 0, frozenset(), None
    y2 = yb.reshape(-1, 1) if yb is not None and yb.ndim == 1 else yb
    sw = None
    if weighted:
        y2, sw = y2[:, :-1], np.ascontiguousarray(y2[:, -1])
    weights = layer_views(flat_w, shapes)
    threads, lock = _worker_slot()
    try:
        if sw is not None:
            bad = np.flatnonzero(~np.isfinite(sw) | (sw < 0))
            if bad.size:
                raise ValueError(f"sample_weight must be finite and >= 0, but "
                                 f"sample_weight[{row0 + int(bad[0])}] = {sw[bad[0]].item()!r}")
            total = float(np.sum(sw, dtype=np.float64))
            if total == 0:       # a chunk of weight 0 adds nothing (the kernel refuses all-zero)
                return (0.0, np.zeros(size) if mode == _GRADIENT else None, 0.0,
                        frozenset(), None)
        with lock:
            if mode == _GRADIENT:
                err, grads = _api.gradient(weights, Xb, y2, output=output, num_threads=threads,
                                           reduction="sum", activation=activation,
                                           sample_weight=sw)
                g = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in grads])
            else:
                err = _api.error(weights, Xb, y2, output=output, num_threads=threads,
                                 activation=activation, sample_weight=sw, reduction="sum")
                g = None
    except ValueError as exc:
        message = _nonfinite_message(Xb, yb, flat_w.dtype, index, row0, names)
        if message is None:
            message = f"chunk {index} of {names[0]} (rows {row0} to {row0 + n - 1}): {exc}"
        return 0.0, None, n, frozenset(), message
    return float(err), g, (total if sw is not None else n), frozenset([_api.ISA]), None


def _add(*parts):
    """The sum of partial sums, added one after the other in the order given (the order is part
    of the result). The first bad chunk's message, if any, replaces the sum."""
    for p in parts:
        if p[4] is not None:
            return p
    err, g, n, isas = parts[0][:4]
    g = None if g is None else g.copy()
    for p in parts[1:]:
        err += p[0]
        if g is not None:
            g += p[1]
        n += p[2]
        isas = isas | p[3]
    return err, g, n, isas, None


def _forward_block(Xb, flat_w, shapes, model, index, row0, names):
    output, activation, _ = model
    weights = layer_views(flat_w, shapes)
    if Xb.shape[0] == 0:
        return np.empty((0, shapes[-1][1]), dtype=flat_w.dtype)
    threads, lock = _worker_slot()
    try:
        with lock:
            out = _api.forward(weights, Xb, output=output, activation=activation,
                               num_threads=threads)
    except ValueError as exc:
        message = _nonfinite_message(Xb, None, flat_w.dtype, index, row0, names)
        raise ValueError(message or f"chunk {index} of {names[0]}: {exc}") from None
    return out


# ---------------------------------------------------------------------------------------------
# The reduction

# Partial sums added by one task of the tree: fewer tasks and fewer hops between workers than a
# binary tree (each task costs the scheduler milliseconds), yet no worker receives every chunk's
# gradient at once.
_FAN_IN = 8


def _tree(parts, combine):
    """Add the partial sums in chunk order, _FAN_IN at a time, level by level: for 20 chunks,
    (p0 + ... + p7) + (p8 + ... + p15) + (p16 + ... + p19). The shape of the tree, hence the order
    of every addition, depends on the number of chunks only. combine(level, index, group) makes
    the node that adds a group."""
    level = 0
    while len(parts) > 1:
        parts = [combine(level, i, parts[i:i + _FAN_IN]) if len(parts[i:i + _FAN_IN]) > 1
                 else parts[i] for i in range(0, len(parts), _FAN_IN)]
        level += 1
    return parts[0]


# Weights this small (times the number of chunks) travel inside every chunk's task rather than as
# a key of their own that the workers fetch: one round trip less per evaluation (5-10 ms measured
# on the 2-core machine for [8, 32, 32, 1]), for a few copies of a small vector.
_INLINE_BYTES = 1 << 20


def _submit(client, weights, shapes, model, mode, data, token):
    """The evaluation's graph, submitted: a Future of the root of the tree."""
    w_key = f"fastbp-weights-{token}"
    args = (shapes, model, mode)
    futures = getattr(data, "futures", None)
    inline = weights.nbytes * len(data.row_chunks) <= _INLINE_BYTES
    if futures is not None:
        # data persisted by fit: a plain graph around the chunks' futures (building Delayed
        # objects costs the client about 2 ms per chunk and evaluation)
        dsk = {} if inline else {w_key: weights}
        w_arg = weights if inline else w_key
        keys = []
        for i, (xf, yf) in enumerate(futures):
            key = f"fastbp-{mode}-{token}-{i}"
            dsk[key] = (_chunk_sums, w_arg, *args, xf, yf, i, data.starts[i], data.names)
            keys.append(key)

        def combine(level, i, group):
            key = f"fastbp-add-{token}-{level}-{i}"
            dsk[key] = (_add, *group)
            return key

        return client.get(dsk, _tree(keys, combine), sync=False)
    w_node = weights if inline else dask.delayed(weights, name=w_key)
    parts = [dask.delayed(_chunk_sums, pure=False)(
                 w_node, *args, xb, yb, i, data.starts[i], data.names,
                 dask_key_name=f"fastbp-{mode}-{token}-{i}")
             for i, (xb, yb) in enumerate(data.blocks())]
    return client.compute(_tree(parts, lambda level, i, group: dask.delayed(_add, pure=False)(
        *group, dask_key_name=f"fastbp-add-{token}-{level}-{i}")))


def _sums(client, weights, shapes, model, mode, data):
    """(sum of e_n, flat float64 gradient sum or None, N) over every chunk of `data`.

    weights: the flat weights, sent once per evaluation as one key of the graph (not with every
    chunk's task, unless they are small): the scheduler hands them to one worker and the others
    fetch them from there. They are not scattered, because scattered data that a dying worker held
    cannot be rebuilt (and a scatter to a dying worker fails), whereas the graph is recomputed."""
    future = _submit(client, weights, shapes, model, mode, data, uuid.uuid4().hex)
    try:
        err, g, n, isas, problem = future.result()
    except BaseException:               # Ctrl-C on the client included: stop the computation
        future.cancel()
        raise
    if problem is not None:
        raise ValueError(problem)
    if model[2]:  # weighted: n is the total weight
        if not n > 0:
            raise ValueError(f"sample_weight must not be all zero: the samples of "
                             f"{data.names[0]} have a total weight of {n!r}")
    elif n != data.n:  # cannot happen unless the data changed under us; never divide by a wrong N
        raise RuntimeError(f"the chunks of {data.names[0]} held {n} samples, expected {data.n}")
    if len(isas) > 1:
        warnings.warn(f"the workers ran different kernel sets {sorted(isas)}: results are "
                      f"accurate but not bitwise reproducible across runs or clusters; pin one "
                      f"with FASTBP_SIMD in every worker's environment (see "
                      f"fastbp.distributed.kernels)", RuntimeWarning, stacklevel=3)
    return err, g, n


# ---------------------------------------------------------------------------------------------
# Public functions

def gradient(weights, X, y, output: str = "tanh", sample_weight=None, reduction: str = "mean",
             client=None, activation: str = "tanh") -> tuple[float, list[np.ndarray]]:
    """Compute E_in and its gradient over Dask arrays, as `fastbp.gradient` does in memory.

    Each row chunk's sums are computed by fastbp's kernel on the worker that holds the chunk;
    only the weights travel to the workers and only the partial sums come back.

    Parameters
    ----------
    weights : list of ndarray
        W(1), ..., W(L) in the client's memory, W(l) of shape (d(l-1)+1, d(l)); float32 or
        float64.
    X : dask.array.Array of shape (N, d(0))
        The inputs, chunked by rows only (one chunk across the columns).
    y : dask.array.Array of shape (N, d(L)) or (N,)
        The targets (1-D when d(L) = 1), with the row chunks of X.
    output : {"tanh", "linear", "logistic", "softmax", "poisson"}, default="tanh"
        The output activation and its error measure, as for `fastbp.gradient`.
    sample_weight : dask.array.Array of shape (N,) or None, default=None
        Weights w_n >= 0 with the row chunks of X (each chunk's weights travel with its
        targets); E_in is then sum_n w_n e_n / sum_n w_n and its gradient the weighted mean.
    reduction : {"mean", "sum"}, default="mean"
        "mean" gives E_in and its gradient; "sum" gives N E_in and the summed gradient.
    client : dask.distributed.Client or None, default=None
        The cluster's client; None takes the default client.
    activation : {"tanh", "relu", "logistic", "identity"}, default="tanh"
        The activation of every hidden layer.

    Returns
    -------
    E_in : float
        The error (the sum with ``reduction="sum"``).
    grads : list of ndarray
        [dE_in/dW(1), ..., dE_in/dW(L)], shaped and typed like the weights. Each chunk's sums
        come from the kernel (which sums in float64 and rounds once to the weights' dtype); they
        are added across chunks in float64, divided by N once, then rounded to the weights'
        dtype.

    Raises
    ------
    TypeError
        If an argument is of the wrong type (e.g. X not a Dask array), raised on the client
        before anything is computed.
    ValueError
        If a shape or chunking does not fit the network, or an option is not one of its values
        (on the client, before anything is computed); or if a chunk holds NaN or infinity (the
        message names the chunk and the row).

    See Also
    --------
    fastbp.gradient : The same on arrays in memory.
    error : E_in alone.

    Notes
    -----
    Within 1e-12 (float64) of `fastbp.gradient` on the same data in memory; bitwise the same from
    run to run and on any number of workers for a given chunking (see the module docstring).

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> from dask.distributed import Client
    >>> import fastbp
    >>> from fastbp import distributed
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
    ...                 dashboard_address=None)
    >>> rng = np.random.default_rng(0)
    >>> X_mem = rng.standard_normal((1000, 3))
    >>> y_mem = np.tanh(X_mem[:, :1] - X_mem[:, 1:2])
    >>> X = da.from_array(X_mem, chunks=(250, 3))       # 4 row chunks, one across the columns
    >>> y = da.from_array(y_mem, chunks=(250, 1))
    >>> weights = fastbp.init_weights([3, 5, 1], seed=0)
    >>> E, grads = distributed.gradient(weights, X, y, client=client)
    >>> E_mem, grads_mem = fastbp.gradient(weights, X_mem, y_mem)
    >>> bool(abs(E - E_mem) <= 1e-12 * E_mem), [g.shape for g in grads]
    (True, [(4, 5), (6, 1)])
    >>> all(np.allclose(g, h, rtol=1e-12, atol=1e-15) for g, h in zip(grads, grads_mem))
    True
    >>> client.close()
    """
    weights, widths, dtype = _checks.check_weights(weights)
    model = _model(output, activation, widths, sample_weight)
    reduction = _checks.check_reduction(reduction)
    data = _Data(X, y, widths).weighted(sample_weight)
    client = _client(client)
    shapes = layer_shapes(widths)
    err, g, n = _sums(client, flatten(weights, dtype), shapes, model, _GRADIENT, data)
    if reduction == "mean":
        err, g = err / n, g / n
    return err, [v.astype(dtype) for v in layer_views(g, shapes)]


def error(weights, X, y, output: str = "tanh", sample_weight=None, client=None,
          activation: str = "tanh") -> float:
    """Compute E_in over Dask arrays, as `fastbp.error` does in memory.

    Parameters
    ----------
    weights : list of ndarray
        W(1), ..., W(L) in the client's memory, as for `gradient`.
    X : dask.array.Array of shape (N, d(0))
        The inputs, chunked by rows only.
    y : dask.array.Array of shape (N, d(L)) or (N,)
        The targets, with the row chunks of X.
    output : {"tanh", "linear", "logistic", "softmax", "poisson"}, default="tanh"
        The output activation and its error measure.
    sample_weight : dask.array.Array of shape (N,) or None, default=None
        Weights w_n >= 0 with the row chunks of X, as for `gradient`.
    client : dask.distributed.Client or None, default=None
        The cluster's client; None takes the default client.
    activation : {"tanh", "relu", "logistic", "identity"}, default="tanh"
        The activation of every hidden layer.

    Returns
    -------
    float
        E_in = (1/N) sum_n e_n (the weighted mean with sample weights). The error sums are
        those `gradient` adds, in the same order: ``error(...)`` equals ``gradient(...)[0]``
        bitwise.

    Raises
    ------
    TypeError
        If an argument is of the wrong type, before anything is computed.
    ValueError
        If a shape, chunking or option is not valid (before anything is computed), or a chunk
        holds NaN or infinity (the message names the chunk and the row).

    See Also
    --------
    fastbp.error : The same on arrays in memory.

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> from dask.distributed import Client
    >>> import fastbp
    >>> from fastbp import distributed
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
    ...                 dashboard_address=None)
    >>> rng = np.random.default_rng(0)
    >>> X_mem = rng.standard_normal((1000, 3))
    >>> y_mem = np.tanh(X_mem[:, :1] - X_mem[:, 1:2])
    >>> X = da.from_array(X_mem, chunks=(250, 3))       # 4 row chunks, one across the columns
    >>> y = da.from_array(y_mem, chunks=(250, 1))
    >>> weights = fastbp.init_weights([3, 5, 1], seed=0)
    >>> E = distributed.error(weights, X, y, client=client)
    >>> E == distributed.gradient(weights, X, y, client=client)[0]
    True
    >>> bool(abs(E - fastbp.error(weights, X_mem, y_mem)) <= 1e-12 * E)
    True
    >>> client.close()
    """
    weights, widths, dtype = _checks.check_weights(weights)
    model = _model(output, activation, widths, sample_weight)
    data = _Data(X, y, widths).weighted(sample_weight)
    client = _client(client)
    err, _, n = _sums(client, flatten(weights, dtype), layer_shapes(widths), model, _ERROR, data)
    return err / n


def forward(weights, X, output: str = "tanh", activation: str = "tanh"):
    """Compute the outputs x(L) for every row of a Dask array, where its chunks are.

    Parameters
    ----------
    weights : list of ndarray
        W(1), ..., W(L) in the client's memory, as for `gradient`.
    X : dask.array.Array of shape (N, d(0))
        The inputs, chunked by rows only.
    output : {"tanh", "linear", "logistic", "softmax", "poisson"}, default="tanh"
        The output activation.
    activation : {"tanh", "relu", "logistic", "identity"}, default="tanh"
        The activation of every hidden layer.

    Returns
    -------
    dask.array.Array of shape (N, d(L))
        The outputs in the weights' dtype, with the row chunks of X, lazy: call ``.compute()``,
        ``.persist()`` or ``.to_zarr(...)`` on it. The weights are one key of its graph. Each
        chunk's rows are bitwise `fastbp.forward` of those rows.

    Raises
    ------
    TypeError
        If an argument is of the wrong type, at once.
    ValueError
        If a shape, chunking or option is not valid, at once; if a chunk holds NaN or infinity,
        when the array is computed (the message names the chunk and the row).

    See Also
    --------
    fastbp.forward : The same on an array in memory.

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> from dask.distributed import Client
    >>> import fastbp
    >>> from fastbp import distributed
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
    ...                 dashboard_address=None)
    >>> rng = np.random.default_rng(0)
    >>> X_mem = rng.standard_normal((1000, 3))
    >>> y_mem = np.tanh(X_mem[:, :1] - X_mem[:, 1:2])
    >>> X = da.from_array(X_mem, chunks=(250, 3))       # 4 row chunks, one across the columns
    >>> y = da.from_array(y_mem, chunks=(250, 1))
    >>> weights = fastbp.init_weights([3, 5, 1], seed=0)
    >>> outputs = distributed.forward(weights, X)
    >>> outputs.shape, outputs.chunks[0]
    ((1000, 1), (250, 250, 250, 250))
    >>> bool(np.array_equal(outputs.compute(), fastbp.forward(weights, X_mem)))
    True
    >>> client.close()
    """
    weights, widths, dtype = _checks.check_weights(weights)
    model = _model(output, activation, widths, None)
    data = _Data(X, None, widths)
    shapes = layer_shapes(widths)
    token = uuid.uuid4().hex
    flat = dask.delayed(flatten(weights, dtype), name=f"fastbp-weights-{token}")
    blocks = []
    for i, (xb, _) in enumerate(data.blocks()):
        out = dask.delayed(_forward_block, pure=False)(
            xb, flat, shapes, model, i, data.starts[i], data.names,
            dask_key_name=f"fastbp-forward-{token}-{i}")
        blocks.append(da.from_delayed(out, shape=(data.row_chunks[i], widths[-1]), dtype=dtype))
    return da.concatenate(blocks, axis=0) if len(blocks) > 1 else blocks[0]


predict = forward


def _model(output, activation, widths, sample_weight):
    """(output, activation, weighted): what every chunk's task is told about the network."""
    output = _checks.check_output(output)
    activation = _checks.check_activation(activation)
    _checks.check_output_width(output, widths)
    return output, activation, sample_weight is not None


# ---------------------------------------------------------------------------------------------
# The workers' kernel sets

def _worker_config(dask_worker=None):
    import os

    from . import __version__
    state = getattr(dask_worker, "state", dask_worker)
    return {"fastbp": __version__, "kernels": _api.ISA,
            "FASTBP_SIMD": os.environ.get("FASTBP_SIMD", ""),
            "threads": int(state.nthreads) if state is not None else None}


def kernels(client=None) -> dict:
    """List the kernel set each worker's fastbp runs.

    Workers whose CPUs differ pick different sets, which round differently: results are then still
    accurate but no longer bitwise reproducible. Pin one set on every worker by setting
    FASTBP_SIMD (baseline, avx2 or avx512: at most that set) in the workers' environment before
    they start, e.g. ``LocalCluster(env={"FASTBP_SIMD": "avx2"})``, ``FASTBP_SIMD=avx2 dask worker
    tcp://scheduler:8786``, or the ``env`` of a dask-jobqueue / dask-kubernetes worker spec.

    Parameters
    ----------
    client : dask.distributed.Client or None, default=None
        The cluster's client; None takes the default client.

    Returns
    -------
    dict
        {worker address: its kernel set, "avx512", "avx2+fma", "neon" or "baseline"}.

    See Also
    --------
    show_config : Each worker's version, kernels and threads, printed.

    Examples
    --------
    >>> from dask.distributed import Client
    >>> from fastbp import distributed
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
    ...                 dashboard_address=None)
    >>> sets = distributed.kernels(client)
    >>> len(sets), set(sets.values()) <= {"avx512", "avx2+fma", "neon", "baseline"}
    (1, True)
    >>> client.close()
    """
    return {addr: cfg["kernels"] for addr, cfg in _client(client).run(_worker_config).items()}


def show_config(client=None, file=None) -> None:
    """Print, for each worker, fastbp's version, its kernel set, FASTBP_SIMD and its threads.

    Parameters
    ----------
    client : dask.distributed.Client or None, default=None
        The cluster's client; None takes the default client.
    file : file-like or None, default=None
        Where to print; None prints to standard output.

    See Also
    --------
    kernels : The kernel sets alone, as a dict.
    fastbp.show_config : The same for the client's own fastbp.

    Examples
    --------
    >>> from dask.distributed import Client
    >>> from fastbp import distributed
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=2,
    ...                 dashboard_address=None)
    >>> distributed.show_config(client)  # doctest: +ELLIPSIS
    fastbp.distributed: 1 workers, kernel sets [...]
      inproc://...: fastbp ..., kernels ..., FASTBP_SIMD=..., threads 2
    >>> client.close()
    """
    import sys
    file = sys.stdout if file is None else file
    configs = _client(client).run(_worker_config)
    sets = sorted({c["kernels"] for c in configs.values()})
    lines = [f"fastbp.distributed: {len(configs)} workers, kernel sets {sets}"
             + ("" if len(sets) <= 1 else " (MIXED: not bitwise reproducible; pin FASTBP_SIMD)")]
    for addr, c in sorted(configs.items()):
        lines.append(f"  {addr}: fastbp {c['fastbp']}, kernels {c['kernels']}, "
                     f"FASTBP_SIMD={c['FASTBP_SIMD']!r}, threads {c['threads']}")
    print("\n".join(lines), file=file)


# ---------------------------------------------------------------------------------------------
# Training: an objective over data held by the workers, and fit

def _screen_chunk(Xb, yb, index, row0, names, dtype):
    """None, or a message naming this chunk's first NaN or infinity (in the weights' dtype)."""
    return _nonfinite_message(Xb, yb, dtype, index, row0, names)


class ClusterObjective(Objective):
    """E_in and its gradient over a data set held by the workers of a Dask cluster.

    The data are converted to the network's dtype, persisted in the workers' memory and screened
    for NaN and infinity once, here; every evaluation then sends the weights (once) and gets the
    partial sums back (see `gradient`). With `fastbp.training.train`, every full-batch method
    runs on it unchanged, the method itself on the client; `fit` is that.

    Parameters
    ----------
    client : dask.distributed.Client
        The cluster's client.
    X : dask.array.Array of shape (N, d(0))
        The inputs, chunked by rows only.
    y : dask.array.Array of shape (N, d(L)) or (N,)
        The targets, with the row chunks of X.
    widths : list of int
        The network's layer widths d(0), ..., d(L).
    dtype : {numpy.float32, numpy.float64}
        The network's dtype; the data are converted to it once, on the workers.
    output : {"tanh", "linear", "logistic", "softmax", "poisson"}
        The output activation and its error measure.
    weight_decay : float, default=0.0
        The lambda of the penalty (lambda / N) ||w||^2, N the number of rows of X.
    names : tuple of str, default=("X", "y")
        The names of X and y in messages.
    activation : {"tanh", "relu", "logistic", "identity"}, default="tanh"
        The activation of every hidden layer.
    sample_weight : dask.array.Array of shape (N,) or None, default=None
        Weights w_n >= 0 with the row chunks of X (E_in weighted, as for `gradient`).

    See Also
    --------
    fit : Training on it with a full-batch method.

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> from dask.distributed import Client
    >>> import fastbp
    >>> from fastbp import distributed
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
    ...                 dashboard_address=None)
    >>> rng = np.random.default_rng(0)
    >>> X_mem = rng.standard_normal((400, 2))
    >>> y_mem = np.tanh(X_mem[:, :1])
    >>> X, y = da.from_array(X_mem, chunks=(100, 2)), da.from_array(y_mem, chunks=(100, 1))
    >>> objective = distributed.ClusterObjective(client, X, y, [2, 3, 1], np.float64, "tanh")
    >>> weights = fastbp.init_weights([2, 3, 1], seed=1)
    >>> E = objective.error_in(weights)
    >>> bool(abs(E - fastbp.error(weights, X_mem, y_mem)) <= 1e-12 * E)
    True
    >>> objective.release()
    >>> client.close()
    """

    def __init__(self, client, X, y, widths, dtype, output, weight_decay=0.0,
                 names=("X", "y"), activation="tanh", sample_weight=None):
        data = _Data(X, y, widths, names).weighted(sample_weight)
        super().__init__(widths, dtype, data.n, weight_decay)
        self.client, self.output = client, output
        self.model = _model(output, activation, widths, sample_weight)
        self.data = data.persisted(client, self.dtype)
        self.blocks = self.data.blocks()
        screens = [dask.delayed(_screen_chunk, pure=False)(xb, yb, i, self.data.starts[i],
                                                          names, self.dtype)
                   for i, (xb, yb) in enumerate(self.blocks)]
        problems = [p for p in client.compute(screens, sync=True) if p is not None]
        if problems:
            self.release()
            raise ValueError(problems[0])

    def _sums(self, weights, mode):
        # a new flat vector: the method goes on changing its own while this one is in flight
        return _sums(self.client, self.flat(weights), self.shapes, self.model, mode, self.data)

    def error_in(self, weights) -> float:
        err, _, n = self._sums(weights, _ERROR)
        return err / n

    def gradient_in(self, weights, grads) -> float:
        err, total, n = self._sums(weights, _GRADIENT)
        np.divide(total, n, out=total)
        for g, t in zip(grads, self.views(total)):
            g[...] = t                      # rounded once to the network's dtype
        return err / n

    def release(self) -> None:
        """Let the workers drop the persisted data."""
        self.blocks = None
        self.data = None


def fit(weights, X, y, output: str = "tanh", method: str = "lbfgs", client=None, *,
        activation: str = "tanh", sample_weight=None, **options) -> History:
    """Train a network on Dask arrays with a full-batch method, every gradient on the cluster.

    The weights stay in the client's memory and are updated in place at the end of every epoch;
    the method (line search, L-BFGS, ...) runs on the client.

    Parameters
    ----------
    weights : list of ndarray
        W(1), ..., W(L), writeable float arrays in the client's memory, updated in place.
    X : dask.array.Array of shape (N, d(0))
        The inputs, chunked by rows only (as for `gradient`).
    y : dask.array.Array of shape (N, d(L)) or (N,)
        The targets, with the row chunks of X.
    output : {"tanh", "linear", "logistic", "softmax", "poisson"}, default="tanh"
        The output activation and its error measure.
    method : {"lbfgs", "gd", "variable-lr", "steepest", "cg", "rprop"}, default="lbfgs"
        A full-batch method ("lbfgs" needs SciPy). The mini-batch methods sgd and adam are
        sequential by nature (each step needs the weights the previous one left); the user guide's
        Dask page says how to train them on a cluster.
    client : dask.distributed.Client or None, default=None
        The cluster's client; None takes the default client.
    activation : {"tanh", "relu", "logistic", "identity"}, default="tanh"
        The activation of every hidden layer.
    sample_weight : dask.array.Array of shape (N,) or None, default=None
        Weights w_n >= 0 with the row chunks of X, as for `gradient`.
    **options
        Those of `fastbp.fit` that apply: the method's own, epochs, weight_decay,
        validation_data (a pair of Dask arrays), early_stopping, patience, tol, callback,
        progress, warm_start (a History). Not: num_threads (each worker uses its own threads,
        ``threads_per_worker``), validation_fraction (split the Dask arrays yourself).

    Returns
    -------
    History
        What happened at each epoch, as `fastbp.fit` returns it.

    Raises
    ------
    TypeError
        If an argument is of the wrong type, on the client before any weight changes.
    ValueError
        If an argument or the data is not valid (a NaN is named by its chunk and row), on the
        client before any weight changes.

    See Also
    --------
    fastbp.fit : The same on arrays in memory.

    Notes
    -----
    X and y are persisted on the workers once (converted to the network's dtype), the weights
    sent once per evaluation. The result is bitwise the same from run to run, on any number of
    workers and when a worker dies mid-fit (Dask recomputes its chunks from their source), for a
    given chunking and one kernel set on every worker. A Ctrl-C on the client stops as in
    `fastbp.fit`: the weights are those of the last completed epoch.

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> from dask.distributed import Client
    >>> import fastbp
    >>> from fastbp import distributed
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
    ...                 dashboard_address=None)
    >>> rng = np.random.default_rng(0)
    >>> X_mem = rng.standard_normal((1000, 3))
    >>> y_mem = np.tanh(X_mem[:, :1] - X_mem[:, 1:2])
    >>> X = da.from_array(X_mem, chunks=(250, 3))       # 4 row chunks, one across the columns
    >>> y = da.from_array(y_mem, chunks=(250, 1))
    >>> weights = fastbp.init_weights([3, 5, 1], seed=0)
    >>> history = distributed.fit(weights, X, y, method="lbfgs", epochs=20, client=client)
    >>> len(history), bool(history.E_in[-1] < history.E_in[0])
    (20, True)
    >>> in_memory = fastbp.init_weights([3, 5, 1], seed=0)
    >>> h = fastbp.fit(in_memory, X_mem, y_mem, method="lbfgs", epochs=20)
    >>> bool(abs(h.E_in[-1] - history.E_in[-1]) <= 1e-9 * h.E_in[-1])
    True
    >>> client.close()
    """
    opts, checked, widths, dtype, output, activation = _check_model_and_options(
        weights, output, method, options, activation)
    if not opts.method_class.full_batch:
        full = [name for name, c in REGISTRY.items() if c.full_batch]
        raise ValueError(f"method {opts.method!r} steps through mini-batches one after another, "
                         f"which a cluster cannot share out; fastbp.distributed.fit runs the "
                         f"full-batch methods {', '.join(map(repr, full))}")
    if opts.num_threads is not None:
        raise ValueError(f"num_threads does not apply to fastbp.distributed.fit: each worker "
                         f"runs fastbp on its own threads (threads_per_worker), got "
                         f"num_threads={opts.num_threads!r}")
    if opts.validation_fraction is not None:
        raise ValueError("validation_fraction does not apply to fastbp.distributed.fit: give "
                         "validation_data=(X_val, y_val), Dask arrays split off the data")
    _Data(X, y, widths).weighted(sample_weight)
    validation = opts.validation_data
    names_val = ("validation_data[0]", "validation_data[1]")
    if validation is not None:
        if not isinstance(validation, (tuple, list)) or len(validation) != 2:
            raise TypeError(f"validation_data must be a pair (X_val, y_val) of Dask arrays, got "
                            f"{type(validation).__name__}"
                            + (f" of length {len(validation)}"
                               if isinstance(validation, (tuple, list)) else ""))
        _Data(validation[0], validation[1], widths, names_val)
    _check_start(opts, checked, widths, "fastbp.distributed.fit")
    client = _client(client)

    objective = ClusterObjective(client, X, y, widths, dtype, output, opts.weight_decay,
                                 activation=activation, sample_weight=sample_weight)
    val_objective = None
    try:
        if validation is not None:
            val_objective = ClusterObjective(client, validation[0], validation[1], widths,
                                             dtype, output, names=names_val,
                                             activation=activation)
        return train(list(weights), objective, opts, val_objective,
                     np.random.default_rng(opts.seed))
    finally:
        objective.release()
        if val_objective is not None:
            val_objective.release()
