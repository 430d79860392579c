"""fastbp imported into a process that already loaded PyTorch and scikit-learn, each with its own
OpenMP runtime: all three compute correctly side by side, in turns, threads on.

    python tools/check_coexistence.py   # in an environment with torch, scikit-learn, threadpoolctl
                                        # and an installed fastbp (run it outside the checkout)

Checks, in this order, so that each library's OpenMP pool is live while the others run:
  1. torch: a tanh network's E_in and gradient by autograd (float64), a matmul against NumPy;
  2. scikit-learn: KMeans (OpenMP in its Cython core) on well separated blobs finds them exactly;
  3. fastbp (imported only now): the same network's E_in and gradient agree with torch's autograd
     and with fastbp.reference, on 1 thread and on every core;
  4. torch and scikit-learn once more, after fastbp's threads ran; then fastbp again.
Prints threadpoolctl's view of the process (which BLAS and OpenMP libraries are loaded, from where,
with how many threads) and exits non-zero on any disagreement.
"""
import os
import sys

import numpy as np
import sklearn
import torch  # noqa: E402  (first: PyTorch and its libgomp before anything else)
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_info

WIDTHS = [6, 24, 12, 3]
N = 3000


def problem():
    rng = np.random.default_rng(0)
    weights = [rng.normal(0, 0.6, (a + 1, b)) for a, b in zip(WIDTHS[:-1], WIDTHS[1:])]
    X = rng.standard_normal((N, WIDTHS[0]))
    y = rng.uniform(-0.9, 0.9, (N, WIDTHS[-1]))
    return weights, X, y


def torch_gradient(weights, X, y):
    """E_in = (1/N) sum_n ||x(L) - y_n||^2 of a tanh network, and dE_in/dW(l), by autograd."""
    Ws = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in weights]
    x = torch.tensor(X, dtype=torch.float64)
    for W in Ws:
        x = torch.tanh(x @ W[1:] + W[0])  # row 0 of W(l) is the bias
    E = ((x - torch.tensor(y, dtype=torch.float64)) ** 2).sum(dim=1).mean()
    E.backward()
    return float(E.detach()), [W.grad.numpy().copy() for W in Ws]


def rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def check_torch(weights, X, y):
    E, g = torch_gradient(weights, X, y)
    A = torch.randn(300, 200, dtype=torch.float64)
    B = torch.randn(200, 100, dtype=torch.float64)
    err = rel((A @ B).numpy(), A.numpy() @ B.numpy())
    assert err < 1e-12, f"torch matmul disagrees with numpy: {err}"
    print(f"torch {torch.__version__}: E_in {E:.12f}; matmul vs numpy rel. error {err:.1e}; "
          f"torch threads {torch.get_num_threads()}")
    return E, g


def check_sklearn():
    X, labels = make_blobs(n_samples=20000, centers=5, n_features=8, cluster_std=0.5,
                           random_state=0)
    km = KMeans(n_clusters=5, n_init=3, random_state=0).fit(X)
    ari = adjusted_rand_score(labels, km.labels_)
    assert ari == 1.0, f"KMeans found the blobs with ARI {ari}"
    print(f"scikit-learn {sklearn.__version__}: KMeans on 20000 blobs, adjusted Rand index {ari}")


def check_fastbp(fastbp, weights, X, y, E_torch, g_torch):
    from fastbp import reference
    E_ref, g_ref = reference.gradient(weights, X, y)
    for threads in (1, None):
        E, g = fastbp.gradient(weights, X, y, num_threads=threads)
        e_t = abs(E - E_torch) / E_torch
        g_t = max(rel(a, b) for a, b in zip(g, g_torch))
        g_r = max(rel(a, b) for a, b in zip(g, g_ref))
        assert e_t < 1e-12 and g_t < 1e-10 and g_r < 1e-10, (threads, e_t, g_t, g_r)
        print(f"fastbp {fastbp.__version__} (num_threads={threads}): E_in {E:.12f}; "
              f"vs torch autograd rel. error E {e_t:.1e}, gradient {g_t:.1e}; "
              f"vs fastbp.reference {g_r:.1e}")


def main():
    weights, X, y = problem()
    E_torch, g_torch = check_torch(weights, X, y)
    check_sklearn()
    assert "fastbp" not in sys.modules
    import fastbp  # only now, into a process with torch's and scikit-learn's OpenMP runtimes
    if os.path.realpath(fastbp.__file__).startswith(os.path.realpath(os.getcwd())):
        sys.exit(f"fastbp was imported from the working directory ({fastbp.__file__}): run this "
                 "from outside the checkout, against an installed fastbp")
    fastbp.show_config()
    check_fastbp(fastbp, weights, X, y, E_torch, g_torch)
    # everyone again, after the others' thread pools ran
    E2, g2 = check_torch(weights, X, y)
    assert E2 == E_torch and all(np.array_equal(a, b) for a, b in zip(g2, g_torch))
    check_sklearn()
    check_fastbp(fastbp, weights, X, y, E_torch, g_torch)

    print("\nthreadpoolctl.threadpool_info():")
    for info in threadpool_info():
        print(f"  {info['user_api']:8s} {info['internal_api']:9s} threads={info['num_threads']:<3} "
              f"version={info.get('version')}  {info['filepath']}")
    gomps = [i["filepath"] for i in threadpool_info() if i["internal_api"] == "openmp"]
    print(f"\n{len(gomps)} OpenMP runtimes loaded side by side; all checks passed")


if __name__ == "__main__":
    main()
