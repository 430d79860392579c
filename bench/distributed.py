"""fastbp.distributed against fastbp in-process: a full-batch gradient on a Dask cluster.

    python bench/distributed.py          # B and D, N such that a gradient takes >= 0.3 s in-process
    python bench/distributed.py --quick  # smaller N, fewer repeats: checks that it runs (seconds)

For each network (B = [8, 32, 32, 1], D = [784, 256, 256, 10]) on the same 2 cores:
- in-process: fastbp.gradient on 2 threads, the data in memory;
- cluster: a LocalCluster of 2 worker processes x 1 thread, the data persisted on the workers in
  2 chunks (one each), one evaluation as fastbp.distributed.fit makes it (ClusterObjective.gradient:
  weights sent once, a partial sum per chunk, the ordered reduction, the division on the client).
Printed: time per gradient, the overhead per evaluation (the cluster's time minus what each
worker's kernel needs for its half on 1 thread; and, measured directly, an evaluation on 2 chunks
of 64 rows), efficiency (in-process / cluster time), the bytes moved per evaluation (counted:
worker-to-worker transfers; from the sizes: the weights client -> scheduler -> a worker, and the
sum back), and a model of the time per gd iteration (one gradient) on 10 and 100 machines like
this one (2 cores each), for the same N shared out and for N per machine (M times the data):

    T(M) = T_kernel(N) / M + overhead + ceil(log_8 M) * (latency + 8 * 8P / bandwidth)
           + M * s P / bandwidth                      (N per machine: T_kernel(N), not / M)

T_kernel(N) the in-process time on the 2 cores, overhead the measured per-evaluation overhead on 2
workers (scheduling, the graph, the client), P the number of weights, s their item size; the
last two terms are the fan-in-8 reduction tree and the weights sent to each machine (as if one
after another: an upper bound, since workers also fetch them from each other), for a network
of `--bandwidth` Gbit/s and `--latency` ms (assumptions, printed). The table says when M machines
stop paying: when T(M) stops falling.

The figures mean something only on an otherwise idle machine: the script prints the load average
and warns when other processes share the cores.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)

import _common  # noqa: E402
import numpy as np  # noqa: E402

import fastbp  # noqa: E402

# This script's name is that of Dask's package: take bench/ off the path again, so that
# `import distributed` finds Dask's (here and in the worker processes, which re-run this file).
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

NETWORKS = {"B": [8, 32, 32, 1], "D": [784, 256, 256, 10]}
FAN_IN = 8


def n_params(widths):
    return sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:]))


def choose_n(widths, dtype, target, threads):
    """N (a multiple of 128) such that fastbp.gradient on `threads` threads takes >= target s."""
    n = 4096
    while True:
        w, X, y = _common.make_problem(widths, n, dtype)
        fastbp.gradient(w, X, y, num_threads=threads)
        t0 = time.perf_counter()
        fastbp.gradient(w, X, y, num_threads=threads)
        t = time.perf_counter() - t0
        if t >= target:
            return n
        n = int(math.ceil(n * min(16.0, 1.15 * target / max(t, 1e-6)) / 128) * 128)


def _received(dask_worker):
    return sum(entry["total"] for entry in dask_worker.transfer_incoming_log)


def peer_bytes(client):
    """Bytes the workers have received from one another (their transfer logs)."""
    return sum(client.run(_received).values())


def run_network(name, widths, args, client):
    import dask.array as da

    from fastbp.distributed import ClusterObjective

    dtype = np.dtype(args.dtype)
    timing = dict(max_repeats=5, budget=1.0) if args.quick else dict(max_repeats=15,
                                                                     budget=6.0)
    n = choose_n(widths, dtype, args.target, args.threads)
    n -= n % 2
    half = n // 2
    P = n_params(widths)
    # the data are born on the workers, in 2 chunks (one each), as data read from files would be;
    # the in-process run gets a copy
    rng = da.random.default_rng(0)
    Xd = rng.standard_normal((n, widths[0]), chunks=(half, widths[0])).astype(dtype)
    yd = rng.uniform(-0.8, 0.8, (n, widths[-1]), chunks=(half, widths[-1])).astype(dtype)
    X, y = client.compute([Xd, yd], sync=True)
    w = fastbp.init_weights(widths, seed=1, dtype=dtype)

    # in-process, 2 threads; and what one worker's kernel needs for its half, on 1 thread
    want = fastbp.gradient(w, X, y, num_threads=args.threads)
    t_local = _common.measure(lambda: fastbp.gradient(w, X, y, num_threads=args.threads),
                              **timing)[0]
    t_half_1 = _common.measure(lambda: fastbp.gradient(w, X[:half], y[:half], num_threads=1),
                               **timing)[0]

    # the cluster: the data persisted in 2 chunks, one per worker
    obj = ClusterObjective(client, Xd, yd, widths, dtype, "tanh")
    flat = obj.flat(w)
    g = np.empty_like(flat)
    E = obj.gradient(flat, g)                                     # warm-up, and the check
    err = _common.rel_errors((E[0], obj.views(g)), want)
    b0 = peer_bytes(client)
    for _ in range(3):
        obj.gradient(flat, g)
    moved_peer = (peer_bytes(client) - b0) // 3
    t_cluster = _common.measure(lambda: obj.gradient(flat, g), **timing)[0]
    obj.release()

    # overhead measured directly: the same network on 2 chunks of 64 rows
    Xs, ys = Xd[:128].rechunk((64, widths[0])), yd[:128].rechunk((64, widths[-1]))
    small = ClusterObjective(client, Xs, ys, widths, dtype, "tanh")
    t_small = _common.measure(lambda: small.gradient(flat, g), **timing)[0]
    t_small_kernel = _common.measure(lambda: fastbp.gradient(w, X[:64], y[:64], num_threads=1),
                                     **timing)[0]
    small.release()

    overhead = max(t_cluster - t_half_1, 0.0)
    # the weights in the graph: client -> scheduler -> the worker that holds them (the others
    # fetch them from there: counted in bytes_peer, with the partial sums of the tree)
    sent = dtype.itemsize * P * 2
    back = 8 * P                           # the float64 sum, to the client
    row = dict(network=name, widths=widths, N=n, dtype=str(dtype), params=P,
               t_local=t_local, t_worker_half_1thread=t_half_1, t_cluster=t_cluster,
               overhead=overhead, overhead_small=t_small - t_small_kernel,
               efficiency=t_local / t_cluster, ratio=t_cluster / t_local,
               agreement_E=err[0], agreement_grad=err[1],
               bytes_peer=moved_peer, bytes_weights=sent, bytes_result=back,
               bytes_total=moved_peer + sent + back)
    bw = args.bandwidth * 1e9 / 8
    lat = args.latency * 1e-3
    model, model_weak = {}, {}
    for M in (1, 2, 10, 100):
        depth = math.ceil(math.log(M, FAN_IN)) if M > 1 else 0
        comm = depth * (lat + FAN_IN * 8 * P / bw) + M * dtype.itemsize * P / bw
        model[M] = t_local / M + overhead + comm           # the same N shared by M machines
        model_weak[M] = t_local + overhead + comm          # N per machine: M times the data
    row["model"], row["model_weak"] = model, model_weak
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="a gradient of >= 0.03 s, fewer repeats (checks that the script runs)")
    ap.add_argument("--target", type=float, default=None,
                    help="seconds one in-process gradient must take at least (default 0.3)")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--threads", type=int, default=2, help="in-process threads (= cluster cores)")
    ap.add_argument("--networks", default="B,D")
    ap.add_argument("--bandwidth", type=float, default=10.0, help="model: network Gbit/s")
    ap.add_argument("--latency", type=float, default=0.2, help="model: one message, ms")
    ap.add_argument("--json", default=None,
                    help="write the results here (default bench/distributed.json; none with "
                         "--quick)")
    args = ap.parse_args(argv)
    if args.target is None:
        args.target = 0.03 if args.quick else 0.3

    from distributed import Client, LocalCluster

    cpu = _common.cpu_info()
    load = os.getloadavg()
    print(f"CPU: {cpu['model']} ({cpu.get('usable_cpus')} usable); {args.dtype}; fastbp kernels "
          f"{_common.fastbp_private('ISA', '?')}; in-process fastbp on {args.threads} threads; "
          f"cluster: LocalCluster(n_workers=2, threads_per_worker=1, processes=True)")
    print(f"load average before the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if load[0] > 0.5:
        print("WARNING: other processes are using the cores: these timings are not a record")
    rows = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        import fastbp.distributed as fd
        workers = fd.kernels(client)
        print(f"workers' kernels: {sorted(set(workers.values()))}")
        for name in args.networks.split(","):
            rows.append(run_network(name, NETWORKS[name], args, client))

    f = _common.fmt_time
    print()
    print(f"{'net':4} {'N':>8} {'in-process':>11} {'cluster':>10} {'ratio':>6} {'eff.':>5} "
          f"{'overhead':>9} {'(64 rows)':>9} {'bytes/eval':>11} {'agree E, g':>18}")
    for r in rows:
        print(f"{r['network']:4} {r['N']:>8} {f(r['t_local']):>11} {f(r['t_cluster']):>10} "
              f"{r['ratio']:>6.2f} {r['efficiency']:>5.2f} {r['overhead'] * 1e3:>7.1f}ms "
              f"{r['overhead_small'] * 1e3:>7.1f}ms {r['bytes_total']:>11,} "
              f"{r['agreement_E']:>8.1e} {r['agreement_grad']:>8.1e}")
    print("target: cluster within 1.25x of in-process on the same cores: "
          + ", ".join(f"{r['network']} {'met' if r['ratio'] <= 1.25 else 'NOT met'}"
                      for r in rows))
    print()
    print(f"model, time per gd iteration (one gradient) on M machines of 2 cores "
          f"({args.bandwidth:g} Gbit/s, {args.latency:g} ms per message, the overhead measured "
          f"above):")
    print(f"{'net':4} {'data':>14} " + " ".join(f"{'M=' + str(M):>10}" for M in (1, 2, 10, 100)))
    for r in rows:
        for key, label in (("model", "N in all"), ("model_weak", "N per machine")):
            print(f"{r['network']:4} {label:>14} "
                  + " ".join(f"{f(r[key][M]):>10}" for M in (1, 2, 10, 100)))
    path = args.json or (None if args.quick else os.path.join(os.path.dirname(__file__),
                                                              "distributed.json"))
    if path:
        record = dict(cpu=cpu, load_average=load, python=_common.python_info(),
                      fastbp=_common.fastbp_config(), workers_kernels=workers,
                      args=vars(args), results=rows)
        with open(path, "w") as fh:
            json.dump(record, fh, indent=1, default=str)
        print(f"written: {path}")


if __name__ == "__main__":
    main()
