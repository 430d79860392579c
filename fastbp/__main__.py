"""`python -m fastbp`: train a small tanh network on built-in data and say how fast it was.

The data: N points in the square [-1, 1]^2, labelled +1 or -1 by which side of a wavy boundary they
fall (a problem a linear model cannot solve). The network [2, 16, 16, 1] is trained by gradient
descent; E_in is printed after every epoch, then the time taken and the speed of one full-batch
gradient against fastbp.reference, timed on a slice of the same data.

With `--plot out.png` it also writes a picture (matplotlib needed): the learning curve and the
decision regions the network learned, with the true boundary and a sample of the data.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import fastbp
from fastbp import reference


def make_data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 2))
    y = np.where(X[:, 1] > 0.5 * np.sin(3 * X[:, 0]), 1.0, -1.0)
    return X, y


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fastbp", description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--plot", metavar="FILE", default=None,
                        help="also write the learning curve and the decision regions to FILE "
                             "(a .png, .pdf, .svg, ...; needs matplotlib)")
    args = parser.parse_args(argv)
    pyplot = _import_pyplot() if args.plot is not None else None   # before any work is done

    fastbp.show_config()
    X, y = make_data(args.samples)
    widths = [2, 16, 16, 1]
    net = fastbp.Network(widths, seed=1)
    print(f"\nTraining {widths} on {len(X)} samples (wavy boundary, labels +-1), "
          f"{args.epochs} epochs of variable learning-rate gradient descent:")
    t0 = time.perf_counter()
    history = _train(net, X, y, args.epochs, args.threads)
    train_time = time.perf_counter() - t0
    miss = float(np.mean(np.sign(net.forward(X)[:, 0]) != y))
    print(f"Trained in {train_time:.2f} s: E_in {history[0]:.4f} -> {history[-1]:.4f}, "
          f"classification error {miss:.1%}")

    # one full-batch gradient: fastbp on all samples, the reference on a slice, per sample
    reps = 5
    t0 = time.perf_counter()
    for _ in range(reps):
        fastbp.gradient(net.weights, X, y, num_threads=args.threads)
    fast = (time.perf_counter() - t0) / reps / len(X)
    m = min(len(X), 1000)
    t0 = time.perf_counter()
    reference.gradient(net.weights, X[:m], y[:m])
    slow = (time.perf_counter() - t0) / m
    print(f"One gradient of E_in: {fast * 1e9:.0f} ns per sample with fastbp, "
          f"{slow * 1e9:.0f} ns with fastbp.reference (timed on {m} samples): "
          f"{slow / fast:.0f}x faster")

    if pyplot is not None:
        _plot(pyplot, net, X, y, history, args.plot)
        print(f"Wrote the learning curve and the decision regions to {args.plot}")


def _import_pyplot():
    """matplotlib.pyplot without a display, or exit with a message saying how to get it."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as pyplot
    except ImportError as exc:
        print(f"python -m fastbp: --plot needs matplotlib, which is not installed ({exc}); "
              f"install it with `pip install matplotlib`, or run without --plot",
              file=sys.stderr)
        raise SystemExit(2) from None
    return pyplot


def _plot(pyplot, net, X, y, history, path):
    """Two panels: E_in per epoch, and the sign of the network's output over the square."""
    fig, (left, right) = pyplot.subplots(1, 2, figsize=(10, 4.2))
    left.plot(range(len(history)), history, marker=".")
    left.set_yscale("log")
    left.set_xlabel("epoch")
    left.set_ylabel("E_in")
    left.set_title("Learning curve (variable learning rate)")
    left.grid(True, which="both", alpha=0.3)

    grid = np.linspace(-1, 1, 201)
    gx, gy = np.meshgrid(grid, grid)
    out = net.forward(np.column_stack([gx.ravel(), gy.ravel()])).reshape(gx.shape)
    right.contourf(gx, gy, out, levels=[-1, 0, 1], colors=["#f4b6b6", "#b6cff4"], alpha=0.8)
    right.contour(gx, gy, out, levels=[0], colors="black", linewidths=1.5)
    show = np.random.default_rng(1).permutation(len(X))[:600]
    for label, colour in ((-1.0, "#c0392b"), (1.0, "#1f5fa8")):
        pick = show[y[show] == label]
        right.scatter(X[pick, 0], X[pick, 1], s=6, color=colour, label=f"y = {label:+.0f}")
    right.plot(grid, 0.5 * np.sin(3 * grid), "--", color="grey", label="true boundary")
    right.set_xlim(-1, 1)
    right.set_ylim(-1, 1)
    right.set_aspect("equal")
    right.set_title("Decision regions (black: output 0)")
    right.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot.close(fig)


def _train(net, X, y, epochs, threads):
    """Variable learning-rate gradient descent ("bold driver"): one full-batch gradient per
    accepted step, an error evaluation per rejected one."""
    def report(history):
        i = len(history) - 1
        verdict = "" if history.accepted[i] else "  (step rejected)"
        print(f"  epoch {history.epoch[i]:3d}  E_in {history.E_in[i]:.5f}  "
              f"learning rate {history.learning_rate[i]:.4g}{verdict}")

    history = net.fit(X, y, method="variable-lr", learning_rate=0.1, epochs=epochs,
                      num_threads=threads, callback=report)
    return [history.start["E_in"]] + list(history.E_in)


if __name__ == "__main__":
    main()
