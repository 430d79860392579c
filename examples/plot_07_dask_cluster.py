"""
Training on a Dask cluster
==========================

:mod:`fastbp.distributed` computes :math:`E_{\\text{in}}` and its gradient where the data lives: X
and y are Dask arrays cut into row chunks, each worker runs fastbp's kernel on its own chunks, and
only the weights and each chunk's partial sums travel (:doc:`/user_guide/distributed`). Here a
``LocalCluster`` of two worker processes on this machine stands in for a real cluster: we check its
gradient against :func:`fastbp.gradient` on the same data in memory, then train with L-BFGS, every
error and gradient computed by the workers.

This example needs Dask (``pip install "fastbp[dask]"``) and a fastbp with
:mod:`fastbp.distributed`; where either is missing it says so and does nothing else.
"""

import time

import matplotlib.pyplot as plt
import numpy as np

import fastbp

try:
    import dask.array as da
    from distributed import Client, LocalCluster

    import fastbp.distributed as fd
except ImportError as exc:
    fd = None
    print(f"Skipped: this example needs fastbp.distributed and Dask, which cannot be imported "
          f"here ({exc}).")

# %%
# The whole run
# -------------
# Data made on the client and cut into 4 row chunks (``da.from_array`` ships it to the workers
# inside the graph: fine for an example; real data would be read by the workers themselves, e.g.
# with ``da.from_zarr``). Two workers of one thread each.


def run_on_a_local_cluster():
    rng = np.random.default_rng(0)
    X_mem = rng.uniform(-1, 1, (40_000, 2))
    y_mem = np.where(X_mem[:, 1] > 0.5 * np.sin(3 * X_mem[:, 0]), 1.0, -1.0)
    X = da.from_array(X_mem, chunks=(10_000, 2))
    y = da.from_array(y_mem, chunks=10_000)
    weights = fastbp.init_weights([2, 16, 16, 1], seed=1)

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        fd.show_config(client=client)

        # the cluster's gradient against fastbp's on the same data in memory
        E_dist, g_dist = fd.gradient(weights, X, y, client=client)
        E_mem, g_mem = fastbp.gradient(weights, X_mem, y_mem)
        worst = max(np.max(np.abs(a - b)) / np.max(np.abs(b)) for a, b in zip(g_dist, g_mem))
        print(f"E_in on the cluster {E_dist:.12f}, in memory {E_mem:.12f}; "
              f"gradients differ by {worst:.1e} (relative)")

        # training: the method runs on the client, every evaluation on the workers
        t0 = time.perf_counter()
        history = fd.fit(weights, X, y, method="lbfgs", epochs=60, client=client)
        elapsed = time.perf_counter() - t0
        print(f"fd.fit: {len(history)} L-BFGS iterations in {elapsed:.1f} s, "
              f"E_in {history.start['E_in']:.4f} -> {history.E_in[-1]:.4f} "
              f"({history.stop_reason})")

        outputs = fd.predict(weights, X).compute()
    miss = float(np.mean(np.sign(outputs[:, 0]) != y_mem))
    print(f"classification error of the trained network: {miss:.2%}")
    return history


# %%
# Run it, when fastbp.distributed is there
# ----------------------------------------
# The worker processes are started afresh (Dask's "spawn"), and each imports this script's main
# module again: the ``__name__`` test keeps them from running the example themselves, as any
# script that starts a ``LocalCluster`` must.
if fd is not None and __name__ == "__main__":
    history = run_on_a_local_cluster()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.plot(np.r_[0.0, history.time], np.r_[history.start["E_in"], history.E_in], marker=".")
    ax.set_yscale("log")
    ax.set_xlabel("seconds")
    ax.set_ylabel(r"$E_{\mathrm{in}}$")
    ax.set_title("L-BFGS on a 2-worker LocalCluster")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    plt.show()
