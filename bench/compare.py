"""fastbp side by side with every peer installed here: one table, a JSON record and a chart.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/compare.py            # full run
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/compare.py --quick    # < 2 minutes

For each configuration (layer widths, N, dtype), every implementation computes E_in and the gradient
of E_in for the whole batch, once per call. Before any timing each peer's E_in and gradient are
checked against fastbp's (relative 1e-6 in float64, 1e-3 in float32; the LIBXSMM peer, which
computes what fastbp computes, 1e-10 and 1e-4); a peer that disagrees is reported and not timed.
The LIBXSMM peer is bench/libxsmm_peer.c, built here on first use (needs libxsmm-dev and cc;
skipped with a note without them). Each call is then timed several times after a warm-up
(which is where torch.compile and JAX compile). The matrix-product peak of this machine is
measured in the same run (NumPy matmul of large square matrices, same thread count), so that
GFLOP/s can be read as a fraction of what the CPU can do. See bench/README.md for the columns.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import shutil
import statistics
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

# name: (widths, N, dtypes)
CONFIGS = {
    "A": ([2, 3, 1], 100_000, ("float64",)),
    "B": ([8, 32, 32, 1], 100_000, ("float64", "float32")),
    "C": ([64, 128, 128, 10], 50_000, ("float64", "float32")),
    "D": ([784, 256, 256, 10], 20_000, ("float64", "float32")),
    "E": ([16] + [64] * 8 + [1], 50_000, ("float64", "float32")),
    "A32": ([2, 3, 1], 32, ("float64",)),          # one mini-batch through the public API
    # D as a classifier (issue 11): ReLU hidden units, softmax output, mean cross-entropy, one-hot y
    "Dsm": ([784, 256, 256, 10], 20_000, ("float64", "float32")),
}
# (activation, output) of the configurations that are not tanh networks with a tanh output
MODELS = {"Dsm": ("relu", "softmax")}
PEER_ORDER = ["reference", "numpy", "torch", "torch.compile", "jax", "sklearn", "fann", "libxsmm"]
# Peers also run on one thread when --threads > 1 (a row "<peer>-1thread", as fastbp's): those
# whose thread count can be set exactly.
SINGLE_THREAD_ROWS = ("libxsmm",)
# Peers held to a tighter check than the configuration's: the LIBXSMM peer computes exactly what
# fastbp does (same order of operations up to the sums), so it must agree to 1e-10 / 1e-4.
PEER_TOLERANCE = {("libxsmm", "float64"): 1e-10, ("libxsmm", "float32"): 1e-4}
# Peers that count for "the fastest peer": every one but the reference (the baseline). FANN runs
# on one thread only, but a user could pick it, so it counts (it is never the fastest anyway).
FASTEST_AMONG = [p for p in PEER_ORDER if p != "reference"]
# Issue 3's targets: fastbp's speed-up over the fastest peer, per (config, dtype).
SPEEDUP_TARGETS = {("A", "float64"): 3.0, ("B", "float64"): 3.0, ("B", "float32"): 3.0,
                   ("C", "float64"): 1.5, ("C", "float32"): 1.5, ("D", "float64"): 1.2,
                   ("D", "float32"): 1.0, ("E", "float64"): 2.0, ("E", "float32"): 1.5,
                   # issue 11's, for the ReLU + softmax classifier
                   ("Dsm", "float64"): 1.2, ("Dsm", "float32"): 1.0}
PEAK_TARGET = {("C", "float64"): 60.0, ("D", "float64"): 60.0, ("E", "float64"): 60.0}
MINIBATCH_TARGET_S = 5e-6
THREAD_SCALING_TARGET = 1.8
REFERENCE_TARGET = 100.0


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Configurations: " + "; ".join(
                                     f"{k} {w} N={n} {'/'.join(d)}"
                                     for k, (w, n, d) in CONFIGS.items()))
    ap.add_argument("--quick", action="store_true",
                    help="N/10 (A32 stays 32), reference on 200 samples, fewer repeats: < 2 min")
    ap.add_argument("--threads", type=int, default=2,
                    help="threads for fastbp, BLAS (threadpoolctl) and PyTorch (default 2)")
    ap.add_argument("--configs", default=",".join(CONFIGS),
                    help="comma-separated subset of " + ",".join(CONFIGS))
    ap.add_argument("--dtypes", default="float64,float32", help="float64, float32 or both")
    ap.add_argument("--peers", default=",".join(PEER_ORDER),
                    help="comma-separated subset of " + ",".join(PEER_ORDER))
    ap.add_argument("--ref-samples", type=int, default=None,
                    help="samples the reference is timed on, scaled to N (default 2000; quick 200)")
    ap.add_argument("--no-single-thread", action="store_true",
                    help="skip the fastbp 1-thread row (used for the 1 -> 2 threads scaling)")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds of timing per measurement (default 3; quick 0.3)")
    ap.add_argument("--pause", type=float, default=None,
                    help="seconds of rest before each measurement, so that the thread pools of the "
                         "library timed before go idle (default 0.2; quick 0.05)")
    ap.add_argument("--interleave", type=int, default=0, metavar="ROUNDS",
                    help="time fastbp and the peers of a row in turn, ROUNDS rounds (each "
                         "implementation BUDGET/ROUNDS seconds a round, who goes first rotating), "
                         "the median of the rounds' medians; the reference is timed once, apart. "
                         "On a shared host whose speed drifts by 10-30 %% from minute to minute, "
                         "the ratios of one run then compare the same minutes (default 0: one "
                         "implementation after the other)")
    ap.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    ap.add_argument("--no-chart", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    args.dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    args.peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    for c in args.configs:
        if c not in CONFIGS:
            ap.error(f"--configs: unknown configuration {c!r}; choose from {', '.join(CONFIGS)}")
    for d in args.dtypes:
        if d not in ("float64", "float32"):
            ap.error(f"--dtypes: {d!r} is neither float64 nor float32")
    for p in args.peers:
        if p not in PEER_ORDER:
            ap.error(f"--peers: unknown peer {p!r}; choose from {', '.join(PEER_ORDER)}")
    if args.threads < 1:
        ap.error(f"--threads must be at least 1, got {args.threads}")
    if args.interleave < 0:
        ap.error(f"--interleave must be 0 (off) or a number of rounds, got {args.interleave}")
    if args.ref_samples is None:
        args.ref_samples = 200 if args.quick else 2000
    if args.pause is None:
        args.pause = 0.05 if args.quick else 0.2
    if args.budget is None:
        args.budget = 0.3 if args.quick else 3.0
    return args


def set_thread_environment(threads):
    """Before JAX is imported: XLA's CPU pool can only be switched to one thread, not to n."""
    if threads == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_cpu_multi_thread_eigen" not in flags:
            os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false "
                                       "intra_op_parallelism_threads=1").strip()


# The classifier's gradient is a mean of p - y over 20000 samples that nearly cancels (p near 1/10,
# one-hot y): in float32 fastbp is 3.5e-4 from its float64 result on this data, PyTorch 5.0e-4 and
# JAX 1.1e-3. Peers are checked against fastbp's float32 result, so Dsm allows 3e-3 there.
CLASSIFIER_F32_TOLERANCE = 3e-3


def tolerance(dtype, key=None):
    if dtype == "float32" and key in MODELS:
        return CLASSIFIER_F32_TOLERANCE
    return 1e-6 if dtype == "float64" else 1e-3


def run_row(key, dtype, args, available, peak, log):
    """Check and time fastbp and every available peer on one configuration: a list of records."""
    import _common
    import numpy as np
    import peers

    import fastbp

    widths, n, _ = CONFIGS[key]
    activation, model_output = MODELS.get(key, ("tanh", "tanh"))
    if args.quick and key != "A32":
        n //= 10
    weights, X, y = _common.make_problem(widths, n, dtype, seed=args.seed)
    if model_output == "softmax":       # one-hot classes
        classes = np.random.default_rng(args.seed + 2).integers(0, widths[-1], n)
        y = np.eye(widths[-1], dtype=dtype)[classes]
    flops_per_sample = _common.work_flops(widths)
    done_per_sample = _common.done_flops(widths)
    rtol = tolerance(dtype, key)
    timing = dict(min_repeats=3, max_repeats=5 if args.quick else 15, budget=args.budget,
                  min_sample=0.005 if args.quick else 0.02)
    base = {"config": key, "widths": widths, "n": n, "dtype": dtype}
    records = []
    expected = {}

    def fastbp_result(output, X_, y_):
        k = (output, X_.shape[0])
        if k not in expected:
            expected[k] = fastbp.gradient(weights, X_, y_, output=output, num_threads=args.threads,
                                          activation=activation)
        return expected[k]

    def record(impl, status, med=None, best=None, reps=None, inner=None, scale=1.0, **extra):
        r = dict(base, impl=impl, status=status)
        if med is not None:
            med, best = med * scale, best * scale
            gflops = flops_per_sample * n / med / 1e9
            r.update(median_s=med, min_s=best, repeats=reps, calls_per_repeat=inner,
                     samples_per_s=n / med, gflops=gflops, pct_peak=100 * gflops / peak[dtype],
                     gflops_done=done_per_sample * n / med / 1e9)
        r.update(extra)
        records.append(r)
        return r

    # (impl, call, scale, fields of its record, note for the log) of every implementation that
    # agrees with fastbp: timed at once, or with --interleave all together in rounds at the end
    timed = []
    prepared = []      # peers kept open for the rounds

    def record_error(impl, exc):
        msg = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        record(impl, "error", error=msg,
               traceback="".join(traceback.format_exception(type(exc), exc, exc.__traceback__,
                                                           limit=3)))
        log(f"  {key:>3} {dtype} {impl:16} ERROR {msg}")

    def time_now(entry):
        impl, call, scale, fields, note = entry
        try:
            time.sleep(args.pause)
            med, best, reps, inner = _common.measure(call, **timing)
        except Exception as exc:
            record_error(impl, exc)
            return
        record(impl, "ok", med, best, reps, inner, scale, **fields)
        log(f"  {key:>3} {dtype} {impl:16} {_common.fmt_time(med * scale)}{note}")

    # fastbp itself, then its single-thread run (for the 1 -> n threads scaling).
    fb_runs = [("fastbp", args.threads)]
    if args.threads > 1 and not args.no_single_thread:
        fb_runs.append(("fastbp-1thread", 1))
    for impl, th in fb_runs:
        def run(th=th):
            return fastbp.gradient(weights, X, y, num_threads=th, output=model_output,
                                   activation=activation)
        got = run()
        err_E, err_g = _common.rel_errors(got, fastbp_result(model_output, X, y))
        if impl != "fastbp" and (err_E > rtol or err_g > rtol):
            record(impl, "disagrees", err_E=err_E, err_g=err_g)
            continue
        timed.append((impl, run, 1.0, dict(threads=str(th), err_E=err_E, err_g=err_g), ""))
        if not args.interleave:
            time_now(timed.pop())

    runs = []            # (row name, peer, threads): LIBXSMM also on one thread, as fastbp
    for name in args.peers:
        if available[name][0]:
            runs.append((name, name, args.threads))
            if name in SINGLE_THREAD_ROWS and args.threads > 1 and not args.no_single_thread:
                runs.append((f"{name}-1thread", name, 1))
    for impl, name, threads in runs:
        Xp, yp, scale, extra = X, y, 1.0, {}
        if name == "reference" and n > args.ref_samples:
            Xp, yp = X[:args.ref_samples], y[:args.ref_samples]
            scale = n / args.ref_samples
            extra = {"timed_on_samples": args.ref_samples, "scaled_by": scale}
        p = None
        try:
            t0 = time.perf_counter()
            p = peers.prepare(name, weights, Xp, yp, threads, activation, model_output)
            got = p.convert(p.run())          # the check; also the warm-up (compiles)
            setup_s = time.perf_counter() - t0
            want = fastbp_result(p.output, Xp, yp)
            err_E, err_g = _common.rel_errors(got, want)
            e_tol = 1e-4 if name == "fann" else rtol    # FANN sums its MSE in single precision
            g_tol = PEER_TOLERANCE.get((name, dtype), rtol)
            if (name, dtype) in PEER_TOLERANCE:
                e_tol = g_tol
            agrees = err_E <= e_tol and err_g <= g_tol
            notes = list(p.notes)
            if not agrees and p.recheck is not None:
                got2, want2 = p.recheck()
                e2, g2 = _common.rel_errors(got2, want2)
                if e2 <= e_tol and g2 <= rtol:
                    agrees = True
                    notes.append(f"differs on this data (E_in {err_E:.1e}, gradient {err_g:.1e}: "
                                 f"clipped tanh' of saturated units); agrees ({g2:.1e}) on "
                                 "weights and inputs x0.3")
            if not agrees:
                record(impl, "disagrees", err_E=err_E, err_g=err_g, threads=p.threads,
                       notes=notes, **extra)
                log(f"  {key:>3} {dtype} {impl:16} DISAGREES (E_in {err_E:.1e}, "
                    f"gradient {err_g:.1e}): not timed")
                continue
            entry = (impl, p.run, scale,
                     dict(threads=p.threads, notes=notes, err_E=err_E, err_g=err_g,
                          output=p.output, setup_s=setup_s, **extra),
                     f" (x{scale:g} from {args.ref_samples} samples)" if scale != 1 else "")
            if args.interleave and name != "reference":
                timed.append(entry)
                prepared.append(p)
                p = None               # closed after the rounds
            else:
                time_now(entry)
        except peers.NotApplicable as exc:
            record(impl, "n/a", error=str(exc))
            log(f"  {key:>3} {dtype} {impl:16} not applicable: {exc}")
        except Exception as exc:
            record_error(impl, exc)
        finally:
            if p is not None:
                p.close()
    if timed:
        try:
            measured = time_in_turn(timed, args)
        finally:
            for p in prepared:
                p.close()
        for impl, _call, scale, fields, note in timed:
            got = measured[impl]        # its rounds' measurements, or what stopped it
            if isinstance(got, Exception):
                record_error(impl, got)
                continue
            med = statistics.median(m[0] for m in got)
            record(impl, "ok", med, min(m[1] for m in got), sum(m[2] for m in got),
                   got[0][3], scale, rounds=len(got),
                   round_medians_s=[m[0] * scale for m in got], **fields)
            log(f"  {key:>3} {dtype} {impl:16} {_common.fmt_time(med * scale)}{note} "
                f"(median of {len(got)} rounds in turn)")
    # the records in the order of the table: fastbp's rows first, then the peers' as listed
    order = {impl: i for i, impl in enumerate(["fastbp", "fastbp-1thread"] + [r[0] for r in runs])}
    records.sort(key=lambda r: order.get(r["impl"], len(order)))

    # Ratios: every peer's time over fastbp's, and fastbp against the fastest peer.
    fb = next((r for r in records if r["impl"] == "fastbp" and r["status"] == "ok"), None)
    timed_peers = [r for r in records if r["impl"] in FASTEST_AMONG and r["status"] == "ok"]
    if fb is not None:
        for r in records:
            if r is not fb and r.get("median_s"):
                r["fastbp_speedup"] = r["median_s"] / fb["median_s"]
        if timed_peers:
            fastest = min(timed_peers, key=lambda r: r["median_s"])
            fb["fastest_peer"] = fastest["impl"]
            fb["speedup_over_fastest_peer"] = fastest["median_s"] / fb["median_s"]
    return records


def time_in_turn(timed, args):
    """--interleave: every entry of `timed` (see run_row) timed args.interleave rounds, each
    round every implementation in turn (who goes first rotating), BUDGET/ROUNDS seconds each.
    {impl: its rounds' _common.measure results, or the exception that stopped it}."""
    import _common
    rounds = args.interleave
    how = dict(min_repeats=1, max_repeats=15, budget=args.budget / rounds,
               min_sample=0.005 if args.quick else 0.02)
    measured = {entry[0]: [] for entry in timed}
    for r in range(rounds):
        for impl, call, *_ in timed[r % len(timed):] + timed[:r % len(timed)]:
            if isinstance(measured[impl], Exception):
                continue
            try:
                time.sleep(args.pause)
                measured[impl].append(_common.measure(call, **how))
            except Exception as exc:
                measured[impl] = exc
    return measured


def print_table(rows, peak, fma_peak=None, file=sys.stdout):
    import _common
    head = (f"{'config':6} {'dtype':7} {'N':>7} {'implementation':15} {'median':>9} {'min':>9} "
            f"{'samples/s':>9} {'GFLOP/s':>8} {'%peak':>6} {'%FMA':>6} {'fastbp x':>15}  "
            "status / notes")
    print(head, file=file)
    print("-" * len(head), file=file)
    prev = None
    for r in rows:
        if prev is not None and (r["config"], r["dtype"]) != prev:
            print(file=file)
        prev = (r["config"], r["dtype"])
        impl = r["impl"] + ("*" if r.get("scaled_by") else "")
        if r["impl"] == "fastbp" and r.get("speedup_over_fastest_peer"):
            ratio = f"{r['speedup_over_fastest_peer']:.2f} vs {r['fastest_peer']}"
        elif r.get("fastbp_speedup"):
            ratio = f"{r['fastbp_speedup']:.2f}"
        else:
            ratio = ""
        status = {"ok": "", "disagrees": "DISAGREES with fastbp, not timed",
                  "error": "error: " + str(r.get("error", "")),
                  "n/a": "not applicable: " + str(r.get("error", ""))}.get(r["status"], r["status"])
        if r["status"] == "disagrees":
            status += (f" (E_in {r.get('err_E', math.nan):.1e}, "
                       f"gradient {r.get('err_g', math.nan):.1e})")
        if r["status"] == "ok" and r.get("notes") and r["impl"] in ("fann",):
            status = "; ".join(n for n in r["notes"] if n.startswith("differs"))
        med = r.get("median_s")
        print(f"{r['config']:6} {r['dtype']:7} {r['n']:>7} {impl:15} {_common.fmt_time(med):>9} "
              f"{_common.fmt_time(r.get('min_s')):>9} "
              f"{_common.fmt_rate(r.get('samples_per_s')):>9} "
              f"{r['gflops'] if med else math.nan:8.2f} {r['pct_peak'] if med else math.nan:5.1f}% "
              f"{r.get('pct_fma_peak', math.nan) if med else math.nan:5.1f}% "
              f"{ratio:>15}  {status}".replace(" nan%", "    -").replace("     nan", "       -"),
              file=file)
    print(file=file)
    print(f"matrix-product peak (best of NumPy and PyTorch matmul, 2048 x 2048, same threads): "
          f"float64 {peak['float64']:.1f} GFLOP/s, float32 {peak['float32']:.1f} GFLOP/s; "
          "%peak = GFLOP/s / that peak", file=file)
    if fma_peak:
        print(f"FMA peak (bench/fma_peak.c: multiply-adds in registers, {fma_peak['isa']} "
              f"vectors, same threads): float64 {fma_peak['float64']:.1f} GFLOP/s, float32 "
              f"{fma_peak['float32']:.1f} GFLOP/s; %FMA = the flops actually done (no delta(0)) "
              "per second / that peak", file=file)
    print("fastbp x: a peer's median time / fastbp's (above 1: fastbp is faster); on fastbp's row, "
          "the fastest peer's time / fastbp's. *: timed on a slice and scaled linearly to N.",
          file=file)
    print("Dsm: D's widths with ReLU hidden units and a softmax output, E_in the mean "
          "cross-entropy (one-hot targets); every other configuration is a tanh network with the "
          "squared error.", file=file)


def summary_table(rows):
    """One line per (config, dtype): median times side by side, as in issue 3's table."""
    import _common
    impls = ["fastbp"] + [p for p in PEER_ORDER if any(r["impl"] == p for r in rows)]
    lines = ["| config | dtype | N | " + " | ".join(impls) + " | fastest peer | fastbp x |",
             "|---|---|---|" + "---|" * (len(impls) + 2)]
    keys = []
    for r in rows:
        if (r["config"], r["dtype"]) not in keys:
            keys.append((r["config"], r["dtype"]))
    for key in keys:
        rs = {r["impl"]: r for r in rows if (r["config"], r["dtype"]) == key}
        cells = []
        for i in impls:
            r = rs.get(i)
            if r is None:
                cells.append("")
            elif r["status"] == "ok":
                cells.append(_common.fmt_time(r["median_s"]) + ("*" if r.get("scaled_by") else ""))
            else:
                cells.append(r["status"])
        fb = rs.get("fastbp", {})
        fp = fb.get("fastest_peer", "")
        sp = fb.get("speedup_over_fastest_peer")
        n = next(iter(rs.values()))["n"]
        lines.append(f"| {key[0]} | {key[1]} | {n} | " + " | ".join(cells)
                     + f" | {fp} | {f'{sp:.2f}' if sp else ''} |")
    return "\n".join(lines)


def check_targets(rows, quick):
    """Issue 3's targets that one run can show: a list of (target, value, met)."""
    out = []
    by = {(r["config"], r["dtype"], r["impl"]): r for r in rows}
    for (c, d), target in SPEEDUP_TARGETS.items():
        fb = by.get((c, d, "fastbp"))
        if fb and fb.get("speedup_over_fastest_peer"):
            v = fb["speedup_over_fastest_peer"]
            out.append((f"{c} {d}: >= {target}x the fastest peer ({fb['fastest_peer']})",
                        f"{v:.2f}x", v >= target))
    for (c, d), target in PEAK_TARGET.items():
        fb = by.get((c, d, "fastbp"))
        if fb and fb.get("pct_peak") is not None:
            out.append((f"{c} {d}: >= {target:.0f}% of the matmul peak", f"{fb['pct_peak']:.1f}%",
                        fb["pct_peak"] >= target))
    fb = by.get(("A32", "float64", "fastbp"))
    if fb and fb.get("median_s"):
        out.append(("A, N=32: <= 5 µs per fastbp.gradient call", f"{fb['median_s'] * 1e6:.1f} µs",
                    fb["median_s"] <= MINIBATCH_TARGET_S))
    for c in ("B", "C", "D", "E"):
        for d in ("float64", "float32"):
            fb, one = by.get((c, d, "fastbp")), by.get((c, d, "fastbp-1thread"))
            if fb and one and fb.get("median_s") and one.get("median_s"):
                v = one["median_s"] / fb["median_s"]
                out.append((f"{c} {d}: 1 -> {fb.get('threads')} threads "
                            f">= {THREAD_SCALING_TARGET}x",
                            f"{v:.2f}x", v >= THREAD_SCALING_TARGET))
    for (c, d, impl), r in by.items():
        if impl == "reference" and r.get("fastbp_speedup"):
            out.append((f"{c} {d}: >= {REFERENCE_TARGET:.0f}x fastbp.reference",
                        f"{r['fastbp_speedup']:.0f}x", r["fastbp_speedup"] >= REFERENCE_TARGET))
    for (c, d, impl), r in by.items():
        if impl == "fastbp" and r.get("fastest_peer") and c != "A32":
            out.append((f"{c} {d}: faster than every peer",
                        f"{r['speedup_over_fastest_peer']:.2f}x",
                        r["speedup_over_fastest_peer"] > 1.0))
    return out


def draw_chart(rows, meta, path):
    import _common
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fbs = [r for r in rows if r["impl"] == "fastbp" and r.get("speedup_over_fastest_peer")]
    if not fbs:
        return False
    labels = [f"{r['config']} {r['dtype'].replace('float', 'f')}\nN={r['n']}" for r in fbs]
    values = [r["speedup_over_fastest_peer"] for r in fbs]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(fbs) + 2), 4.5))
    colors = ["#2a7" if v >= 1 else "#c44" for v in values]
    bars = ax.bar(range(len(fbs)), values, color=colors)
    for b, r in zip(bars, fbs):
        ax.annotate(f"{r['speedup_over_fastest_peer']:.2f}x\nvs {r['fastest_peer']}",
                    (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom",
                    fontsize=7, xytext=(0, 2), textcoords="offset points")
    labelled = False
    for i, r in enumerate(fbs):
        t = SPEEDUP_TARGETS.get((r["config"], r["dtype"]))
        if t:
            ax.plot([i - 0.4, i + 0.4], [t, t], color="k", lw=1.5, ls="--",
                    label=None if labelled else "target (issue 3)")
            labelled = True
    ax.axhline(1.0, color="gray", lw=1)
    ax.set_xticks(range(len(fbs)), labels, fontsize=8)
    ax.set_ylabel("fastbp speed-up over the fastest peer")
    ax.set_ylim(0, max(values + [3.2]) * 1.25)
    cpu = meta["cpu"]["model"] + "; " + _common.cache_text(meta["cpu"].get("caches", {}))
    ax.set_title(f"fastbp gradient vs fastest peer, {meta['threads']} "
                 f"thread{'s' if meta['threads'] > 1 else ''}"
                 f"{' (quick: N/10)' if meta['quick'] else ''}\n{cpu}", fontsize=9)
    if labelled:
        ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def measure_peaks(available, n, quick):
    """{library: {dtype: GFLOP/s}} of n x n matrix products in NumPy and, if installed, PyTorch."""
    import _common
    out = {"numpy": {}}
    use_torch = available["torch"][0] or available["torch.compile"][0]
    if use_torch:
        out["torch"] = {}
    for dt in ("float64", "float32"):
        out["numpy"][dt] = _common.matmul_peak(dt, n, 3 if quick else 7)
        if use_torch:
            out["torch"][dt] = _common.torch_matmul_peak(dt, n, 3 if quick else 7)
    return out


def measure_fma_peak(threads, isa, quick):
    """{dtype: GFLOP/s} of bench/fma_peak.c on fastbp's kernel set, or None (no C compiler, not
    x86-64)."""
    import _common
    out = {dt: _common.fma_peak(dt, threads, isa, 0.1 if quick else 0.5)
           for dt in ("float64", "float32")}
    return out if all(out.values()) else None


def fma_text(fma):
    return ("not measured" if not fma else
            f"float64 {fma['float64']:.1f}, float32 {fma['float32']:.1f} GFLOP/s")


def peak_text(peaks, n, threads):
    return f"{n}x{n}, {threads} threads: " + "; ".join(
        f"{lib} float64 {v['float64']:.1f}, float32 {v['float32']:.1f} GFLOP/s"
        for lib, v in peaks.items())


# LIBXSMM's JIT writes code for the best instruction set of the CPU it runs on; when FASTBP_SIMD
# caps fastbp's kernels, the same cap for LIBXSMM (its own names for the sets), so that the two
# are compared on the same instructions. A LIBXSMM_TARGET given by the user wins.
LIBXSMM_TARGETS = {"baseline": "wsm", "none": "wsm", "0": "wsm", "avx2": "hsw"}


def pin_libxsmm_target():
    """Set LIBXSMM_TARGET from FASTBP_SIMD (before LIBXSMM is loaded); the target, or None."""
    simd = os.environ.get("FASTBP_SIMD", "").strip().lower()
    if "LIBXSMM_TARGET" not in os.environ and simd in LIBXSMM_TARGETS:
        os.environ["LIBXSMM_TARGET"] = LIBXSMM_TARGETS[simd]
        print(f"FASTBP_SIMD={simd}: LIBXSMM_TARGET={os.environ['LIBXSMM_TARGET']} for the "
              "LIBXSMM peer (the same instruction set)")
    return os.environ.get("LIBXSMM_TARGET")


def main(argv=None):
    args = parse_args(argv)
    set_thread_environment(args.threads)
    pin_libxsmm_target()
    import _common
    openblas_env = _common.warn_openblas_env()
    import numpy as np  # noqa: F401  (BLAS loaded before threadpoolctl looks)
    import peers

    import fastbp

    fastbp_isa = _common.fastbp_private("ISA")
    t_start = time.time()
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    available = {}
    for name in PEER_ORDER:
        if name in args.peers:
            available[name] = peers.available(name)
        else:
            available[name] = (False, "not selected (--peers)")
    log("peers: " + "; ".join(f"{k} {'v' + str(v) if ok else '-- ' + v}"
                             for k, (ok, v) in available.items()))
    if available["torch"][0] or available["torch.compile"][0]:
        import torch
        torch.set_num_threads(args.threads)

    with _common.blas_limit(args.threads):
        n_peak = 2048
        peak_by_lib = measure_peaks(available, n_peak, args.quick)
        log("matmul peak at the start (" + peak_text(peak_by_lib, n_peak, args.threads) + ")")
        peak = {dt: max(v[dt] for v in peak_by_lib.values()) for dt in ("float64", "float32")}
        fma_by_time = {"start": measure_fma_peak(args.threads, fastbp_isa, args.quick)}
        log(f"FMA peak at the start ({fastbp_isa}, {args.threads} threads): "
            + fma_text(fma_by_time["start"]))
        rows = []
        for key in args.configs:
            for dtype in CONFIGS[key][2]:
                if dtype in args.dtypes:
                    rows.extend(run_row(key, dtype, args, available, peak, log))
        pools = _common.threadpools()     # inside the limit, after every library has loaded
        # Measured again at the end, keeping the better value: a burst of load from elsewhere
        # during one of the two measurements then does not inflate every "% of peak".
        again = measure_peaks(available, n_peak, args.quick)
        log("matmul peak at the end (" + peak_text(again, n_peak, args.threads) + ")")
        for lib, v in again.items():
            for dt, g in v.items():
                peak_by_lib[lib][dt] = max(peak_by_lib[lib].get(dt, 0.0), g)
        # The peak is the faster of NumPy's BLAS and PyTorch's (MKL on x86): a peer running on a
        # faster BLAS than NumPy's would otherwise exceed "100 % of the peak".
        peak_final = {dt: max(v[dt] for v in peak_by_lib.values() if dt in v)
                      for dt in ("float64", "float32")}
        for r in rows:
            if r.get("gflops") is not None:
                r["pct_peak"] = 100 * r["gflops"] / peak_final[r["dtype"]]
        peak.update(peak_final)
        fma_by_time["end"] = measure_fma_peak(args.threads, fastbp_isa, args.quick)
        log(f"FMA peak at the end: {fma_text(fma_by_time['end'])}")
        fma_peak = None
        if fma_by_time["start"] and fma_by_time["end"]:
            fma_peak = {dt: max(fma_by_time["start"][dt], fma_by_time["end"][dt])
                        for dt in ("float64", "float32")}
            for r in rows:
                if r.get("gflops_done") is not None:
                    r["pct_fma_peak"] = 100 * r["gflops_done"] / fma_peak[r["dtype"]]
            fma_peak["isa"] = fastbp_isa

    load_end = os.getloadavg() if hasattr(os, "getloadavg") else None
    versions = {"fastbp": fastbp.__version__}
    for name, mod in (("numpy", "numpy"), ("torch", "torch"), ("jax", "jax"), ("jaxlib", "jaxlib"),
                      ("scikit-learn", "sklearn"), ("threadpoolctl", "threadpoolctl"),
                      ("matplotlib", "matplotlib"), ("scipy", "scipy")):
        m = sys.modules.get(mod)
        if m is None:
            try:
                import importlib
                m = importlib.import_module(mod)
            except Exception:
                m = None
        versions[name] = getattr(m, "__version__", None) if m else None
    versions["fann"] = peers.fann_version()
    versions["libxsmm"] = peers.libxsmm_version()

    meta = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "argv": sys.argv[1:] if argv is None else list(argv),
        "quick": args.quick,
        "threads": args.threads,
        "thread_counts": {
            "fastbp": f"num_threads={args.threads} (fastbp default would be "
                      f"{_common.fastbp_private('available_threads', '?')})",
            "blas": (f"limited to {args.threads} by threadpoolctl (see threadpools)"
                     if "threadpoolctl" in sys.modules else "not limited: no threadpoolctl"),
            "torch": f"torch.set_num_threads({args.threads})",
            "jax": ("1 (XLA_FLAGS)" if args.threads == 1 else
                    "XLA's own pool: all usable cores (cannot be set to a count)"),
            "fann": "1 (serial library)",
            "libxsmm": (f"{args.threads} (OpenMP num_threads)"
                        + (", and 1 (libxsmm-1thread)" if args.threads > 1
                           and not args.no_single_thread else "")),
            "reference": "1 (Python loop)",
        },
        "cpu": _common.cpu_info(),
        "python": _common.python_info(),
        "fastbp": _common.fastbp_config(),
        "fastbp_kernels": fastbp_isa,
        "versions": versions,
        "peers": {k: {"available": ok, "detail": v} for k, (ok, v) in available.items()},
        "threadpools": pools,
        "matmul_peak_gflops": peak,
        "matmul_peak_by_library": peak_by_lib,
        "matmul_peak_size": n_peak,
        "fma_peak_gflops": fma_peak,
        "fma_peak_by_time": fma_by_time,
        "reference_samples": args.ref_samples,
        "timing": ({"method": "in turn", "rounds": args.interleave,
                    "budget_s_per_round": args.budget / args.interleave}
                   if args.interleave else {"method": "one after the other",
                                            "budget_s": args.budget}),
        "environment": {k: os.environ.get(k) for k in
                        ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS", "XLA_FLAGS",
                         "FASTBP_SIMD", "LIBXSMM_TARGET", "FASTBP_L2_BYTES", "OMP_WAIT_POLICY",
                         "GOMP_SPINCOUNT")
                        if os.environ.get(k) is not None},
        "openblas_env_warning": openblas_env,
        "load_average": {"start": load_start, "end": load_end},
        "wall_time_s": round(time.time() - t_start, 1),
        "tolerances": {"float64": tolerance("float64"), "float32": tolerance("float32"),
                       "classifier_float32": CLASSIFIER_F32_TOLERANCE,
                       "fann_E_in": 1e-4},
        "work_flops_per_sample": "6 * sum_l (d(l-1)+1) d(l)",
        "done_flops_per_sample": "4 * sum_l (d(l-1)+1) d(l) + 2 * sum_{l>=2} d(l-1) d(l)",
    }

    # --- report ---
    print()
    cpu = meta["cpu"]
    print(f"CPU: {cpu['model']} [{cpu.get('family_model_stepping', '?')}] "
          f"({cpu.get('usable_cpus', cpu['logical_cpus'])} usable; "
          f"{' '.join(cpu['flags'])}); "
          f"fastbp {versions['fastbp']} kernels {meta['fastbp_kernels']}")
    print(f"caches (CPU 0): {_common.cache_text(cpu.get('caches', {}))}")
    if args.interleave:
        print(f"timing: fastbp and the peers of each row in turn, {args.interleave} rounds "
              f"(the reference apart); medians of the rounds' medians")
    blas_threads = (f"BLAS {args.threads} (threadpoolctl)" if "threadpoolctl" in sys.modules
                    else "BLAS NOT limited (threadpoolctl not installed)")
    print(f"threads: fastbp {args.threads}, {blas_threads}, torch {args.threads}; "
          f"JAX {meta['thread_counts']['jax']}; FANN 1; reference 1; "
          f"LIBXSMM {meta['thread_counts']['libxsmm']}"
          + (f", LIBXSMM_TARGET={os.environ['LIBXSMM_TARGET']}"
             if os.environ.get("LIBXSMM_TARGET") else ""))
    blas = [f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')}) "
            f"{p.get('num_threads')} threads" for p in pools if p.get("user_api") == "blas"]
    print("BLAS seen by threadpoolctl (inside the limit): " + "; ".join(blas))
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v))
    missing = [f"{k} ({v})" for k, (ok, v) in available.items() if not ok]
    if missing:
        print("not run: " + "; ".join(missing))
    if openblas_env:
        print(f"WARNING: {', '.join(openblas_env)} set: NumPy's BLAS may run a slower kernel.")
    if args.quick:
        print("QUICK MODE: N/10, few repeats: indicative only.")
    if load_start:
        print(f"load average at start {load_start[0]:.2f}, at end {load_end[0]:.2f} "
              f"(above ~0.2 the machine was not quiet)")
    print()
    print_table(rows, peak, fma_peak)
    print()
    print("Summary (median times):")
    print(summary_table(rows))
    targets = check_targets(rows, args.quick)
    if targets:
        print()
        print("Targets of issue 3" + (" (QUICK MODE: not the real configurations)" if args.quick
                                      else "") + ":")
        for what, value, met in targets:
            print(f"  [{'met' if met else 'NOT met'}] {what}: {value}")

    # --- files ---
    os.makedirs(args.out_dir, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = os.path.join(args.out_dir, f"compare-{stamp}{'-quick' if args.quick else ''}")
    doc = {"meta": meta, "rows": rows, "summary_markdown": summary_table(rows),
           "targets": [{"target": t, "value": v, "met": m} for t, v, m in targets]}
    with open(base + ".json", "w") as f:
        json.dump(doc, f, indent=1, default=str)
    written = [base + ".json"]
    if not args.no_chart:
        try:
            if draw_chart(rows, meta, base + ".png"):
                written.append(base + ".png")
        except ImportError:
            log("matplotlib not installed: no chart")
    # A full run of every configuration becomes bench/latest.* (committed); quick and partial
    # runs stay in the results directory.
    complete = (not args.quick and set(args.configs) == set(CONFIGS)
                and set(args.dtypes) == {"float64", "float32"})
    if complete:
        for src in list(written):
            dst = os.path.join(HERE, "latest" + os.path.splitext(src)[1])
            shutil.copyfile(src, dst)
            written.append(dst)
    print()
    print("wrote " + ", ".join(os.path.relpath(w) for w in written))


if __name__ == "__main__":
    main()
