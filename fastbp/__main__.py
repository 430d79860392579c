"""`python -m fastbp`: train a small tanh network on built-in synthetic data and say how fast it was.

The data: N points in the square [-1, 1]^2, labelled +1 or -1 by which side of a wavy boundary they
fall (a problem a linear model cannot solve). The network [2, 16, 16, 1] is trained by gradient
descent; E_in is printed after every epoch, then the time taken and the speed of one full-batch
gradient against fastbp.reference, timed on a slice of the same data.
"""
from __future__ import annotations

import argparse
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
    args = parser.parse_args(argv)

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
