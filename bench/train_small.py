"""The book's small problem: a 2-10-1 tanh network on digits 1 vs 5 (intensity, symmetry), trained
by fastbp's gd, variable-lr and rprop against FANN 2.2 and a jitted JAX loop, per epoch.

The data are made as Learning From Data's digits problem, from scikit-learn's built-in digits
(sklearn.datasets.load_digits: 8 x 8 images, no download): the digits 1 (y = +1) and 5 (y = -1),
two features per image, each scaled to [-1, 1] over these samples:

  intensity  the mean pixel value
  symmetry   minus the mean absolute difference between the image and its left-right mirror

That gives 182 + 182 = 364 samples. Every implementation starts from the same weights
(fastbp.init_weights([2, 10, 1], seed)), tanh hidden and output units, and runs --epochs full-batch
epochs; the final E_in of each is fastbp.error of its final weights (E_in = mean squared error).

  fastbp  fastbp.fit(method=gd | variable-lr | rprop), the whole fit timed (its per-epoch Python
          loop, history and stopping checks included)
  FANN    FANN 2.2 (Debian's libfann2, libdoublefann through ctypes): fann_train_on_data (the epochs
          loop in C) with FANN_TRAIN_BATCH (learning rate 4 eta: FANN's batch step is eta/4 times
          fastbp's, see bench/peers.py) or FANN_TRAIN_RPROP (iRPROP-, fastbp's step sizes). FANN has
          no variable learning rate. FANN clips tanh' to 1 - 0.98^2 where |x| > 0.98 and its
          iRPROP- differs in details (it grows a step when a slope is zero, floors steps at 1e-4
          and moves a weight whose slope is 0), so its path drifts from fastbp's.
  JAX     jax.jit of a lax.fori_loop over the epochs: gd (value_and_grad, w -= eta g), variable-lr
          (the bold driver as fastbp's: a rejected step costs one error evaluation, via lax.cond)
          and rprop (iRPROP- as fastbp's).

Per-epoch time = the median over --repeats runs of (run time / epochs), setup and JIT compilation
outside the timing. Targets of issue 14: fastbp's epoch >= 5x faster than FANN's (gd and rprop);
fastbp.gradient on the 364 samples within 3 us + 3 x (364 x the per-sample time it reaches at
N = 100000 on the same kind of data: the 364 samples tiled). Writes a JSON record (default
bench/results/train_small.json) and prints a markdown table.

    python bench/train_small.py                       # 20000 epochs, 3 repeats
    python bench/train_small.py --epochs 2000 --repeats 2
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _common  # noqa: E402

import fastbp  # noqa: E402

WIDTHS = [2, 10, 1]
METHODS = ("gd", "variable-lr", "rprop")
FANN_ALGORITHMS = {"gd": 1, "rprop": 2}        # FANN_TRAIN_BATCH, FANN_TRAIN_RPROP
SPEEDUP_TARGET = 5.0                           # fastbp's epoch vs FANN's
GRAD_OVERHEAD_S = 3e-6                         # fastbp.gradient(364) <= 3 us + 3 x 364 x per-sample
GRAD_FACTOR = 3.0
N_LARGE = 100_000


def digits_1_vs_5():
    """(X (N, 2), y (N, 1)), float64: intensity and symmetry scaled to [-1, 1]; y = +1 for a 1,
    -1 for a 5."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    keep = (digits.target == 1) | (digits.target == 5)
    images = digits.images[keep].astype(np.float64)            # (N, 8, 8), values 0..16
    intensity = images.mean(axis=(1, 2))
    symmetry = -np.abs(images - images[:, :, ::-1]).mean(axis=(1, 2))
    X = np.column_stack([intensity, symmetry])
    lo, hi = X.min(axis=0), X.max(axis=0)
    X = 2 * (X - lo) / (hi - lo) - 1
    y = np.where(digits.target[keep] == 1, 1.0, -1.0)[:, None]
    return np.ascontiguousarray(X), y


def per_epoch(times, epochs):
    return statistics.median(times) / epochs


# --------------------------------------------------------------------------------------------------
# fastbp

def run_fastbp(method, w0, X, y, args):
    options = {"learning_rate": args.learning_rate} if method in ("gd", "variable-lr") else {}
    fastbp.fit([w.copy() for w in w0], X[:50], y[:50], method=method, epochs=5,
               num_threads=args.threads, **options)                  # warm-up
    times, weights = [], None
    for _ in range(args.repeats):
        w = [a.copy() for a in w0]
        t0 = time.perf_counter()
        history = fastbp.fit(w, X, y, method=method, epochs=args.epochs,
                             num_threads=args.threads, **options)
        # per epoch run: variable-lr stops early once a step no longer changes the weights
        times.append((time.perf_counter() - t0) * args.epochs / max(len(history), 1))
        weights = w
    detail = f"fastbp {fastbp.__version__}, num_threads={args.threads}"
    if len(history) < args.epochs:
        detail += f"; stopped after {len(history)} epochs ({history.stop_reason})"
    return times, weights, detail


# --------------------------------------------------------------------------------------------------
# FANN

def run_fann(method, w0, X, y, args):
    import peers
    if method not in FANN_ALGORITHMS:
        return None
    times, weights = [], None
    for _ in range(args.repeats):
        net = peers.fann_network(w0, X, y, output="tanh", algorithm=FANN_ALGORITHMS[method])
        try:
            lib, ann = net.lib, net.ann
            if method == "gd":
                lib.fann_set_learning_rate(ann, 4.0 * args.learning_rate)
            else:                      # fastbp's rprop defaults (FANN's delta_min default is 0)
                for name, value in (("increase_factor", 1.2), ("decrease_factor", 0.5),
                                    ("delta_min", 1e-6), ("delta_max", 50.0),
                                    ("delta_zero", 0.1)):
                    f = getattr(lib, f"fann_set_rprop_{name}")
                    f.argtypes = [type(ann), ctypes.c_float]
                    f(ann, value)
            train = lib.fann_train_on_data
            train.argtypes = [type(ann), type(net.data), ctypes.c_uint, ctypes.c_uint,
                              ctypes.c_float]
            t0 = time.perf_counter()
            train(ann, net.data, args.epochs, 0, 0.0)       # no reports; desired error 0
            times.append(time.perf_counter() - t0)
            flat = np.empty(net.flat.shape)
            flat[net.perm] = net.fann_w
            weights = [flat[net.offsets[l]:net.offsets[l + 1]].reshape(w0[l].shape)
                       for l in range(net.L)]
        finally:
            net.close()
    return times, weights, f"FANN {peers.fann_version()} (libdoublefann), 1 thread"


# --------------------------------------------------------------------------------------------------
# JAX

def jax_trainers(lr, epochs):
    """{method: jitted function(params, X, y) -> params after `epochs` epochs}."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    def loss(params, X, y):
        a = X
        for W, b in params:
            a = jnp.tanh(a @ W + b)
        return jnp.mean(jnp.sum((a - y) ** 2, axis=1))

    vg = jax.value_and_grad(loss)
    tmap = jax.tree_util.tree_map

    def gd(params, X, y):
        def body(_, p):
            return tmap(lambda w, g: w - lr * g, p, jax.grad(loss)(p, X, y))
        return lax.fori_loop(0, epochs, body, params)

    def variable_lr(params, X, y):
        E0, g0 = vg(params, X, y)

        def body(_, state):
            p, g, E, eta = state
            trial = tmap(lambda w, d: w - eta * d, p, g)
            E_try = loss(trial, X, y)

            def accept(_):
                _, g_new = vg(trial, X, y)
                return trial, g_new, E_try, eta * 1.1

            def reject(_):
                return p, g, E, eta * 0.5
            return lax.cond(E_try < E, accept, reject, None)
        eta0 = jnp.asarray(lr, dtype=E0.dtype)
        return lax.fori_loop(0, epochs, body, (params, g0, E0, eta0))[0]

    def rprop(params, X, y):
        leaves, tree = jax.tree_util.tree_flatten(params)

        def body(_, state):
            w, steps, g_prev = state
            g = jax.tree_util.tree_leaves(jax.grad(loss)(jax.tree_util.tree_unflatten(tree, w),
                                                         X, y))
            out_w, out_s, out_g = [], [], []
            for wi, si, gp, gi in zip(w, steps, g_prev, g):
                same = gi * gp
                si = jnp.where(same > 0, jnp.minimum(si * 1.2, 50.0),
                               jnp.where(same < 0, jnp.maximum(si * 0.5, 1e-6), si))
                gi = jnp.where(same < 0, 0.0, gi)
                out_w.append(wi - jnp.sign(gi) * si)
                out_s.append(si)
                out_g.append(gi)
            return out_w, out_s, out_g
        state = (leaves, [jnp.full_like(a, 0.1) for a in leaves],
                 [jnp.zeros_like(a) for a in leaves])
        return jax.tree_util.tree_unflatten(tree, lax.fori_loop(0, epochs, body, state)[0])

    return {"gd": jax.jit(gd), "variable-lr": jax.jit(variable_lr), "rprop": jax.jit(rprop)}


def run_jax(method, w0, X, y, args, trainers):
    import jax
    import jax.numpy as jnp
    f = trainers[method]
    params = [(jnp.asarray(w[1:]), jnp.asarray(w[0])) for w in w0]
    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    jax.block_until_ready(f(params, Xj, yj))              # compile (and a first run), untimed
    times, out = [], None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(f(params, Xj, yj))
        times.append(time.perf_counter() - t0)
    weights = [np.vstack([np.asarray(b)[None, :], np.asarray(W)]) for W, b in out]
    threads = ("1 (XLA_FLAGS)" if args.threads == 1 else "XLA's own pool")
    return times, weights, f"JAX {jax.__version__} jit(fori_loop), {threads}"


# --------------------------------------------------------------------------------------------------
# fastbp.gradient: 364 samples against N = 100000

def gradient_target(w0, X, y, threads, budget):
    def timed(Xg, yg):
        fastbp.gradient(w0, Xg, yg, num_threads=threads)
        med, best, reps, inner = _common.measure(
            lambda: fastbp.gradient(w0, Xg, yg, num_threads=threads), budget=budget)
        return med
    n = X.shape[0]
    idx = np.resize(np.arange(n), N_LARGE)                 # the 364 samples tiled to 100000
    t_small = timed(X, y)
    t_large = timed(np.ascontiguousarray(X[idx]), np.ascontiguousarray(y[idx]))
    per_sample = t_large / N_LARGE
    bound = GRAD_OVERHEAD_S + GRAD_FACTOR * n * per_sample
    return {"threads": threads, "n": n, "time_s": t_small, "n_large": N_LARGE,
            "time_large_s": t_large, "per_sample_large_s": per_sample, "bound_s": bound,
            "met": t_small <= bound}


# --------------------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=20000, help="epochs per run (default 20000)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="timed runs per implementation and method; the median counts (default 3)")
    ap.add_argument("--threads", type=int, default=2,
                    help="fastbp's num_threads (default 2); JAX: 1 if 1, else XLA's own pool")
    ap.add_argument("--learning-rate", type=float, default=0.1,
                    help="eta of gd and the starting eta of variable-lr (default 0.1)")
    ap.add_argument("--seed", type=int, default=1, help="fastbp.init_weights seed (default 1)")
    ap.add_argument("--methods", default=",".join(METHODS),
                    help="comma-separated subset of " + ",".join(METHODS))
    ap.add_argument("--peers", default="fann,jax", help="comma-separated subset of fann,jax")
    ap.add_argument("--budget", type=float, default=1.0,
                    help="seconds of timing per fastbp.gradient measurement (default 1)")
    ap.add_argument("--json", default=os.path.join(HERE, "results", "train_small.json"))
    args = ap.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    args.peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    for m in args.methods:
        if m not in METHODS:
            ap.error(f"--methods: unknown method {m!r}; choose from {', '.join(METHODS)}")
    for p in args.peers:
        if p not in ("fann", "jax"):
            ap.error(f"--peers: unknown peer {p!r}; choose from fann, jax")
    if args.epochs < 1 or args.repeats < 1 or args.threads < 1:
        ap.error("--epochs, --repeats and --threads must be at least 1")
    if args.threads == 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                   + " --xla_cpu_multi_thread_eigen=false").strip()
    _common.warn_openblas_env()
    load_start = os.getloadavg()

    X, y = digits_1_vs_5()
    n = X.shape[0]
    w0 = fastbp.init_weights(WIDTHS, seed=args.seed)
    E0 = fastbp.error(w0, X, y)
    print(f"digits 1 vs 5: N = {n} ({int((y > 0).sum())} ones, {int((y < 0).sum())} fives), "
          f"widths {WIDTHS}, E_in at the start {E0:.4f}", file=sys.stderr)

    trainers, jax_note = None, None
    if "jax" in args.peers:
        try:
            import jax
            jax.config.update("jax_enable_x64", True)
            trainers = jax_trainers(args.learning_rate, args.epochs)
        except ImportError as exc:
            jax_note = f"JAX not installed ({exc})"
    fann_note = None
    if "fann" in args.peers:
        import peers
        if peers.fann_version() is None:
            fann_note = "libfann not found (apt-get install libfann2)"

    rows = []
    with _common.blas_limit(args.threads):
        for method in args.methods:
            runners = [("fastbp", run_fastbp)]
            if "fann" in args.peers and fann_note is None:
                runners.append(("FANN", run_fann))
            if trainers is not None:
                runners.append(("JAX", lambda *a: run_jax(*a, trainers)))
            for impl, runner in runners:
                result = runner(method, w0, X, y, args)
                if result is None:
                    rows.append({"method": method, "impl": impl, "status": "n/a",
                                 "note": "FANN has no variable learning rate"})
                    print(f"  {method:12} {impl:7} not applicable", file=sys.stderr)
                    continue
                times, weights, detail = result
                E = fastbp.error(weights, X, y)
                rows.append({"method": method, "impl": impl, "status": "ok",
                             "per_epoch_s": per_epoch(times, args.epochs),
                             "times_s": times, "E_in": E, "detail": detail})
                print(f"  {method:12} {impl:7} {_common.fmt_time(per_epoch(times, args.epochs))}"
                      f" per epoch, E_in {E:.5f}", file=sys.stderr)
        grad = [gradient_target(w0, X, y, th, args.budget)
                for th in sorted({1, args.threads})]
        pools = _common.threadpools()

    # ratios
    for method in args.methods:
        mine = next((r for r in rows if r["method"] == method and r["impl"] == "fastbp"), None)
        for r in rows:
            if r["method"] == method and r is not mine and r.get("per_epoch_s") and mine:
                r["fastbp_speedup"] = r["per_epoch_s"] / mine["per_epoch_s"]

    cpu = _common.cpu_info()
    load_end = os.getloadavg()
    versions = {"fastbp": fastbp.__version__, "numpy": np.__version__}
    for name in ("jax", "jaxlib", "sklearn", "threadpoolctl"):
        m = sys.modules.get(name)
        versions[name] = getattr(m, "__version__", None) if m else None
    if "fann" in args.peers:
        import peers
        versions["fann"] = peers.fann_version()

    print()
    print(f"Digits 1 vs 5 (intensity, symmetry), N = {n}, widths {WIDTHS}, tanh output, "
          f"float64, {args.epochs} epochs, median of {args.repeats} runs, learning rate "
          f"{args.learning_rate}")
    print(f"CPU: {cpu['model']} [{cpu.get('family_model_stepping', '?')}] "
          f"({cpu.get('usable_cpus', cpu['logical_cpus'])} usable); "
          f"caches (CPU 0): {_common.cache_text(cpu.get('caches', {}))}")
    print(f"threads: fastbp {args.threads}, FANN 1, JAX "
          f"{'1' if args.threads == 1 else 'its own pool'}; BLAS limited to {args.threads}")
    print(f"load average {load_start[0]:.2f} at the start, {load_end[0]:.2f} at the end "
          "(above ~0.2 the machine was not quiet: the times are noisy)")
    if fann_note:
        print(f"FANN not run: {fann_note}")
    if jax_note:
        print(f"JAX not run: {jax_note}")
    print()
    print("| method | implementation | per epoch | E_in at the end | its time / fastbp's |")
    print("|---|---|---|---|---|")
    for r in rows:
        if r["status"] != "ok":
            print(f"| {r['method']} | {r['impl']} | - | - | {r['note']} |")
            continue
        ratio = f"{r['fastbp_speedup']:.2f}" if r.get("fastbp_speedup") else ""
        print(f"| {r['method']} | {r['impl']} | {_common.fmt_time(r['per_epoch_s'])} | "
              f"{r['E_in']:.5f} | {ratio} |")
    print()
    print("Targets of issue 14:")
    targets = []
    for method in args.methods:
        fann = next((r for r in rows if r["method"] == method and r["impl"] == "FANN"
                     and r.get("fastbp_speedup")), None)
        if fann:
            met = fann["fastbp_speedup"] >= SPEEDUP_TARGET
            targets.append({"target": f"{method}: epoch >= {SPEEDUP_TARGET:g}x faster than FANN's",
                            "value": fann["fastbp_speedup"], "met": met})
            print(f"  [{'met' if met else 'NOT met'}] {method}: fastbp's epoch "
                  f"{fann['fastbp_speedup']:.2f}x faster than FANN's (target "
                  f">= {SPEEDUP_TARGET:g}x)")
    for g in grad:
        targets.append({"target": f"fastbp.gradient({n} samples, num_threads={g['threads']}) "
                                  f"<= 3 us + 3 x {n} x per-sample time at N = {N_LARGE}",
                        "value": g["time_s"], "bound": g["bound_s"], "met": g["met"]})
        print(f"  [{'met' if g['met'] else 'NOT met'}] fastbp.gradient on {n} samples, "
              f"num_threads={g['threads']}: {_common.fmt_time(g['time_s'])} against "
              f"3 µs + 3 x {n} x {g['per_sample_large_s'] * 1e9:.1f} ns = "
              f"{_common.fmt_time(g['bound_s'])} (N = {N_LARGE}: "
              f"{_common.fmt_time(g['time_large_s'])})")

    record = {"problem": "digits 1 vs 5, intensity and symmetry in [-1, 1]", "n": n,
              "widths": WIDTHS, "output": "tanh", "dtype": "float64", "epochs": args.epochs,
              "repeats": args.repeats, "learning_rate": args.learning_rate, "seed": args.seed,
              "threads": {"fastbp": args.threads, "fann": 1,
                          "jax": 1 if args.threads == 1 else "XLA's own pool",
                          "blas": args.threads},
              "E_in_start": E0, "cpu": cpu, "python": _common.python_info(),
              "fastbp_config": _common.fastbp_config(), "threadpools": pools,
              "versions": versions, "load_average": {"start": load_start, "end": load_end},
              "rows": rows, "gradient": grad, "targets": targets}
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(record, f, indent=1, default=str)
    print(f"\nwrote {os.path.relpath(args.json)}")


if __name__ == "__main__":
    main()
