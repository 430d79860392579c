"""fastbp.gradient against fastbp.reference.gradient and batched NumPy, on one network.

    python bench/bench_gradient.py                 # d = [8, 32, 32, 1], N = 100000, float64
    python bench/bench_gradient.py --quick         # N = 10000, a few seconds

Every implementation is first checked to agree with fastbp, then timed (median of several runs,
after a warm-up). The reference goes sample by sample in Python and would take seconds: it is timed
on the first --ref-samples samples and its time scaled linearly to N (it does the same work for
every sample), which the output says. The full side-by-side suite is bench/compare.py.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import peers  # noqa: E402

import fastbp  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--widths", default="8,32,32,1", help="layer widths d(0),...,d(L)")
    ap.add_argument("-n", "--samples", type=int, default=100_000)
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--threads", type=int, default=2, help="fastbp's and BLAS's threads")
    ap.add_argument("--ref-samples", type=int, default=2000,
                    help="samples the reference is timed on (scaled to N)")
    ap.add_argument("--quick", action="store_true", help="N = 10000, fewer repeats")
    args = ap.parse_args(argv)
    _common.warn_openblas_env()

    widths = [int(w) for w in args.widths.split(",")]
    n = args.samples // 10 if args.quick else args.samples
    n_ref = min(n, args.ref_samples // (4 if args.quick else 1))
    rtol = 1e-6 if args.dtype == "float64" else 1e-3
    timing = dict(max_repeats=5, budget=1.0) if args.quick else dict(max_repeats=15, budget=4.0)
    weights, X, y = _common.make_problem(widths, n, args.dtype)
    flops = _common.work_flops(widths) * n

    cpu = _common.cpu_info()
    print(f"d = {widths}, N = {n}, {args.dtype}; "
          f"CPU: {cpu['model']} ({cpu.get('usable_cpus')} usable)")
    print(f"threads: fastbp num_threads={args.threads}, BLAS limited to {args.threads} "
          f"(threadpoolctl); fastbp kernels: {_common.fastbp_private('ISA', '?')}")

    with _common.blas_limit(args.threads):
        want = fastbp.gradient(weights, X, y, num_threads=args.threads)
        want_ref = fastbp.gradient(weights, X[:n_ref], y[:n_ref], num_threads=args.threads)
        cases = [
            ("fastbp", lambda: fastbp.gradient(weights, X, y, num_threads=args.threads), want, 1),
            ("numpy batched", peers.prepare_numpy(weights, X, y, args.threads).run, want, 1),
            (f"reference (timed on {n_ref} samples, x{n / n_ref:g})",
             peers.prepare_reference(weights, X[:n_ref], y[:n_ref], args.threads).run, want_ref,
             n / n_ref),
        ]
        results = {}
        for name, run, expected, scale in cases:
            err_E, err_g = _common.rel_errors(run(), expected)
            if err_E > rtol or err_g > rtol:
                print(f"{name}: DISAGREES with fastbp (E_in {err_E:.1e}, gradient {err_g:.1e}); "
                      "not timed")
                continue
            med, best, reps, _ = _common.measure(run, **timing)
            results[name] = (med * scale, best * scale, reps, err_g)

    if "fastbp" not in results:
        sys.exit("fastbp did not agree with itself?")
    t_fb = results["fastbp"][0]
    print(f"\n{'implementation':44} {'median':>10} {'min':>10} {'GFLOP/s':>8} "
          f"{'fastbp speed-up':>16} {'max rel. diff':>14}")
    for name, (med, best, _reps, err_g) in results.items():
        print(f"{name:44} {_common.fmt_time(med):>10} {_common.fmt_time(best):>10} "
              f"{flops / med / 1e9:8.2f} {med / t_fb:15.1f}x {err_g:14.1e}")
    print("\nspeed-up = the implementation's median time / fastbp's; "
          "max rel. diff = largest gradient difference to fastbp over max |gradient|, per layer.")
    if any(k.startswith("reference") for k in results):
        print(f"The reference's times are measured on {n_ref} samples and multiplied by "
              f"{n / n_ref:g}.")


if __name__ == "__main__":
    main()
