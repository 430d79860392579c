"""Training methods side by side: Adam, L-BFGS and RPROP in fastbp against the implementations a
user would otherwise pick, on d = [8, 32, 32, 1] (tanh hidden units, linear output), N = 100000,
float64, in one run:

  adam    one epoch, batch 32: fastbp.fit(method="adam") against the usual PyTorch loop
          (torch.optim.Adam, zero_grad / backward / step) and scikit-learn's
          MLPRegressor(solver="adam", batch_size=32).partial_fit. Target: >= 20x PyTorch's epoch.
  lbfgs   100 iterations: fastbp.fit(method="lbfgs") against MLPRegressor(solver="lbfgs",
          max_iter=100) and torch.optim.LBFGS(max_iter=100). Target: >= 5x the faster of them.
  rprop   100 epochs: fastbp.fit(method="rprop") against FANN 2.2's fann_train_epoch with
          FANN_TRAIN_RPROP (Debian's libfann2, through ctypes) and torch.optim.Rprop.
          Target: >= 5x FANN's time per epoch.

Every implementation starts from the same weights; E_in (mean squared error, summed over outputs)
is recorded against wall time and drawn in a PNG. Peers that are not installed are skipped with a
note. Threads: fastbp and PyTorch 2, scikit-learn's BLAS its default (the machine's cores), FANN 1
(it is serial). Run with nothing else busy on the machine.

    python bench/train_methods.py [--quick] [--threads 2] [--png bench/results/train_methods.png]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import (  # noqa: E402
    cpu_info,
    fmt_time,
    make_problem,
    torch_model,
    warn_openblas_env,
    write_record,
)

import fastbp  # noqa: E402

WIDTHS = [8, 32, 32, 1]
BATCH = 32
TARGETS = {"adam": ("PyTorch", 20.0), "lbfgs": ("fastest peer", 5.0), "rprop": ("FANN", 5.0)}


# --------------------------------------------------------------------------------------------------
# fastbp

def fastbp_curve(method, w0, X, y, epochs, threads, **options):
    """(seconds, [(time, E_in)], final E_in): the whole fit timed; E_in per epoch from its
    history."""
    w = [a.copy() for a in w0]
    t0 = time.perf_counter()
    h = fastbp.fit(w, X, y, output="linear", method=method, epochs=epochs, num_threads=threads,
                   **options)
    total = time.perf_counter() - t0
    curve = [(0.0, h.start["E_in"])] + list(zip(h.time, h.E_in))
    return total, curve, h.E_in[-1], len(h)


# --------------------------------------------------------------------------------------------------
# PyTorch (the model of _common.torch_model: tanh hidden units and, as fastbp's here, a linear
# output)

def torch_adam_epoch(w0, X, y, threads, lr):
    import torch
    model = torch_model(w0, "linear", threads=threads)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = X.shape[0]
    torch.manual_seed(0)
    t0 = time.perf_counter()
    order = torch.randperm(n)
    for start in range(0, n, BATCH):
        idx = order[start:start + BATCH]
        opt.zero_grad()
        loss = ((model(Xt[idx]) - yt[idx]) ** 2).sum(dim=1).mean()
        loss.backward()
        opt.step()
    total = time.perf_counter() - t0
    with torch.no_grad():
        E = float(((model(Xt) - yt) ** 2).sum(dim=1).mean())
    return total, [(0.0, None), (total, E)], E, torch.__version__


def torch_full_batch(w0, X, y, threads, make_opt, steps, closure_steps):
    """Full-batch training with a torch optimiser: (seconds, curve, E_in, version)."""
    import torch
    model = torch_model(w0, "linear", threads=threads)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    opt = make_opt(torch, model.parameters())
    curve = []
    t0 = time.perf_counter()

    def closure():
        opt.zero_grad()
        loss = ((model(Xt) - yt) ** 2).sum(dim=1).mean()
        loss.backward()
        curve.append((time.perf_counter() - t0, loss.item()))
        return loss
    for _ in range(steps):
        opt.step(closure)
    total = time.perf_counter() - t0
    with torch.no_grad():
        E = float(((model(Xt) - yt) ** 2).sum(dim=1).mean())
    return total, curve, E, torch.__version__


# --------------------------------------------------------------------------------------------------
# scikit-learn (its loss is half the mean squared error: E_in = 2 loss for one output)

def sklearn_model(w0, **params):
    from sklearn.neural_network import MLPRegressor
    model = MLPRegressor(hidden_layer_sizes=tuple(WIDTHS[1:-1]), activation="tanh", alpha=0.0,
                         random_state=0, **params)
    return model


def sklearn_set_weights(model, w0):
    """Give a model built on a sample or two fastbp's starting weights (in place, so that an
    optimiser made afterwards updates these arrays)."""
    for c, b, w in zip(model.coefs_, model.intercepts_, w0):
        c[...] = w[1:]
        b[...] = w[0]


def sklearn_adam_epoch(w0, X, y, lr):
    import sklearn
    model = sklearn_model(w0, solver="adam", batch_size=BATCH, learning_rate_init=lr,
                          shuffle=True)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")             # "batch_size ... clipped", for one sample
        model.partial_fit(X[:1], y[:1, 0])          # builds the layers ...
    sklearn_set_weights(model, w0)                  # ... which get fastbp's start
    del model._optimizer                            # and a fresh Adam (no step taken yet)
    t0 = time.perf_counter()
    model.partial_fit(X, y[:, 0])
    total = time.perf_counter() - t0
    E = float(np.mean((model.predict(X) - y[:, 0]) ** 2))
    return total, [(0.0, None), (total, E)], E, sklearn.__version__


def sklearn_lbfgs(w0, X, y, iters):
    import warnings

    import sklearn
    model = sklearn_model(w0, solver="lbfgs", max_iter=1, warm_start=True, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X[:2], y[:2, 0])                  # builds the layers; warm_start keeps them
    sklearn_set_weights(model, w0)
    model.set_params(max_iter=iters)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y[:, 0])
    total = time.perf_counter() - t0
    E = float(np.mean((model.predict(X) - y[:, 0]) ** 2))
    # scikit-learn keeps no loss curve for lbfgs: the end point only
    return total, [(total, E)], E, sklearn.__version__


# --------------------------------------------------------------------------------------------------
# FANN

def fann_rprop(w0, X, y, epochs):
    from peers import FANN_TRAIN_RPROP, fann_network, fann_version
    net = fann_network(w0, X, y, output="linear", algorithm=FANN_TRAIN_RPROP)
    try:
        curve = []
        t0 = time.perf_counter()
        for _ in range(epochs):
            # the MSE over the epoch (before its update), averaged over outputs too
            mse = net.lib.fann_train_epoch(net.ann, net.data)
            curve.append((time.perf_counter() - t0, WIDTHS[-1] * float(mse)))
        total = time.perf_counter() - t0
        flat = np.empty(net.flat.shape)
        flat[net.perm] = net.fann_w
        w = [flat[net.offsets[l]:net.offsets[l + 1]].reshape(w0[l].shape) for l in range(net.L)]
        E = fastbp.error(w, X, y, output="linear")
    finally:
        net.close()
    return total, curve, E, fann_version()


# --------------------------------------------------------------------------------------------------

def run_peer(rows, section, name, fn):
    try:
        total, curve, E, version = fn()
    except ImportError as exc:
        print(f"  {section}: {name} skipped: {exc}")
        return
    rows.append({"section": section, "name": name, "seconds": total, "E_in": E,
                 "curve": [(t, e) for t, e in curve if e is not None], "version": version})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="N = 20000, 20 L-BFGS/RPROP iterations")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=os.path.join(HERE, "results", "train_methods.json"))
    ap.add_argument("--png", default=os.path.join(HERE, "results", "train_methods.png"))
    args = ap.parse_args(argv)
    warn_openblas_env()
    n = 20_000 if args.quick else 100_000
    iters = 20 if args.quick else 100
    # a smooth target of the inputs, so that every method has something to learn
    w0, X, y = make_problem(WIDTHS, n, "float64", smooth=True)
    th = args.threads
    rows = []
    lr_adam = 0.001

    # warm up once on a small slice (imports: SciPy's optimize alone takes about a second, first
    # touches of memory), so that no timed run pays for them
    for method in ("adam", "lbfgs", "rprop"):
        fastbp.fit([a.copy() for a in w0], X[:2000], y[:2000], output="linear", method=method,
                   epochs=2)
    for module in ("torch", "sklearn.neural_network"):
        try:
            __import__(module)
        except ImportError:
            pass

    run_peer(rows, "adam", "fastbp", lambda: fastbp_curve("adam", w0, X, y, 1, th,
                                                          learning_rate=lr_adam,
                                                          batch_size=BATCH)[:3]
                       + (fastbp.__version__,))
    run_peer(rows, "adam", "PyTorch", lambda: torch_adam_epoch(w0, X, y, th, lr_adam))
    run_peer(rows, "adam", "scikit-learn", lambda: sklearn_adam_epoch(w0, X, y, lr_adam))

    run_peer(rows, "lbfgs", "fastbp", lambda: fastbp_curve("lbfgs", w0, X, y, iters, th,
                                                           gtol=0.0)[:3] + (fastbp.__version__,))
    run_peer(rows, "lbfgs", "PyTorch", lambda: torch_full_batch(
        w0, X, y, th, lambda torch, p: torch.optim.LBFGS(p, max_iter=iters, history_size=10,
                                                         line_search_fn=None,
                                                         tolerance_grad=0.0,
                                                         tolerance_change=0.0), 1, iters))
    run_peer(rows, "lbfgs", "scikit-learn", lambda: sklearn_lbfgs(w0, X, y, iters))

    run_peer(rows, "rprop", "fastbp", lambda: fastbp_curve("rprop", w0, X, y, iters, th)[:3]
             + (fastbp.__version__,))
    run_peer(rows, "rprop", "FANN", lambda: fann_rprop(w0, X, y, iters))
    run_peer(rows, "rprop", "PyTorch", lambda: torch_full_batch(
        w0, X, y, th, lambda torch, p: torch.optim.Rprop(p, lr=0.1, etas=(0.5, 1.2),
                                                         step_sizes=(1e-6, 50)), iters, iters))

    units = {"adam": ("epoch", 1), "lbfgs": ("iteration", iters), "rprop": ("epoch", iters)}
    print(f"\nTraining methods on {WIDTHS}, N = {n}, float64, {th} threads "
          f"(FANN: 1); CPU: {cpu_info().get('model', '?')}")
    print(f"{'method':7s} {'implementation':14s} {'total':>10s} {'per step':>10s} {'E_in end':>10s}"
          f" {'fastbp is':>12s}")
    summary = {}
    for section in ("adam", "lbfgs", "rprop"):
        sec = [r for r in rows if r["section"] == section]
        mine = next((r for r in sec if r["name"] == "fastbp"), None)
        unit, count = units[section]
        for r in sec:
            ratio = "" if r is mine or mine is None else f"{r['seconds'] / mine['seconds']:.1f}x"
            print(f"{section:7s} {r['name']:14s} {fmt_time(r['seconds']):>10s} "
                  f"{fmt_time(r['seconds'] / count):>10s} {r['E_in']:10.4g} {ratio:>12s}")
        peers = [r for r in sec if r is not mine]
        want_name, want = TARGETS[section]
        if want_name == "fastest peer":
            ref = min(peers, key=lambda r: r["seconds"]) if peers else None
        else:
            ref = next((r for r in peers if r["name"] == want_name), None)
        if mine is not None and ref is not None:
            got = ref["seconds"] / mine["seconds"]
            verdict = "met" if got >= want else "NOT met"
            summary[section] = {"against": ref["name"], "ratio": got, "target": want,
                                "met": got >= want}
            print(f"  target: fastbp >= {want:g}x {want_name} ({ref['name']}) per {unit}: "
                  f"{got:.1f}x, {verdict}")
        else:
            print(f"  target ({want:g}x {want_name}): not measured, peer missing")
    write_record(args.json, {"widths": WIDTHS, "N": n, "iterations": iters, "dtype": "float64",
                             "threads": th, "rows": rows, "targets": summary})
    plot(rows, args.png, n, th)


def plot(rows, path, n, threads):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no PNG (pip install matplotlib)")
        return
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, section in zip(axes, ("adam", "lbfgs", "rprop")):
        for r in rows:
            if r["section"] != section or not r["curve"]:
                continue
            t, e = zip(*r["curve"])
            ax.plot(t, e, marker="o" if len(t) < 3 else None, label=f"{r['name']} "
                    f"({fmt_time(r['seconds'])})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("wall time (s)")
        ax.set_ylabel("E_in")
        ax.set_title(section)
        ax.legend(fontsize=8)
    fig.suptitle(f"{WIDTHS}, N = {n}, float64, {threads} threads")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=90)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
