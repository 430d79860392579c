"""Helpers shared by the test modules: problems, comparisons, "raises and changes nothing", and the
extended-precision yardstick. One definition each; import them from here (conftest.py holds
fixtures only). Like scikit-learn's sklearn/utils/_testing.py."""
import os

import numpy as np
import pytest

import fastbp

LD = np.longdouble


# ------------------------------------------------------------------------------------------------
# Problems

def make_problem(widths, n, dtype="float64", seed=0, output="tanh"):
    """Random weights (not too small, so that every path matters), inputs and targets."""
    rng = np.random.default_rng(seed)
    weights = [w * 1.5 for w in fastbp.init_weights(widths, seed=seed + 1, dtype="float64")]
    X = rng.standard_normal((n, widths[0]))
    y = rng.uniform(-0.9, 0.9, (n, widths[-1]))
    return [w.astype(dtype) for w in weights], X.astype(dtype), y.astype(dtype)


def xor():
    X = np.array([[-1, -1], [-1, 1], [1, -1], [1, 1]], dtype=float)
    y = 0.8 * np.array([-1, 1, 1, -1], dtype=float)
    return [2, 4, 1], "tanh", X, y


def regression(n=40, seed=0):
    """Noisy 1-D regression: y = sin(pi x) + noise of standard deviation 0.1."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 1))
    y = np.sin(np.pi * X[:, 0]) + 0.1 * rng.standard_normal(n)
    return [1, 8, 1], "linear", X, y


def multiclass():
    """Three Gaussian blobs in the plane; one column per class, +1 on the true class, else -1."""
    rng = np.random.default_rng(0)
    centres = np.array([[0, 1.5], [-1.3, -0.75], [1.3, -0.75]])
    label = np.repeat(np.arange(3), 20)
    X = centres[label] + 0.5 * rng.standard_normal((60, 2))
    Y = -np.ones((60, 3))
    Y[np.arange(60), label] = 1
    return [2, 6, 3], "tanh", X, Y


# ------------------------------------------------------------------------------------------------
# Comparisons

def rel_err(a, b):
    """Norm-wise relative error of a against b (max abs difference over max abs of b)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = max(np.abs(b).max(), np.finfo(np.float64).tiny)
    return float(np.abs(a - b).max() / scale)


def bitwise_equal(a, b):
    """Two lists of arrays are equal element for element, with the same shapes and the same dtypes
    up to byte order (a big-endian result may equal a native one)."""
    return len(a) == len(b) and all(
        x.dtype.newbyteorder("=") == z.dtype.newbyteorder("=") and np.array_equal(x, z)
        for x, z in zip(a, b))


def copies(arrays):
    """Copies of the arrays in a list (anything else is passed through)."""
    return [a.copy() if isinstance(a, np.ndarray) else a for a in arrays]


def assert_unchanged(before, after):
    """Each array of after equals (NaNs included) its copy in before, in dtype, shape and values;
    lists are compared element by element."""
    for b, a in zip(before, after):
        if isinstance(b, (list, tuple)):
            assert_unchanged(b, a)
        elif isinstance(b, np.ndarray):
            assert a.dtype == b.dtype and a.shape == b.shape
            assert np.array_equal(a, b, equal_nan=b.dtype.kind in "fc")


def raises_unchanged(exc, pattern, fn, *args, **kw):
    """fn(*args, **kw) raises exc matching pattern, and every array argument (also inside a list
    argument, such as the weights) is as it was."""
    flat = []
    for a in list(args) + list(kw.values()):
        flat.extend(a if isinstance(a, (list, tuple)) else [a])
    before = copies(flat)
    with pytest.raises(exc, match=pattern):
        fn(*args, **kw)
    assert_unchanged(before, flat)


# Another runtime's forward pass (ONNX Runtime, PyTorch) against fastbp's: both round, in other
# orders and with other tanh/exp, so each output is compared to TOL times the size of the sums it
# comes from, the standard forward-error bound (the rounding errors of large sums that cancel, as
# in a linear output of large inputs, are allowed in proportion to those sums; no more).
FORWARD_TOL = {"float64": 1e-12, "float32": 1e-5}
_UNITS = {"tanh": np.tanh, "relu": lambda s: np.maximum(s, 0),
          "logistic": lambda s: 0.5 * (1 + np.tanh(s / 2)), "identity": lambda s: s}


def forward_error_scale(net, X):
    """B(L) of the forward-error bound, from float64 values: the rounding error of s(l) is at most
    ~eps B(l), B(1) = |[1, x(0)]| |W(1)|, B(l) = |[1, x(l-1)]| |W(l)| + B(l-1) |W(l)[1:]| (every
    unit of fastbp is 1-Lipschitz, so x(l) carries at most the error of s(l))."""
    x = np.asarray(X, dtype=np.float64)
    B = np.zeros_like(x)
    for w in net.weights:
        w = w.astype(np.float64)
        a = np.abs(w)
        B = np.abs(x) @ a[1:] + a[0] + B @ a[1:]
        x = _UNITS[net.activation](x @ w[1:] + w[0])
    return B


def assert_forward_equal(got, net, X):
    """`got` (another runtime's outputs for X) equals net.forward(X): the same dtype and shape,
    and |got - forward| <= FORWARD_TOL[dtype] * max(1, forward_error_scale) everywhere."""
    want = net.forward(X)
    assert got.dtype == want.dtype and got.shape == want.shape
    tol = FORWARD_TOL[want.dtype.name]
    err = np.abs(got.astype(np.float64) - want) / np.maximum(1.0, forward_error_scale(net, X))
    assert err.max() <= tol, f"error {err.max():.3g} > {tol:g} (of the sums' size)"


# ------------------------------------------------------------------------------------------------
# Extended precision: the yardstick where the problem itself is ill-conditioned

def exact(weights, X, y, output, jitter=None):
    """E_in, gradient and outputs in extended precision (np.longdouble), batch-wise: the yardstick
    for both fastbp and the reference where the problem itself is ill-conditioned (saturated tanh).
    jitter=(dtype, rng): every tanh value moved by up to 2 units in the last place of dtype, as a
    tanh good to 1-2 ulps (fastbp's, or any vector tanh) may round it."""
    W = [np.asarray(w, LD) for w in weights]
    X = np.asarray(X, LD)
    N, L = len(X), len(W)
    y = np.asarray(y, LD).reshape(N, -1)
    ones = np.ones((N, 1), LD)

    def tanh(s):
        t = np.tanh(s)
        if jitter is not None:
            dtype, rng = jitter
            rounded = np.abs(t).astype(dtype)
            ulp = np.spacing(rounded).astype(LD)
            moved = np.clip(t + ulp * rng.uniform(-2, 2, t.shape), -1, 1)
            # an exact +-1 (|s| beyond ~22) stays; a value below 1 that dtype rounds to +-1 (a
            # partly saturated unit) may be moved onto +-1, as a float tanh rounds it
            t = np.where(np.abs(t) < 1, moved, t)
        return t
    xs = [np.hstack([ones, X])]
    for l in range(L):
        s = xs[-1] @ W[l]
        if l < L - 1:
            xs.append(np.hstack([ones, tanh(s)]))
        else:
            xL = tanh(s) if output == "tanh" else s
    e = xL - y
    delta = 2 * e * ((1 - xL * xL) if output == "tanh" else 1)
    grads = [None] * L
    grads[L - 1] = xs[L - 1].T @ delta / N
    for l in range(L - 1, 0, -1):
        delta = (1 - xs[l][:, 1:] ** 2) * (delta @ W[l][1:].T)
        grads[l - 1] = xs[l - 1].T @ delta / N
    return float(np.sum(e * e) / N), grads, xL


def rounding_spread(weights, X, y, output, dtype, rng, k=3):
    """How much the exact E_in, outputs and gradients move when every weight and input is perturbed
    by one rounding of dtype and every tanh value by up to 2 ulps (k random draws): the
    conditioning of the problem at this precision. Near saturation 1 - x^2 cancels, and a last-bit
    change of x = tanh(s) changes the gradient by far more than 1e-12. A result within a few times
    this spread is as good as the precision allows."""
    eps = np.finfo(dtype).eps
    e0, g0, out0 = exact(weights, X, y, output)
    spread = [0.0, 0.0, [0.0] * len(weights)]
    for _ in range(k):
        wp = [np.asarray(w, LD) * (1 + eps * rng.uniform(-1, 1, w.shape)) for w in weights]
        Xp = np.asarray(X, LD) * (1 + eps * rng.uniform(-1, 1, X.shape))
        e, g, out = exact(wp, Xp, y, output, jitter=(dtype, rng))
        spread[0] = max(spread[0], abs(e - e0) / e0)
        spread[1] = max(spread[1], rel_err(out, out0))
        spread[2] = [max(s, rel_err(a, b)) for s, a, b in zip(spread[2], g, g0)]
    return spread


def rss_bytes() -> int:
    """This process's resident memory in bytes (Linux: /proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def targets_for(output, n, d, rng, dtype="float64"):
    """Targets fit for `output`, drawn from `rng`: in (-0.9, 0.9) for squared error; 0/1 labels
    (some exactly 0 or 1, some in between) for logistic; one-hot rows and distributions for
    softmax; counts (zeros among them) and some rates for poisson."""
    if output in ("tanh", "linear"):
        y = rng.uniform(-0.9, 0.9, (n, d))
    elif output == "logistic":
        y = (rng.uniform(size=(n, d)) > 0.5).astype(float)
        soft = rng.uniform(size=(n, d)) < 0.3
        y[soft] = rng.uniform(size=int(soft.sum()))
    elif output == "poisson":
        y = rng.poisson(1.5, (n, d)).astype(float)
        rates = rng.uniform(size=(n, d)) < 0.3
        y[rates] = rng.uniform(0, 4, size=int(rates.sum()))
    else:
        y = np.eye(d)[rng.integers(0, d, n)]
        p = rng.uniform(size=(n, d))
        soft = rng.uniform(size=n) < 0.4
        y[soft] = (p / p.sum(axis=1, keepdims=True))[soft]
    return y.astype(dtype)


def kernel_set_env(name):
    """The environment of a child interpreter that imports the fastbp this process imported
    (installed or built in place) with its kernels capped at FASTBP_SIMD=name."""
    paths = [os.path.dirname(os.path.dirname(os.path.abspath(fastbp.__file__)))]
    paths += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return dict(os.environ, FASTBP_SIMD=name, PYTHONPATH=os.pathsep.join(paths))
