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

Mini-batch steps, --threads against 1 (issue 23: every core on every mini-batch step; the only
section run with --steps-only). For each of adam (learning rate 0.001, beta1 0.9, beta2 0.999)
and sgd + Nesterov (learning rate 0.01, momentum 0.9), float64, no weight decay, on
  [64, 100, 10]      relu, softmax, batch 200, N = 1797  (digits-sized; synthetic data)
  [40, 128, 64, 5]   relu, softmax, batch 200, N = 30000
  [50, 256, 128, 10] relu, softmax, batch 200, N = 20000
  [8, 32, 32, 1]     tanh, tanh,    batch 32,  N = 20000
(inputs standard normal, softmax targets one-hot of random classes, tanh targets uniform in
(-0.8, 0.8); --quick: N / 5 but the first's 1797): the epoch on one thread and on --threads.
What is timed is the kernel's epoch alone: fastbp._api.sgd_epoch, the call fit makes for each
epoch of sgd and adam (fastbp._methods.SGD / Adam), on arrays prepared once (weights and their
moments as fit holds them, layer views of one flat vector; the sample order of each epoch a
permutation drawn beforehand). That is fit's epoch without its per-epoch E_in pass and
bookkeeping, measured directly rather than as History's epoch time less a separately timed E_in
pass (E_in is a third of an epoch's work here: the difference of two timings would carry the noise
of both). A check first (one epoch, shuffle=False) that the call leaves bitwise the weights that
fastbp.fit(..., epochs=1, shuffle=False) leaves, on one thread and on --threads. One sample is k
epochs in a row from the same starting weights and zeroed moments (k so that a sample lasts at
least --min-sample seconds; the buffers are reset outside the timing); its time / k is one
epoch's. The two thread counts are timed in turn, --rounds rounds, who goes first alternating
round by round, and every round both must leave bitwise the same weights (else the run stops).
Printed per row: median and min of the per-epoch times, the ratio median(1 thread) /
median(--threads) against issue 23's targets (>= 1.6x on the three softmax networks, >= 0.95x
on [8, 32, 32, 1] batch 32), the flops of an epoch as issue 23 counts them (6 x the number of
weights and biases x N: a forward, a backward and a gradient product of 2 flops per weight; the
backward product of the first layer, which is not done, included; activations, softmax and the
update not counted), GFLOP/s (from the median) and %FMA: that rate over bench/fma_peak.c's float64
peak on the same number of threads (1, or --threads), measured at the start and the end of the
run, the better kept.
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
    best_fma_peaks,
    blas_limit,
    cpu_info,
    fma_peaks,
    fma_peaks_text,
    fmt_time,
    make_problem,
    torch_model,
    torch_set_weights,
    warn_openblas_env,
    work_flops,
    write_record,
)

import fastbp  # noqa: E402
from fastbp import _api  # noqa: E402

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


# issue 23: mini-batch steps on --threads against one; (label, widths, hidden activation,
# output, N, N with --quick, batch size, target of median(1 thread) / median(--threads))
STEP_NETS = [
    ("[64, 100, 10]", [64, 100, 10], "relu", "softmax", 1797, 1797, 200, 1.6),
    ("[40, 128, 64, 5]", [40, 128, 64, 5], "relu", "softmax", 30000, 6000, 200, 1.6),
    ("[50, 256, 128, 10]", [50, 256, 128, 10], "relu", "softmax", 20000, 4000, 200, 1.6),
    ("[8, 32, 32, 1]", [8, 32, 32, 1], "tanh", "tanh", 20000, 4000, 32, 0.95),
]
# the epoch's step rule: (fastbp._api.sgd_epoch's rule, learning rate, momentum (adam: beta1),
# fit's options for the same method)
STEP_METHODS = {
    "adam": ("adam", 0.001, 0.9, dict(method="adam", learning_rate=0.001, beta1=0.9,
                                      beta2=0.999, eps=1e-8)),
    "sgd+nesterov": ("nesterov", 0.01, 0.9, dict(method="sgd", learning_rate=0.01, momentum=0.9,
                                                  nesterov=True)),
}


def step_problem(widths, output, n, seed=0):
    """(weights, X, Y) in float64: fastbp's initial weights (seed + 1), standard normal inputs,
    one-hot targets of random classes (softmax) or targets uniform in (-0.8, 0.8)."""
    if output != "softmax":
        return make_problem(widths, n, "float64", seed=seed)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, widths[0]))
    Y = np.eye(widths[-1])[rng.integers(0, widths[-1], n)]
    return fastbp.init_weights(widths, seed=seed + 1), X, Y


class KernelEpochs:
    """Epochs of one mini-batch method through fastbp._api.sgd_epoch (the call fit makes for each
    epoch of sgd and adam) on buffers of its own: the weights and moments as layer views of flat
    vectors, as fit holds them. reset() puts back the starting weights and zero moments;
    run(threads, k) does k epochs, epoch j in the order orders[j % len(orders)]."""

    def __init__(self, weights0, X, Y, batch, method, activation, output, orders):
        self.rule, self.lr, self.momentum, _ = STEP_METHODS[method]
        self.weights0, self.X, self.Y, self.batch = weights0, X, Y, batch
        self.activation, self.output, self.orders = activation, output, orders
        self.widths = [weights0[0].shape[0] - 1] + [w.shape[1] for w in weights0]
        self.shapes = [w.shape for w in weights0]
        size = sum(w.size for w in weights0)
        self.w, self.v, self.s = (np.zeros(size) for _ in range(3))
        self.w_views, self.v_views, self.s_views = (self._views(a)
                                                    for a in (self.w, self.v, self.s))
        self.reset()

    def _views(self, flat):
        out, start = [], 0
        for shape in self.shapes:
            out.append(flat[start:start + shape[0] * shape[1]].reshape(shape))
            start += shape[0] * shape[1]
        return out

    def reset(self):
        for view, w0 in zip(self.w_views, self.weights0):
            view[...] = w0
        self.v[...] = 0.0
        self.s[...] = 0.0

    def run(self, threads, epochs):
        adam = self.rule == "adam"
        steps = 0
        for j in range(epochs):
            out = _api.sgd_epoch(self.w_views, self.widths, self.X, self.Y,
                                 self.orders[j % len(self.orders)], self.batch, self.lr,
                                 self.momentum, self.v_views, 0.0, self.output, self.activation,
                                 None, rule=self.rule, moment2=self.s_views if adam else None,
                                 steps=steps, num_threads=threads)
            steps = out[0]
        return self.w


def check_against_fit(weights0, X, Y, batch, method, activation, output, threads):
    """Raise unless KernelEpochs's epoch, in data order, leaves bitwise the weights that
    fastbp.fit(..., epochs=1, shuffle=False) leaves, on one thread and on `threads`: what is
    timed is fit's epoch."""
    order = np.arange(X.shape[0], dtype=np.intp)
    for t in sorted({1, threads}):
        w = [a.copy() for a in weights0]
        fastbp.fit(w, X, Y, output, activation=activation, epochs=1, batch_size=batch,
                   shuffle=False, num_threads=t, **STEP_METHODS[method][3])
        mine = KernelEpochs(weights0, X, Y, batch, method, activation, output, [order])
        mine.run(t, 1)
        if not all(np.array_equal(a, b) for a, b in zip(w, mine.w_views)):
            raise RuntimeError(f"{method}: fastbp._api.sgd_epoch's epoch is not fit's "
                               f"({t} threads): the benchmark would time something else")


def steps_runs(threads, rounds, min_sample, quick):
    """Issue 23's rows (module docstring): per network and method, the per-epoch times on 1
    thread and on `threads`, timed in turn, with the check that both leave the same weights."""
    rows = []
    for label, widths, activation, output, n_full, n_quick, batch, target in STEP_NETS:
        n = n_quick if quick else n_full
        weights0, X, Y = step_problem(widths, output, n)
        rng = np.random.default_rng(1)
        for method in STEP_METHODS:
            check_against_fit(weights0, X, Y, batch, method, activation, output, threads)
            orders = [rng.permutation(n).astype(np.intp) for _ in range(8)]
            sides = {t: KernelEpochs(weights0, X, Y, batch, method, activation, output, orders)
                     for t in (1, threads)}
            # warm-up (and the first check), then k epochs a sample
            t0 = time.perf_counter()
            sides[1].run(1, 1)
            one = time.perf_counter() - t0
            sides[threads].run(threads, 1)
            if not np.array_equal(sides[1].w, sides[threads].w):
                raise RuntimeError(f"{label} {method}: {threads} threads and 1 differ")
            k = max(1, int(np.ceil(min_sample / max(one, 1e-9))))
            times = {t: [] for t in sides}
            for r in range(rounds):
                turn = (1, threads) if r % 2 == 0 else (threads, 1)
                for t in turn:
                    sides[t].reset()
                    t0 = time.perf_counter()
                    sides[t].run(t, k)
                    times[t].append((time.perf_counter() - t0) / k)
                if not np.array_equal(sides[1].w, sides[threads].w):
                    raise RuntimeError(f"{label} {method}: after {k} epochs the weights on "
                                       f"{threads} threads differ from those on one")
            med = {t: float(np.median(v)) for t, v in times.items()}
            rows.append({
                "net": label, "widths": widths, "activation": activation, "output": output,
                "N": n, "batch_size": batch, "method": method, "epochs_per_sample": k,
                "rounds": rounds, "threads": threads,
                "flops_per_epoch": work_flops(widths) * n,
                "median_s": med, "min_s": {t: float(min(v)) for t, v in times.items()},
                "times_s": times, "speedup": med[1] / med[threads], "target": target,
                "bitwise_equal": True})
    return rows


def print_steps(rows, threads, peaks):
    """The table of steps_runs' rows, with GFLOP/s and %FMA against `peaks` (fma_peaks's)."""
    peak = (peaks or {}).get("float64", {})
    print(f"Mini-batch steps, {threads} threads against 1 (issue 23), float64, timed in turn: "
          "per-epoch median and min over the rounds; flops = 6 x weights x N; %FMA against "
          f"bench/fma_peak.c on the same threads ({fma_peaks_text(peaks)})")
    print(f"{'network':20s} {'method':13s} {'N':>6s} {'batch':>5s} {'flop/epoch':>10s} "
          f"{'thr':>3s} {'median':>10s} {'min':>10s} {'GFLOP/s':>8s} {'%FMA':>6s} "
          f"{'1t/' + str(threads) + 't':>7s} {'target':>7s}")
    for r in rows:
        for t in (1, threads):
            med = r["median_s"][t]
            gflops = r["flops_per_epoch"] / med / 1e9
            fma = f"{100 * gflops / peak[t]:5.1f}%" if t in peak else "-"
            for_row = t == threads
            ratio = f"{r['speedup']:6.2f}x" if for_row else ""
            target = (f">={r['target']:.2f}x {'met' if r['speedup'] >= r['target'] else 'NOT met'}"
                      if for_row else "")
            print(f"{r['net']:20s} {r['method']:13s} {r['N']:6d} {r['batch_size']:5d} "
                  f"{r['flops_per_epoch']:10.3g} {t:3d} {fmt_time(med):>10s} "
                  f"{fmt_time(r['min_s'][t]):>10s} {gflops:8.2f} {fma:>6s} {ratio:>7s} {target}")
            r.setdefault("gflops", {})[t] = gflops
            if t in peak:
                r.setdefault("pct_fma", {})[t] = 100 * gflops / peak[t]
    print("bitwise the same weights on 1 and on", threads, "threads in every round: yes "
          "(checked; the run stops otherwise)")


def steps_section(args):
    """Issue 23's section: the FMA peaks, the rows, the table; its part of the JSON record."""
    seconds = 0.1 if args.quick else 0.5
    counts = sorted({1, args.threads})
    start = fma_peaks(["float64"], counts, seconds)
    rows = steps_runs(args.threads, args.rounds, args.min_sample, args.quick)
    end = fma_peaks(["float64"], counts, seconds)
    peaks = best_fma_peaks(start, end)
    print_steps(rows, args.threads, peaks)
    return {"rows": rows, "fma_peak_gflops": peaks, "fma_peak_by_time": {"start": start,
                                                                          "end": end},
            "isa": getattr(_api, "ISA", None), "rounds": args.rounds,
            "min_sample_s": args.min_sample, "threads": args.threads}


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
    ap.add_argument("--steps-only", action="store_true",
                    help="only the mini-batch steps section, --threads against 1 (issue 23)")
    ap.add_argument("--rounds", type=int, default=7,
                    help="rounds of the mini-batch steps section (each times both thread "
                         "counts, in turn)")
    ap.add_argument("--min-sample", type=float, default=0.25,
                    help="seconds a timed sample of the mini-batch steps section lasts at least "
                         "(so many epochs in a row)")
    args = ap.parse_args(argv)
    warn_openblas_env()
    if args.rounds < 1 or args.threads < 1:
        ap.error(f"--rounds and --threads must be >= 1, got {args.rounds} and {args.threads}")
    print(f"CPU: {cpu_info().get('model', '?')}; load average at the start: "
          f"{os.getloadavg() if hasattr(os, 'getloadavg') else '?'}")
    if args.steps_only:
        steps = steps_section(args)
        write_record(args.json, {"mini_batch_steps": steps,
                                 "versions": {"fastbp": fastbp.__version__,
                                              "numpy": np.__version__}})
        return
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
    steps = steps_section(args)
    write_record(args.json, {
        "mini_batch_steps": steps,
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
