"""One epoch of mini-batch SGD (batch 32) on d = [8, 32, 32, 1], N = 100000: fastbp against the
same training loop in PyTorch and scikit-learn's MLPRegressor.partial_fit.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/train_epoch.py [--quick]

- fastbp, SGD epoch: the epoch alone (one call into the compiled kernel, the shuffle included),
  through the public API: the time fastbp.fit(method="sgd", epochs=2, num_threads=1)'s History
  records for its second epoch (the epoch, then E_in at the weights it left), less the time of
  one fastbp.error on one thread at those weights (E_in's pass, timed right after, repeat by
  repeat): the epoch without fit's bookkeeping, what the targets below compare;
- fastbp, fit(epochs=1): the public call, which also checks its arguments, copies the weights,
  evaluates E_in before and after the epoch and records the history;
- fastbp, full-batch gradient: one fastbp.gradient on all N samples (all threads), the yardstick of
  issue 4's target (epoch <= 1.5x this), and the same on one thread (the SGD epoch runs on one:
  its steps depend on each other, and sharing a batch-32 step out costs more in handing
  activations between cores than it saves: see fastbp._methods.SGD);
- PyTorch: nn.Sequential(Linear, Tanh, Linear, Tanh, Linear, Tanh) (_common.torch_model: a tanh
  output, as fastbp's here), float64, loss = mean over the batch of the summed squared error,
  torch.optim.SGD, the usual zero_grad / backward / step loop over a shuffled index,
  torch.set_num_threads(threads);
- scikit-learn: MLPRegressor(hidden_layer_sizes=(32, 32), activation="tanh", solver="sgd",
  batch_size=32, momentum=0, alpha=0, learning_rate="constant"), one partial_fit call = one epoch.
  Its output unit is linear (identity) and its loss is half the squared error: the same work up to
  the output's tanh;
- fit_many (issue 14): --threads networks trained at once, one per thread, one epoch each (fit's
  work: the epoch, then E_in on the network's thread), against one network's fit(epochs=1) on
  one thread, the two timed in turn. Target: at most 1.15x the time. (Against fit on all threads,
  whose E_in pass after the epoch uses every thread, the ratio is printed too.)
- SGD epoch, batch 4096, 2 threads vs 1 thread (issue 14: every core busy in SGD): the epoch
  alone as above (plain SGD, float64, same N; fit and error on the thread count measured) with
  mini-batches of 4096 samples, on B = [8, 32, 32, 1] and C = [64, 128, 128, 10] (8 chunks of
  512 samples per batch for both), on one thread and on --threads; the two runs are timed
  alternately (a busy machine slows both alike) and must give bitwise the same weights. Target:
  at least 1.6x faster on 2 threads.
Every run starts from the same weights; the table gives the median and min over the repeats.
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import (  # noqa: E402
    blas_limit,
    cpu_info,
    fmt_time,
    make_problem,
    torch_model,
    torch_set_weights,
    warn_openblas_env,
    write_record,
)

import fastbp  # noqa: E402

WIDTHS = [8, 32, 32, 1]
BATCH = 32
LR = 0.01
# the large mini-batches whose chunks the epoch kernel shares out among threads (issue 14)
BIG_BATCH = 4096
BIG_BATCH_NETS = {"B": WIDTHS, "C": [64, 128, 128, 10]}


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), float(min(times))


def timed_in_turn(fns, repeats):
    """{name: (median, min)} of the callables in `fns` (a dict), timed one after the other,
    repeat after repeat, so that a busy spell of the host hits each alike."""
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: (float(np.median(v)), float(min(v))) for name, v in times.items()}


def sgd_epoch(weights0, X, y, batch_size, threads):
    """(seconds, weights): one epoch of plain SGD alone, through the public API (see the module
    docstring): fit's second epoch as its History times it, less E_in's pass after it."""
    w = [a.copy() for a in weights0]
    history = fastbp.fit(w, X, y, method="sgd", learning_rate=LR, epochs=2,
                         batch_size=batch_size, num_threads=threads)
    t0 = time.perf_counter()
    fastbp.error(w, X, y, num_threads=threads)
    error_pass = time.perf_counter() - t0
    return history.time[1] - history.time[0] - error_pass, w


def epochs_in_turn(runs, repeats):
    """{name: (median, min)} of the epochs that the callables in `runs` (a dict) time themselves
    (sgd_epoch), one after the other, repeat after repeat."""
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            times[name].append(run()[0])
    return {name: (float(np.median(v)), float(min(v))) for name, v in times.items()}


def fastbp_runs(weights0, X, y, threads, repeats):
    rows = {}

    def epoch():
        return sgd_epoch(weights0, X, y, BATCH, 1)
    epoch()
    rows["fastbp SGD epoch"] = epochs_in_turn({"epoch": epoch}, repeats)["epoch"]

    def fit_epoch():
        w = [a.copy() for a in weights0]
        fastbp.fit(w, X, y, method="sgd", learning_rate=LR, epochs=1, batch_size=BATCH,
                   num_threads=threads)
    fit_epoch()
    rows["fastbp fit(epochs=1)"] = timed(fit_epoch, repeats)

    def fit_epoch_1():
        w = [a.copy() for a in weights0]
        fastbp.fit(w, X, y, method="sgd", learning_rate=LR, epochs=1, batch_size=BATCH,
                   num_threads=1)

    def fit_many_epoch():
        ws = [[a.copy() for a in weights0] for _ in range(threads)]
        fastbp.fit_many(ws, X, y, method="sgd", learning_rate=LR, epochs=1, batch_size=BATCH,
                        num_threads=threads)
    # issue 14's yardstick: K networks on K threads against one network on one thread (fit's
    # E_in after the epoch, a full-batch pass, runs on every thread it is given: one each here)
    fit_epoch_1()
    fit_many_epoch()
    rows.update(timed_in_turn({"fastbp fit(epochs=1), 1 thread": fit_epoch_1,
                               f"fastbp fit_many, {threads} nets": fit_many_epoch}, repeats))

    def full_gradient():
        fastbp.gradient(weights0, X, y, num_threads=threads)
    full_gradient()
    rows["fastbp full-batch gradient"] = timed(full_gradient, max(repeats, 5))

    def full_gradient_1():
        fastbp.gradient(weights0, X, y, num_threads=1)
    rows["fastbp gradient, 1 thread"] = timed(full_gradient_1, max(repeats, 5))
    return rows


def big_batch_runs(n, threads, repeats):
    """SGD epoch, batch BIG_BATCH, on 1 thread and on `threads`, for each of BIG_BATCH_NETS:
    (rows, {net: 1-thread median / threads median}). The two are timed in turn, repeat after
    repeat, and must leave bitwise the same weights."""
    rows, speedups = {}, {}
    for label, widths in BIG_BATCH_NETS.items():
        weights0, X, y = make_problem(widths, n, "float64")
        counts = (1, threads)
        runs = {t: functools.partial(sgd_epoch, weights0, X, y, BIG_BATCH, t) for t in counts}
        # warm-up, and the check that threads change nothing
        first = [runs[t]()[1] for t in counts]
        if not all(np.array_equal(a, b) for a, b in zip(*first)):
            raise RuntimeError(f"net {label}: the epoch on {threads} threads differs from one")
        timing = epochs_in_turn(runs, repeats)
        for t in counts:
            rows[f"fastbp {label} b{BIG_BATCH}, {t} thr"] = timing[t]
        speedups[label] = timing[1][0] / timing[threads][0]
    return rows, speedups


def torch_run(weights0, X, y, threads, repeats):
    try:
        import torch
    except ImportError:
        return None
    model = torch_model(weights0, "tanh", threads=threads)   # fastbp's output here is tanh
    Xt = torch.from_numpy(X)
    yt = torch.from_numpy(y)
    n = X.shape[0]

    def epoch():
        torch_set_weights(model, weights0)
        opt = torch.optim.SGD(model.parameters(), lr=LR)
        order = torch.randperm(n)
        for start in range(0, n, BATCH):
            idx = order[start:start + BATCH]
            opt.zero_grad()
            out = model(Xt[idx])
            loss = ((out - yt[idx]) ** 2).sum(dim=1).mean()
            loss.backward()
            opt.step()
    epoch()
    return timed(epoch, repeats), torch.__version__


def sklearn_run(weights0, X, y, threads, repeats):
    try:
        import sklearn
        from sklearn.neural_network import MLPRegressor
    except ImportError:
        return None

    def epoch():
        model = MLPRegressor(hidden_layer_sizes=tuple(WIDTHS[1:-1]), activation="tanh",
                             solver="sgd", batch_size=BATCH, learning_rate_init=LR,
                             learning_rate="constant", momentum=0.0, nesterovs_momentum=False,
                             alpha=0.0, shuffle=True, random_state=0)
        with blas_limit(threads):
            model.partial_fit(X, y[:, 0])
    epoch()
    return timed(epoch, repeats), sklearn.__version__


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="N = 20000 and 3 repeats")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", default=os.path.join(HERE, "results", "train_epoch.json"))
    args = ap.parse_args(argv)
    warn_openblas_env()
    n = 20_000 if args.quick else 100_000
    repeats = 3 if args.quick else args.repeats
    weights0, X, y = make_problem(WIDTHS, n, "float64")

    rows = fastbp_runs(weights0, X, y, args.threads, repeats)
    versions = {"fastbp": fastbp.__version__, "numpy": np.__version__}
    big_rows, big_speedups = big_batch_runs(n, args.threads, repeats)
    rows.update(big_rows)
    res = torch_run(weights0, X, y, args.threads, repeats)
    if res is not None:
        rows["PyTorch loop"], versions["torch"] = res
    res = sklearn_run(weights0, X, y, args.threads, repeats)
    if res is not None:
        rows["scikit-learn partial_fit"], versions["sklearn"] = res

    kernel = rows["fastbp SGD epoch"][0]
    full = rows["fastbp full-batch gradient"][0]
    print(f"One epoch of SGD, batch {BATCH}, widths {WIDTHS}, N = {n}, float64, "
          f"{args.threads} threads; CPU: {cpu_info().get('model', '?')}")
    print(f"{'':28s} {'median':>10s} {'min':>10s} {'samples/s':>12s} {'fastbp epoch is':>18s}")
    for name, (med, mn) in rows.items():
        ratio = "" if name.startswith("fastbp") else f"{med / kernel:10.1f}x faster"
        print(f"{name:28s} {fmt_time(med):>10s} {fmt_time(mn):>10s} {n / med:12.3g} {ratio:>18s}")
    full1 = rows["fastbp gradient, 1 thread"][0]
    print(f"fastbp epoch / its full-batch gradient: {kernel / full:.2f} (target <= 1.5); "
          f"the epoch runs on one thread: against the gradient on one thread {kernel / full1:.2f}")
    many_time = rows[f"fastbp fit_many, {args.threads} nets"][0]
    many = many_time / rows["fastbp fit(epochs=1), 1 thread"][0]
    many_vs_threaded = many_time / rows["fastbp fit(epochs=1)"][0]
    print(f"fit_many: {args.threads} networks on {args.threads} threads take {many:.2f}x the time "
          f"of one network's epoch on one thread (target <= 1.15), {args.threads / many:.2f}x "
          f"the throughput; {many_vs_threaded:.2f}x one network's epoch on {args.threads} "
          "threads (whose E_in pass after the epoch uses them all)")
    if "PyTorch loop" in rows:
        print(f"PyTorch epoch / fastbp epoch: {rows['PyTorch loop'][0] / kernel:.1f} "
              "(target >= 20)")
    for label, speedup in big_speedups.items():
        print(f"SGD epoch, batch {BIG_BATCH}, {args.threads} threads vs 1 thread, "
              f"{label} = {BIG_BATCH_NETS[label]}: {speedup:.2f}x faster (target >= 1.6)")
    write_record(args.json, {
        "widths": WIDTHS, "N": n, "batch_size": BATCH, "dtype": "float64",
        "threads": args.threads, "versions": versions,
        "rows": {k: {"median_s": v[0], "min_s": v[1]} for k, v in rows.items()},
        "epoch_over_full_gradient": kernel / full,
        "epoch_over_full_gradient_1_thread": kernel / full1,
        "fit_many_over_one_fit": many,
        "fit_many_over_one_fit_on_all_threads": many_vs_threaded,
        "sgd_big_batch": {"batch_size": BIG_BATCH, "threads": args.threads,
                          "nets": {k: list(v) for k, v in BIG_BATCH_NETS.items()},
                          "speedup_over_1_thread": big_speedups}})


if __name__ == "__main__":
    main()
