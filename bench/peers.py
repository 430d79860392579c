"""The peers fastbp is measured against, each computing E_in and dE_in/dW for the same network.

Every peer is set up by a `prepare_<name>(weights, X, y, threads)` function that returns a
`Prepared`: `run()` is the call that is timed (it does the whole job: forward pass, error, backward
pass, every gradient), and `convert(result)` turns what `run()` returned into fastbp's convention,
outside the timing: `(E_in, [dE_in/dW(1), ..., dE_in/dW(L)])` with W(l) of shape (d(l-1)+1, d(l)),
row 0 the bias, E_in = (1/N) sum_n ||x(L)_n - y_n||^2. `output` says which fastbp output ("tanh" or
"linear") the peer's network matches, so that the check compares like with like.

The peers are optional: `available()` tells which ones import. `numpy_gradient` is the batched NumPy
implementation, written here (there is no library to import for it); the others call the libraries'
own automatic or hand-written backpropagation:

  reference   fastbp.reference.gradient, the per-sample pure-Python twin (the baseline)
  numpy       numpy_gradient below: one matrix product per layer and direction over the whole batch
  torch       PyTorch eager, autograd (torch.autograd.grad), loss = mean over samples of the summed
              squared errors
  torch.compile  the same loss function through torch.compile (inductor); backward by AOTAutograd
  jax         jax.jit(jax.value_and_grad(loss))
  sklearn     scikit-learn's MLPRegressor._backprop (its own batched backprop, tanh hidden layers,
              identity output, loss = squared_error / 2 averaged over samples AND outputs,
              gradient of the sum over outputs / (2N)); converted by E_in = 2 d(L) loss,
              grad = 2 sklearn grad, and checked against fastbp with output="linear"
  fann        FANN 2.2 (Debian's libfann2) through ctypes: batch training epoch with learning rate 0
              in effect (see prepare_fann), single-threaded; float64 uses libdoublefann, float32
              libfloatfann

A classifier configuration (ReLU hidden units, softmax output, E_in the mean cross-entropy
-(1/N) sum_n sum_k y_nk log x(L)_nk, one-hot y) goes through `prepare(name, ..., activation="relu",
output="softmax")`: the same peers with their own ReLU and cross-entropy (torch.nn.functional.relu
and cross_entropy, jax.nn.relu and log_softmax), and scikit-learn's MLPClassifier._backprop
instead of MLPRegressor's. FANN has no softmax output: it is not run there (NotApplicable).
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import importlib
import inspect
import os
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import _common  # bench/, on sys.path wherever peers is imported
import numpy as np

import fastbp
import fastbp.reference


@dataclass
class Prepared:
    run: Callable[[], Any]                                   # the timed call
    convert: Callable[[Any], tuple[float, list[np.ndarray]]]  # its result in fastbp's convention
    output: str = "tanh"                                     # which fastbp output it matches
    threads: str = ""                                        # how many threads it runs on
    notes: list[str] = field(default_factory=list)
    close: Callable[[], None] = lambda: None                 # frees what the peer holds
    # If set: a second check on a case the peer is known to compute exactly, used only when the
    # check on the benchmark's own data fails; returns (peer's (E_in, grads), fastbp's). See
    # prepare_fann (FANN's clipped tanh derivative).
    recheck: Callable[[], tuple[Any, Any]] | None = None


def _y2d(y, n):
    return np.ascontiguousarray(y).reshape(n, -1)


def _is_linear_layer(l, L, output):
    return l == L - 1 and output == "linear"


# --------------------------------------------------------------------------------------------------
# NumPy, batched
# --------------------------------------------------------------------------------------------------

def numpy_gradient(weights, X, y, output="tanh"):
    """(E_in, grads) for the batch X (N, d(0)), y (N, d(L)) or (N,), in the dtype of the weights.

    Forward: s(l) = x(l-1) W(l)[1:] + W(l)[0] for all samples at once (x(l) without its leading 1,
    one row per sample), x(l) = tanh(s(l)) (the output layer: tanh or identity). Backward:
    delta(L) = (2/N) (x(L) - y) * theta'(s(L)); dE/dW(l)[1:] = x(l-1)^T delta(l),
    dE/dW(l)[0] = sum over samples of delta(l); delta(l-1) = (delta(l) W(l)[1:]^T) * (1 - x(l-1)^2).
    The 1/N is folded into delta(L), so every gradient comes out averaged.
    """
    n = X.shape[0]
    L = len(weights)
    y = _y2d(y, n)
    xs = [X]
    for l, W in enumerate(weights):
        s = xs[-1] @ W[1:]
        s += W[0]
        if not _is_linear_layer(l, L, output):
            np.tanh(s, out=s)
        xs.append(s)
    delta = xs[-1] - y
    E_in = float(np.vdot(delta, delta)) / n
    delta *= 2.0 / n
    if output == "tanh":
        delta *= 1.0 - xs[-1] * xs[-1]
    grads = [None] * L
    for l in range(L - 1, -1, -1):
        W = weights[l]
        g = np.empty_like(W)
        np.matmul(xs[l].T, delta, out=g[1:])
        np.sum(delta, axis=0, out=g[0])
        grads[l] = g
        if l > 0:
            back = delta @ W[1:].T
            x = xs[l]                      # x(l) is no longer needed: turn it into 1 - x(l)^2
            x *= x
            np.subtract(1.0, x, out=x)
            back *= x
            delta = back
    return E_in, grads


def prepare_numpy(weights, X, y, threads, output="tanh"):
    return Prepared(run=lambda: numpy_gradient(weights, X, y, output),
                    convert=lambda r: r, output=output,
                    threads=f"BLAS {threads} (threadpoolctl)")


# --------------------------------------------------------------------------------------------------
# fastbp.reference (per sample, pure Python): timed on a slice, scaled by the caller
# --------------------------------------------------------------------------------------------------

def prepare_reference(weights, X, y, threads, output="tanh"):
    return Prepared(run=lambda: fastbp.reference.gradient(weights, X, y, output=output),
                    convert=lambda r: r, output=output, threads="1 (Python loop)")


# --------------------------------------------------------------------------------------------------
# PyTorch: eager and torch.compile
# --------------------------------------------------------------------------------------------------

def _torch_setup(weights, X, y, threads, output, activation="tanh"):
    """(torch, the model _common.torch_model builds, its weight matrices and its bias vectors,
    X and y as tensors)."""
    import torch
    model = _common.torch_model(weights, output, activation, threads)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    Ws = [lin.weight for lin in linears]       # (d(l), d(l-1)): nn.Linear's layout
    bs = [lin.bias for lin in linears]
    Xt = torch.from_numpy(np.ascontiguousarray(X))
    yt = torch.from_numpy(_y2d(y, X.shape[0]))
    return torch, model, Ws, bs, Xt, yt


def _squared_error(model, X, y):
    return ((model(X) - y) ** 2).sum() / X.shape[0]   # mean over samples of the summed squares


def _torch_compiled(loss_fn):
    """torch.compile(loss_fn) for one configuration. Dynamo caches compiled code per code object,
    and every configuration's loss_fn is the same code: past recompile_limit (8) configurations
    in one process it stops compiling and runs the function eagerly, silently slower (a full
    compare.py run compiles the tanh loss_fn for 10 shapes and dtypes: E float32 and A32 ran
    eager). The limit raised here, every configuration gets its own compiled graph."""
    import torch
    import torch._dynamo.config as dynamo_config
    for name in ("recompile_limit", "cache_size_limit"):    # the older name before PyTorch 2.6
        if hasattr(dynamo_config, name):
            setattr(dynamo_config, name, max(getattr(dynamo_config, name), 1024))
            break
    return torch.compile(loss_fn, dynamic=False)


def _torch_convert(result):
    loss, gW, gb = result
    grads = [np.vstack([b.detach().numpy()[None, :], W.detach().numpy().T])
             for W, b in zip(gW, gb)]
    return float(loss.detach()), grads


def _torch_prepared(weights, X, y, threads, output, compiled, activation="tanh",
                    loss_fn=_squared_error):
    """The timed call: loss_fn(model, X, y), then torch.autograd.grad of it for every weight
    matrix and bias vector."""
    torch, model, Ws, bs, Xt, yt = _torch_setup(weights, X, y, threads, output, activation)
    L = len(weights)
    if compiled:
        loss_fn = _torch_compiled(loss_fn)
    params = Ws + bs

    def run():
        loss = loss_fn(model, Xt, yt)
        g = torch.autograd.grad(loss, params)
        return loss, g[:L], g[L:]
    p = Prepared(run=run, convert=_torch_convert, output=output,
                 threads=f"torch.set_num_threads({threads})")
    if compiled:
        p.notes.append("compiled in the warm-up call, not timed")
    return p


def prepare_torch(weights, X, y, threads, output="tanh"):
    return _torch_prepared(weights, X, y, threads, output, compiled=False)


def prepare_torch_compile(weights, X, y, threads, output="tanh"):
    return _torch_prepared(weights, X, y, threads, output, compiled=True)


# --------------------------------------------------------------------------------------------------
# JAX
# --------------------------------------------------------------------------------------------------

def prepare_jax(weights, X, y, threads, output="tanh"):
    import jax
    jax.config.update("jax_enable_x64", True)   # else float64 arrays silently become float32
    import jax.numpy as jnp
    n = X.shape[0]
    L = len(weights)

    def loss(params, X, y):
        a = X
        for l, (W, b) in enumerate(params):
            a = a @ W + b
            if not _is_linear_layer(l, L, output):
                a = jnp.tanh(a)
        return jnp.sum((a - y) ** 2) / X.shape[0]

    f = jax.jit(jax.value_and_grad(loss))
    params = [(jnp.asarray(np.ascontiguousarray(w[1:])), jnp.asarray(np.ascontiguousarray(w[0])))
              for w in weights]
    Xj = jnp.asarray(X)
    yj = jnp.asarray(_y2d(y, n))
    if Xj.dtype != X.dtype:
        raise RuntimeError(f"JAX turned {X.dtype} into {Xj.dtype}")

    def run():
        return jax.block_until_ready(f(params, Xj, yj))

    def convert(result):
        value, grads = result
        return float(value), [np.vstack([np.asarray(gb)[None, :], np.asarray(gW)])
                              for gW, gb in grads]

    threads_note = ("1 (XLA_FLAGS=--xla_cpu_multi_thread_eigen=false)" if threads == 1
                    else "XLA's own pool (all usable cores; JAX cannot be limited to a count)")
    return Prepared(run=run, convert=convert, output=output, threads=threads_note,
                    notes=["compiled in the warm-up call, not timed"])


# --------------------------------------------------------------------------------------------------
# scikit-learn: MLPRegressor._backprop
# --------------------------------------------------------------------------------------------------

def prepare_sklearn(weights, X, y, threads, output="linear"):
    """scikit-learn's own batched backprop on an MLPRegressor given fastbp's weights.

    MLPRegressor's output is the identity, so this is compared with fastbp's output="linear" (the
    work differs by d(L) tanh per sample, which is negligible). Its loss is
    0.5 * mean over samples and outputs of the squared errors, and its gradient is that of
    (1/(2N)) sum_n ||x(L)_n - y_n||^2: converting to fastbp's convention is E_in = 2 d(L) loss and
    grad = 2 * (intercept_grads stacked on coef_grads). alpha = 0: no L2 penalty.
    """
    if output != "linear":
        raise ValueError("scikit-learn's MLPRegressor has an identity output only")
    from sklearn.neural_network import MLPRegressor
    n = X.shape[0]
    L = len(weights)
    widths = [weights[0].shape[0] - 1] + [w.shape[1] for w in weights]
    m = MLPRegressor(hidden_layer_sizes=tuple(widths[1:-1]), activation="tanh", alpha=0.0)
    # The attributes fit() would set, with fastbp's weights in them.
    m.n_layers_ = L + 1
    m.n_outputs_ = widths[-1]
    m.out_activation_ = "identity"
    m.coefs_ = [np.ascontiguousarray(w[1:]) for w in weights]
    m.intercepts_ = [np.ascontiguousarray(w[0]) for w in weights]
    Y = _y2d(y, n)
    activations = [X] + [None] * L
    deltas = [None] * L
    coef_grads = [np.empty_like(c) for c in m.coefs_]
    intercept_grads = [np.empty_like(b) for b in m.intercepts_]
    has_sample_weight = "sample_weight" in inspect.signature(m._backprop).parameters

    if has_sample_weight:        # scikit-learn >= 1.5
        def run():
            return m._backprop(X, Y, None, activations, deltas, coef_grads, intercept_grads)
    else:
        def run():
            return m._backprop(X, Y, activations, deltas, coef_grads, intercept_grads)

    def convert(result):
        loss, cg, ig = result
        return 2.0 * widths[-1] * float(loss), [2.0 * np.vstack([b[None, :], c])
                                                for c, b in zip(cg, ig)]

    return Prepared(run=run, convert=convert, output="linear",
                    threads=f"BLAS {threads} (threadpoolctl)",
                    notes=["identity output (checked against fastbp output='linear'); "
                           "E_in = 2 d(L) loss, grad = 2 sklearn grad"])


# --------------------------------------------------------------------------------------------------
# FANN 2.2 through ctypes
# --------------------------------------------------------------------------------------------------

_FANN_LINEAR, _FANN_SIGMOID_SYMMETRIC = 0, 5
_FANN_TRAIN_BATCH, FANN_TRAIN_RPROP = 1, 2
_FANN_ERRORFUNC_LINEAR = 0


def _fann_library(dtype):
    name = "doublefann" if np.dtype(dtype) == np.float64 else "floatfann"
    path = ctypes.util.find_library(name)
    candidates = [path] if path else []
    candidates += [f"lib{name}.so.2", f"/usr/lib/x86_64-linux-gnu/lib{name}.so.2"]
    for c in candidates:
        try:
            return ctypes.CDLL(c), c
        except OSError:
            continue
    return None, None


def fann_version():
    """FANN's version from its library file name (libdoublefann.so.2.2.0 -> "2.2.0"), or None."""
    lib, path = _fann_library(np.float64)
    if lib is None:
        return None
    for d in ("", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib"):
        full = os.path.join(d, path) if d else path
        if os.path.exists(full):
            real = os.path.basename(os.path.realpath(full))
            if ".so." in real:
                return real.split(".so.", 1)[1]
    return "2 (" + path + ")"


def fann_network(weights, X, y, output="tanh", algorithm=_FANN_TRAIN_BATCH):
    """A FANN 2.2 network with fastbp's `weights` (tanh units, steepness 1, linear error function,
    no momentum) and its training data (X, y), trained by `algorithm` (FANN_TRAIN_BATCH, RPROP,
    ...). Returns a namespace: lib, ann, data, the weights array FANN trains (`fann_w`, FANN's
    order), `perm` (fastbp's flat index of each FANN weight), `w0` (the start in FANN's order),
    `flat`, `offsets`, `widths`, `L`, `Y` and `close()`.
    """
    dtype = np.dtype(weights[0].dtype)
    lib, _ = _fann_library(dtype)
    if lib is None:
        raise ImportError("libfann (Debian's libfann2) is not installed")
    ftype = ctypes.c_double if dtype == np.float64 else ctypes.c_float
    if output not in ("tanh", "linear"):
        raise ValueError(output)

    class FannPrefix(ctypes.Structure):       # the first fields of struct fann (fann_data.h, 2.2)
        _fields_ = [("errno_f", ctypes.c_int), ("error_log", ctypes.c_void_p),
                    ("errstr", ctypes.c_char_p), ("learning_rate", ctypes.c_float),
                    ("learning_momentum", ctypes.c_float), ("connection_rate", ctypes.c_float),
                    ("network_type", ctypes.c_int), ("first_layer", ctypes.c_void_p),
                    ("last_layer", ctypes.c_void_p), ("total_neurons", ctypes.c_uint),
                    ("num_input", ctypes.c_uint), ("num_output", ctypes.c_uint),
                    ("weights", ctypes.POINTER(ftype))]

    class FannTrainData(ctypes.Structure):    # struct fann_train_data (fann_train.h)
        _fields_ = [("errno_f", ctypes.c_int), ("error_log", ctypes.c_void_p),
                    ("errstr", ctypes.c_char_p), ("num_data", ctypes.c_uint),
                    ("num_input", ctypes.c_uint), ("num_output", ctypes.c_uint),
                    ("input", ctypes.POINTER(ctypes.POINTER(ftype))),
                    ("output", ctypes.POINTER(ctypes.POINTER(ftype)))]

    class FannConnection(ctypes.Structure):
        _fields_ = [("from_neuron", ctypes.c_uint), ("to_neuron", ctypes.c_uint),
                    ("weight", ftype)]

    P_ann = ctypes.POINTER(FannPrefix)
    P_data = ctypes.POINTER(FannTrainData)
    lib.fann_create_standard_array.restype = P_ann
    lib.fann_create_standard_array.argtypes = [ctypes.c_uint, ctypes.POINTER(ctypes.c_uint)]
    lib.fann_destroy.argtypes = [P_ann]
    lib.fann_create_train.restype = P_data
    lib.fann_create_train.argtypes = [ctypes.c_uint, ctypes.c_uint, ctypes.c_uint]
    lib.fann_destroy_train.argtypes = [P_data]
    lib.fann_train_epoch.restype = ctypes.c_float
    lib.fann_train_epoch.argtypes = [P_ann, P_data]
    lib.fann_get_total_connections.restype = ctypes.c_uint
    lib.fann_get_total_connections.argtypes = [P_ann]
    lib.fann_get_connection_array.argtypes = [P_ann, ctypes.POINTER(FannConnection)]
    lib.fann_set_activation_function_hidden.argtypes = [P_ann, ctypes.c_int]
    lib.fann_set_activation_function_output.argtypes = [P_ann, ctypes.c_int]
    lib.fann_set_activation_steepness_hidden.argtypes = [P_ann, ftype]
    lib.fann_set_activation_steepness_output.argtypes = [P_ann, ftype]
    lib.fann_set_training_algorithm.argtypes = [P_ann, ctypes.c_int]
    lib.fann_set_train_error_function.argtypes = [P_ann, ctypes.c_int]
    lib.fann_set_learning_rate.argtypes = [P_ann, ctypes.c_float]
    lib.fann_set_learning_momentum.argtypes = [P_ann, ctypes.c_float]

    widths = [weights[0].shape[0] - 1] + [w.shape[1] for w in weights]
    L = len(weights)
    layers = (ctypes.c_uint * (L + 1))(*widths)
    ann = lib.fann_create_standard_array(L + 1, layers)
    if not ann:
        raise RuntimeError("fann_create_standard_array failed")
    data = None

    def close():
        if data:
            lib.fann_destroy_train(data)
        lib.fann_destroy(ann)

    try:
        lib.fann_set_activation_function_hidden(ann, _FANN_SIGMOID_SYMMETRIC)
        lib.fann_set_activation_function_output(
            ann, _FANN_SIGMOID_SYMMETRIC if output == "tanh" else _FANN_LINEAR)
        lib.fann_set_activation_steepness_hidden(ann, 1.0)
        lib.fann_set_activation_steepness_output(ann, 1.0)
        lib.fann_set_training_algorithm(ann, algorithm)
        lib.fann_set_train_error_function(ann, _FANN_ERRORFUNC_LINEAR)
        lib.fann_set_learning_momentum(ann, 0.0)

        # Where each FANN weight goes: neurons are numbered layer by layer, each layer with a bias
        # neuron last; a neuron's connections come from every neuron of the layer before it.
        n_conn = lib.fann_get_total_connections(ann)
        n_params = sum(w.size for w in weights)
        if n_conn != n_params or ann.contents.num_input != widths[0]:
            raise RuntimeError(f"FANN network has {n_conn} connections, expected {n_params}")
        conns = (FannConnection * n_conn)()
        lib.fann_get_connection_array(ann, conns)
        first = np.concatenate(([0], np.cumsum([d + 1 for d in widths])))  # first neuron of layer
        offsets = np.concatenate(([0], np.cumsum([w.size for w in weights])))
        perm = np.empty(n_conn, dtype=np.int64)
        for k in range(n_conn):
            src, dst = conns[k].from_neuron, conns[k].to_neuron
            l = int(np.searchsorted(first, dst, side="right")) - 1       # layer of dst
            j = dst - first[l]
            i = src - first[l - 1]
            row = 0 if i == widths[l - 1] else i + 1                    # bias neuron -> row 0
            perm[k] = offsets[l - 1] + row * widths[l] + j
        fann_w = np.ctypeslib.as_array(ann.contents.weights, shape=(n_conn,))
        # The pointer must be FANN's weight array: its values are those of the connection array.
        if not np.array_equal(fann_w, np.array([c.weight for c in conns], dtype=dtype)):
            raise RuntimeError("struct fann layout not recognised (weights pointer)")
        flat = np.concatenate([w.ravel() for w in weights]).astype(dtype)
        w0 = flat[perm]
        fann_w[:] = w0
        lib.fann_get_connection_array(ann, conns)
        if not np.array_equal(np.array([c.weight for c in conns], dtype=dtype), w0):
            raise RuntimeError("writing FANN's weights through its pointer failed")

        n = X.shape[0]
        Y = _y2d(y, n)
        data = lib.fann_create_train(n, widths[0], widths[-1])
        if not data:
            raise MemoryError("fann_create_train failed")
        for name, arr in (("input", X), ("output", Y)):
            rows = getattr(data.contents, name)
            width = arr.shape[1]
            if n > 1 and (ctypes.addressof(rows[1].contents) - ctypes.addressof(rows[0].contents)
                          != width * dtype.itemsize):
                raise RuntimeError("fann_train_data rows are not contiguous")
            dst = np.ctypeslib.as_array(rows[0], shape=(n, width))
            dst[...] = arr
    except Exception:
        close()
        raise

    return types.SimpleNamespace(lib=lib, ann=ann, data=data, fann_w=fann_w, perm=perm, w0=w0,
                                 flat=flat, offsets=offsets, widths=widths, L=L, Y=Y,
                                 close=close, dtype=dtype)


def prepare_fann(weights, X, y, threads, output="tanh"):
    """FANN's batch backprop: fann_train_epoch with FANN_TRAIN_BATCH over the whole data set.

    FANN does not return a gradient: a batch epoch accumulates the slopes sum_n err_n x_n and then
    adds slope * learning_rate / N to every weight. With tanh units (FANN_SIGMOID_SYMMETRIC,
    steepness 1) and the linear error function, FANN's err for a symmetric output is theta'(s) (y -
    x(L)) / 2, so dE_in/dW = -4 (w_after - w_before) / learning_rate for one epoch, and E_in = 4
    d(L) MSE (FANN halves the difference of symmetric outputs and averages over outputs). That epoch
    runs at learning rate 2^20, so that the step dwarfs the weights and w_after - w_before keeps the
    step's precision (in float32 at rate 1 the step of a deep layer drowns in rounding).
    For timing the learning rate is set to 1e-12, so the weights stay put (to rounding) and every
    timed epoch does the same work. FANN keeps its MSE in single precision, and clips tanh' to
    1 - 0.98^2 where |x| > 0.98: where a unit saturates, its "gradient" is not the gradient. The
    weights are written through the `weights` pointer of `struct fann` (FANN 2.2's fann_set_weight
    is a linear search per weight), after checking that the layout is the one expected.
    """
    net = fann_network(weights, X, y, output)
    lib, ann, data, fann_w, perm, w0 = net.lib, net.ann, net.data, net.fann_w, net.perm, net.w0
    flat, offsets, widths, L, Y, close, dtype = (net.flat, net.offsets, net.widths, net.L, net.Y,
                                                 net.close, net.dtype)
    factor = 4.0 if output == "tanh" else 2.0      # FANN halves the error of symmetric outputs

    def epoch_gradient():
        """One epoch at a large learning rate from w0: (E_in, grads); restores w0."""
        rate = 2.0 ** 20
        lib.fann_set_learning_rate(ann, rate)
        fann_w[:] = w0
        mse = lib.fann_train_epoch(ann, data)
        step = fann_w.astype(np.float64) - w0.astype(np.float64)
        fann_w[:] = w0
        lib.fann_set_learning_rate(ann, 1e-12)
        g = np.empty(flat.shape, dtype=np.float64)
        g[perm] = -factor / rate * step
        grads = [g[offsets[l]:offsets[l + 1]].reshape(weights[l].shape) for l in range(L)]
        return factor * widths[-1] * float(mse), grads

    lib.fann_set_learning_rate(ann, 1e-12)
    state = {"checked": False}

    def run():
        if not state["checked"]:            # the first call (the check) measures the gradient
            state["checked"] = True
            return epoch_gradient()
        return lib.fann_train_epoch(ann, data)

    def recheck():
        """The same network with weights and inputs scaled by 0.3: no unit near saturation."""
        small = [w * dtype.type(0.3) for w in weights]
        Xs = (X[:2000] * dtype.type(0.3)).astype(dtype)
        ys = Y[:2000] * dtype.type(0.3)
        p = prepare_fann(small, Xs, ys, threads, output)
        p.recheck = None
        try:
            got = p.convert(p.run())
        finally:
            p.close()
        want = fastbp.gradient(small, Xs, ys, output=output)
        return got, want

    return Prepared(run=run, convert=lambda r: r, output=output, threads="1 (FANN is serial)",
                    close=close, recheck=recheck,
                    notes=["E_in from FANN's single-precision MSE; tanh' clipped at |x| > 0.98"])


# --------------------------------------------------------------------------------------------------
# LIBXSMM: bench/libxsmm_peer.c, compiled here and called through ctypes
# --------------------------------------------------------------------------------------------------

LIBXSMM_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "libxsmm_peer.c")
LIBXSMM_HEADER = "/usr/include/libxsmm.h"
# Debian's libxsmm-dev ships static, position-independent libraries; libxsmmnoblas stands in for
# the BLAS that libxsmm falls back to (the peer never calls it); libmvec is glibc's vector tanh.
# -march=x86-64-v3 (AVX2, FMA): the peer is never shipped, but it is built as fastbp's portable
# wheels are, not for this CPU alone; LIBXSMM's JIT kernels use what the CPU has in any case.
LIBXSMM_CFLAGS = ["-O3", "-march=x86-64-v3", "-fopenmp", "-fPIC", "-shared"]
LIBXSMM_LIBS = ["-lxsmm", "-lxsmmnoblas", "-lmvec", "-lpthread", "-lrt", "-ldl", "-lm"]
_libxsmm_cache: dict = {}


def libxsmm_build(out_dir=None):
    """(ctypes library, path of the .so) of bench/libxsmm_peer.c, compiled once per source and
    flags into `out_dir` (default bench/results/); raises ImportError when LIBXSMM's header or a C
    compiler is missing, RuntimeError when the build fails."""
    if "lib" in _libxsmm_cache:
        return _libxsmm_cache["lib"], _libxsmm_cache["path"]
    if not os.path.exists(LIBXSMM_HEADER):
        raise ImportError("LIBXSMM not installed (apt-get install libxsmm-dev)")
    path = _common.build_shared(LIBXSMM_SOURCE, LIBXSMM_CFLAGS, LIBXSMM_LIBS, out_dir)
    lib = ctypes.CDLL(path)
    for sfx, ftype in (("f64", ctypes.c_double), ("f32", ctypes.c_float)):
        plan = getattr(lib, f"xp_plan_{sfx}")
        plan.restype = ctypes.c_void_p
        plan.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
        grad = getattr(lib, f"xp_gradient_{sfx}")
        grad.restype = ctypes.c_int
        pp = ctypes.POINTER(ctypes.POINTER(ftype))
        grad.argtypes = [ctypes.c_void_p, pp, ctypes.POINTER(ftype), ctypes.POINTER(ftype),
                         ctypes.c_long, ctypes.c_int, ctypes.c_int, pp,
                         ctypes.POINTER(ctypes.c_double)]
        getattr(lib, f"xp_free_{sfx}").argtypes = [ctypes.c_void_p]
    _libxsmm_cache.update(lib=lib, path=path, cmd=f"cc {' '.join(LIBXSMM_CFLAGS)} ... "
                          + " ".join(LIBXSMM_LIBS))
    return lib, path


def libxsmm_version():
    """LIBXSMM's version from its header (LIBXSMM_VERSION_MAJOR/MINOR/UPDATE), or None."""
    try:
        with open(os.path.join(os.path.dirname(LIBXSMM_HEADER), "libxsmm_version.h")) as f:
            text = f.read()
    except OSError:
        return None
    import re
    parts = [re.search(rf"#define LIBXSMM_CONFIG_VERSION_{k}\s+(\d+)", text)
             for k in ("MAJOR", "MINOR", "UPDATE")]
    return ".".join(m.group(1) for m in parts if m) or None


_LIBC = ctypes.CDLL(None)
_LIBC.getenv.restype = ctypes.c_char_p
_OPENMP_BINDING = (b"OMP_PROC_BIND", b"OMP_PLACES", b"KMP_AFFINITY", b"GOMP_CPU_AFFINITY")


@contextlib.contextmanager
def _libxsmm_leaves_openmp_alone():
    """LIBXSMM's initialisation (its first JIT) sets OMP_PROC_BIND=TRUE in the C environment of
    the process; an OpenMP runtime loaded after it (scikit-learn's own libgomp, when scikit-learn
    is imported later) then binds the main thread to CPU 0, and every thread started from it
    afterwards, fastbp's and the other peers', shares that one CPU. Undo what it set (in C:
    os.environ does not see it) and the main thread's CPUs."""
    before = {name: _LIBC.getenv(name) for name in _OPENMP_BINDING}
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None and _LIBC.getenv(name) is not None:
                _LIBC.unsetenv(name)
        if cpus is not None and os.sched_getaffinity(0) != cpus:
            os.sched_setaffinity(0, cpus)


def prepare_libxsmm(weights, X, y, threads, output="tanh"):
    """bench/libxsmm_peer.c: the whole-batch gradient over LIBXSMM's JIT small matrix products on
    tiles of 64 samples, OpenMP over tiles (`threads` threads), per-thread gradient sums merged
    in thread order. The kernels are JIT-compiled when prepared, not in the timed call."""
    dtype = np.dtype(weights[0].dtype)
    if output not in ("tanh", "linear"):
        raise NotApplicable(f"the LIBXSMM peer has no {output} output")
    lib, _ = libxsmm_build()
    sfx, ftype = ("f64", ctypes.c_double) if dtype == np.float64 else ("f32", ctypes.c_float)
    widths = [weights[0].shape[0] - 1] + [w.shape[1] for w in weights]
    L = len(weights)
    with _libxsmm_leaves_openmp_alone():
        plan = getattr(lib, f"xp_plan_{sfx}")(L, (ctypes.c_int * (L + 1))(*widths))
    if not plan:
        raise RuntimeError("LIBXSMM could not JIT a kernel for these widths")
    n = X.shape[0]
    Ws = [np.ascontiguousarray(w, dtype=dtype) for w in weights]
    Xc = np.ascontiguousarray(X, dtype=dtype)
    Yc = np.ascontiguousarray(_y2d(y, n), dtype=dtype)
    grads = [np.empty_like(w) for w in Ws]
    P = ctypes.POINTER(ftype)
    w_ptrs = (P * L)(*[w.ctypes.data_as(P) for w in Ws])
    g_ptrs = (P * L)(*[g.ctypes.data_as(P) for g in grads])
    E = ctypes.c_double()
    fn = getattr(lib, f"xp_gradient_{sfx}")
    args = (plan, w_ptrs, Xc.ctypes.data_as(P), Yc.ctypes.data_as(P), n,
            int(output == "linear"), threads, g_ptrs, ctypes.byref(E))

    def run():
        if fn(*args) != 0:
            raise MemoryError("the LIBXSMM peer ran out of memory")
        return E.value, grads

    def convert(result):
        value, gs = result
        return float(value), [g.copy() for g in gs]

    # the arrays the C side reads and writes stay alive until close()
    state = {"plan": plan, "arrays": (Ws, Xc, Yc, grads)}

    def close():
        if state.get("plan"):
            getattr(lib, f"xp_free_{sfx}")(state.pop("plan"))
        state.pop("arrays", None)
    return Prepared(run=run, convert=convert, output=output,
                    threads=f"{threads} (OpenMP over tiles of 64)", close=close,
                    notes=[f"own C over LIBXSMM {libxsmm_version() or '?'} JIT kernels, "
                           f"{' '.join(LIBXSMM_CFLAGS)}"])


# --------------------------------------------------------------------------------------------------
# Classifiers: ReLU hidden units, softmax output, cross-entropy
# --------------------------------------------------------------------------------------------------

class NotApplicable(Exception):
    """The peer cannot compute this network (FANN has no softmax output)."""


def numpy_gradient_relu_softmax(weights, X, y):
    """(E_in, grads) of the mean cross-entropy of a ReLU network with a softmax output, batched.

    Forward as numpy_gradient with max(s, 0) for the hidden layers; log-sum-exp of s(L) with its
    row maximum taken out; E_in = (1/N) sum_n y_n . (lse_n - s_n); delta(L) = (softmax(s) - y)/N;
    delta(l-1) = (delta(l) W(l)[1:]^T) * [x(l-1) > 0].
    """
    n = X.shape[0]
    L = len(weights)
    xs = [X]
    for l, W in enumerate(weights):
        s = xs[-1] @ W[1:]
        s += W[0]
        if l < L - 1:
            np.maximum(s, 0, out=s)
        xs.append(s)
    s = xs[-1]
    m = s.max(axis=1, keepdims=True)
    p = np.exp(s - m)
    total = p.sum(axis=1, keepdims=True)
    lse = m + np.log(total)
    E_in = float(np.vdot(y, lse - s)) / n
    p /= total
    delta = p - y
    delta *= 1.0 / n
    grads = [None] * L
    for l in range(L - 1, -1, -1):
        W = weights[l]
        g = np.empty_like(W)
        np.matmul(xs[l].T, delta, out=g[1:])
        np.sum(delta, axis=0, out=g[0])
        grads[l] = g
        if l > 0:
            back = delta @ W[1:].T
            back *= xs[l] > 0
            delta = back
    return E_in, grads


def _torch_classifier(weights, X, y, threads, compiled):
    import torch.nn.functional as F

    def loss_fn(model, X, y):
        return F.cross_entropy(model(X), y)   # probability targets, mean over samples

    # the model's output layer is linear: its outputs are the logits of fastbp's softmax output
    p = _torch_prepared(weights, X, y, threads, "linear", compiled, activation="relu",
                        loss_fn=loss_fn)
    p.output = "softmax"
    return p


def _jax_classifier(weights, X, y, threads):
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    L = len(weights)

    def loss(params, X, y):
        a = X
        for l, (W, b) in enumerate(params):
            a = a @ W + b
            if l < L - 1:
                a = jax.nn.relu(a)
        return -jnp.sum(y * jax.nn.log_softmax(a, axis=1)) / X.shape[0]

    f = jax.jit(jax.value_and_grad(loss))
    params = [(jnp.asarray(np.ascontiguousarray(w[1:])), jnp.asarray(np.ascontiguousarray(w[0])))
              for w in weights]
    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    if Xj.dtype != X.dtype:
        raise RuntimeError(f"JAX turned {X.dtype} into {Xj.dtype}")

    def convert(result):
        value, grads = result
        return float(value), [np.vstack([np.asarray(gb)[None, :], np.asarray(gW)])
                              for gW, gb in grads]
    threads_note = ("1 (XLA_FLAGS=--xla_cpu_multi_thread_eigen=false)" if threads == 1
                    else "XLA's own pool (all usable cores; JAX cannot be limited to a count)")
    return Prepared(run=lambda: jax.block_until_ready(f(params, Xj, yj)), convert=convert,
                    output="softmax", threads=threads_note,
                    notes=["compiled in the warm-up call, not timed"])


def _sklearn_classifier(weights, X, y, threads):
    """MLPClassifier._backprop on fastbp's weights: ReLU hidden layers, softmax output, log_loss
    (the mean cross-entropy, E_in itself; alpha = 0) and its gradient, as they are."""
    from sklearn.neural_network import MLPClassifier
    L = len(weights)
    widths = [weights[0].shape[0] - 1] + [w.shape[1] for w in weights]
    m = MLPClassifier(hidden_layer_sizes=tuple(widths[1:-1]), activation="relu", alpha=0.0)
    m.n_layers_ = L + 1
    m.n_outputs_ = widths[-1]
    m.out_activation_ = "softmax"
    m.coefs_ = [np.ascontiguousarray(w[1:]) for w in weights]
    m.intercepts_ = [np.ascontiguousarray(w[0]) for w in weights]
    Y = np.ascontiguousarray(y)
    activations = [X] + [None] * L
    deltas = [None] * L
    coef_grads = [np.empty_like(c) for c in m.coefs_]
    intercept_grads = [np.empty_like(b) for b in m.intercepts_]
    if "sample_weight" in inspect.signature(m._backprop).parameters:   # scikit-learn >= 1.5
        def run():
            return m._backprop(X, Y, None, activations, deltas, coef_grads, intercept_grads)
    else:
        def run():
            return m._backprop(X, Y, activations, deltas, coef_grads, intercept_grads)

    def convert(result):
        loss, cg, ig = result
        return float(loss), [np.vstack([b[None, :], c]) for c, b in zip(cg, ig)]
    return Prepared(run=run, convert=convert, output="softmax",
                    threads=f"BLAS {threads} (threadpoolctl)",
                    notes=["MLPClassifier._backprop: log_loss and its gradient as they are"])


def prepare(name, weights, X, y, threads, activation="tanh", output="tanh"):
    """The peer `name` for this network: the tanh networks of PEERS, or a ReLU + softmax
    cross-entropy classifier."""
    if activation == "tanh" and output in ("tanh", "linear"):
        return PEERS[name](weights, X, y, threads)
    if (activation, output) != ("relu", "softmax"):
        raise ValueError(f"no peers for activation={activation!r}, output={output!r}")
    if name == "reference":
        return Prepared(run=lambda: fastbp.reference.gradient(weights, X, y, output="softmax",
                                                              activation="relu"),
                        convert=lambda r: r, output="softmax", threads="1 (Python loop)")
    if name == "numpy":
        return Prepared(run=lambda: numpy_gradient_relu_softmax(weights, X, y),
                        convert=lambda r: r, output="softmax",
                        threads=f"BLAS {threads} (threadpoolctl)")
    if name in ("torch", "torch.compile"):
        return _torch_classifier(weights, X, y, threads, compiled=name == "torch.compile")
    if name == "jax":
        return _jax_classifier(weights, X, y, threads)
    if name == "sklearn":
        return _sklearn_classifier(weights, X, y, threads)
    raise NotApplicable(f"{name} has no softmax output")


# --------------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------------

PEERS = {
    "reference": prepare_reference,
    "numpy": prepare_numpy,
    "torch": prepare_torch,
    "torch.compile": prepare_torch_compile,
    "jax": prepare_jax,
    "sklearn": prepare_sklearn,
    "fann": prepare_fann,
    "libxsmm": prepare_libxsmm,
}

_MODULES = {"torch": "torch", "torch.compile": "torch", "jax": "jax", "sklearn": "sklearn"}


def available(name):
    """(True, version) if the peer can run here, else (False, why not)."""
    if name in ("reference", "numpy"):
        return True, np.__version__ if name == "numpy" else fastbp.__version__
    if name == "fann":
        v = fann_version()
        return (True, v) if v else (False, "libfann not found (apt-get install libfann2)")
    if name == "libxsmm":
        try:
            libxsmm_build()
        except (ImportError, RuntimeError, OSError) as exc:
            return False, str(exc).splitlines()[0]
        return True, libxsmm_version() or "?"
    try:
        mod = importlib.import_module(_MODULES[name])
    except Exception as exc:  # ImportError, or a broken install that fails on import
        return False, f"not installed ({type(exc).__name__}: {exc})".splitlines()[0]
    if name == "torch.compile":
        try:
            import torch._dynamo  # noqa: F401
            import torch._inductor  # noqa: F401  (probing only)
        except Exception as exc:
            return False, f"torch.compile unavailable ({exc})"
    return True, getattr(mod, "__version__", "?")
