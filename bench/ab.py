"""Two builds of fastbp timed against each other in alternation: the before/after figures of a
kernel change on a shared, noisy machine.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/ab.py \\
        --old /path/to/old-venv/bin/python --new /path/to/new-venv/bin/python \\
        --cases D:float64:1,D:float32:2,E:float64:1 --rounds 7

Each build runs in a long-lived worker process of its own (its interpreter imports its fastbp);
the driver hands both workers the same case in turn, round after round, swapping which goes first
every round, so that a slow minute of the host hits both alike. Per case and round a worker times
`fastbp.gradient` a few times and reports its minimum; the table gives the median over rounds of
those minima and new/old. Environment variables (FASTBP_SIMD, FASTBP_L2_BYTES, ...) reach both
workers. A case is config:dtype:threads, config one of bench/compare.py's CONFIGS (its widths and N;
Dsm with ReLU units and a softmax output on one-hot targets).

What this tool does not do: say that a difference of a few percent is real. On the machines this
project runs on, the same call moves by 5-10 % between minutes; repeat a run, swap the builds
(--old and --new), and trust what survives both.
"""
from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def worker():
    """Read `config dtype threads calls` lines; answer each with the minimum time in seconds."""
    import time

    sys.path.insert(0, HERE)
    from _common import make_problem
    from compare import CONFIGS, MODELS

    import fastbp
    problems = {}
    for line in sys.stdin:
        config, dtype, threads, calls = line.split()
        key = (config, dtype)
        activation, output = MODELS.get(config, ("tanh", "tanh"))
        if key not in problems:
            widths, n, _ = CONFIGS[config]
            weights, X, y = make_problem(widths, n, dtype)
            if output == "softmax":
                labels = np.random.default_rng(1).integers(0, widths[-1], n)
                y = np.eye(widths[-1], dtype=dtype)[labels]
            problems[key] = (weights, X, y)
        weights, X, y = problems[key]

        call = functools.partial(fastbp.gradient, weights, X, y, num_threads=int(threads),
                                 activation=activation, output=output)
        call()
        times = []
        for _ in range(int(calls)):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
        print(min(times), flush=True)


def main(argv=None):
    from _common import fmt_time  # bench/ is sys.path[0] when run as a script

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", required=True, help="the Python of the build before the change")
    ap.add_argument("--new", default=sys.executable,
                    help="the Python of the build after it (default: this one)")
    ap.add_argument("--cases", default="D:float64:1,D:float32:1",
                    help="comma-separated config:dtype:threads")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=3, help="timed calls per case and round")
    args = ap.parse_args(argv)
    cases = [tuple(c.split(":")) for c in args.cases.split(",")]
    for c in cases:
        if len(c) != 3:
            ap.error(f"a case is config:dtype:threads, got {':'.join(c)!r}")
    builds = {"old": args.old, "new": args.new}
    workers = {name: subprocess.Popen([python, os.path.abspath(__file__), "--worker"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                      cwd=HERE)
               for name, python in builds.items()}
    minima = {(c, name): [] for c in cases for name in builds}
    try:
        for r in range(args.rounds):
            for c in cases:
                for name in (("old", "new") if r % 2 == 0 else ("new", "old")):
                    w = workers[name]
                    w.stdin.write(" ".join(c) + f" {args.calls}\n")
                    w.stdin.flush()
                    answer = w.stdout.readline()
                    if not answer:
                        raise RuntimeError(f"the {name} worker ({builds[name]}) stopped")
                    minima[(c, name)].append(float(answer))
    finally:
        for w in workers.values():
            w.stdin.close()
            w.wait()
    print(f"{'case':18s} {'old':>10s} {'new':>10s} {'new/old':>8s}   "
          f"(median over {args.rounds} rounds of the min of {args.calls} calls)")
    ratios = {}
    for c in cases:
        old = float(np.median(minima[(c, "old")]))
        new = float(np.median(minima[(c, "new")]))
        ratios[":".join(c)] = new / old
        print(f"{':'.join(c):18s} {fmt_time(old):>10s} {fmt_time(new):>10s} {new / old:8.3f}")
    return ratios


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        worker()
    else:
        main()
