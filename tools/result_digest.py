"""A SHA-256 of fastbp's results: gradients, errors, forward outputs and the weights after 5 epochs
of every training method (and of fastbp.sklearn's solvers, where scikit-learn is installed), over
networks x activations x outputs x dtypes x 1 and 2 threads x every kernel set this CPU runs.

A refactoring of the kernels that claims to change no result prints the same digests before and
after:

    python tools/result_digest.py                 # one line per kernel set, and the total
    python tools/result_digest.py --detail d.txt  # also each case's digest, to find what moved

Each kernel set runs in a child interpreter with FASTBP_SIMD set (the set is chosen at import).
The digest hashes the exact bytes of every array and the float64 bytes of every scalar, so a
difference in the last bit of anything shows.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys

NETWORKS = [[1, 1], [3, 2], [5, 1, 2], [19, 4, 1], [7, 9, 6, 3], [4, 3, 3, 3, 3, 2], [40, 33, 2]]
ACTIVATIONS = ["tanh", "relu", "logistic", "identity"]
OUTPUTS = ["tanh", "linear", "logistic", "softmax"]
METHODS = [("gd", {"learning_rate": 0.05}), ("gd", {"learning_rate": 0.05, "momentum": 0.8}),
           ("gd", {"learning_rate": 0.05, "momentum": 0.8, "nesterov": True}),
           ("variable-lr", {}), ("rprop", {}), ("sgd", {"batch_size": 7}),
           ("sgd", {"batch_size": 1100, "momentum": 0.9}),
           ("sgd", {"batch_size": 64, "momentum": 0.9, "nesterov": True}),
           ("adam", {"batch_size": 200}), ("adam", {"batch_size": 1500})]


def child() -> None:
    import numpy as np

    import fastbp
    from fastbp import _api

    records = {}

    def put(key, *values):
        h = hashlib.sha256()
        for v in values:
            a = np.asarray(v)
            if a.dtype.kind == "f" and a.ndim == 0:
                a = a.astype(np.float64)
            h.update(str(a.dtype).encode() + str(a.shape).encode())
            h.update(np.ascontiguousarray(a).tobytes())
        records[key] = h.hexdigest()

    def problem(widths, n, dtype, output, seed):
        rng = np.random.default_rng(seed)
        w = [(rng.standard_normal((a + 1, b)) * 0.7).astype(dtype)
             for a, b in zip(widths[:-1], widths[1:])]
        X = rng.standard_normal((n, widths[0])).astype(dtype)
        if output == "softmax":
            y = np.eye(widths[-1], dtype=dtype)[rng.integers(0, widths[-1], n)]
        elif output == "logistic":
            y = (rng.random((n, widths[-1])) < 0.4).astype(dtype)
        else:
            y = np.tanh(rng.standard_normal((n, widths[-1]))).astype(dtype)
        return w, X, y

    for i, widths in enumerate(NETWORKS):
        for act in ACTIVATIONS:
            for out in OUTPUTS:
                if out == "softmax" and widths[-1] < 2:
                    continue
                for dtype in (np.float64, np.float32):
                    # N past a few chunks (512-2048 samples each) and a partial last tile
                    n = 2901 if i % 2 else 1337
                    w, X, y = problem(widths, n, dtype, out, seed=i)
                    sw = np.random.default_rng(5).random(n).astype(dtype)
                    for threads in (1, 2):
                        key = f"{widths}|{act}|{out}|{np.dtype(dtype).name}|t{threads}"
                        kw = dict(output=out, activation=act, num_threads=threads)
                        E, g = fastbp.gradient(w, X, y, **kw)
                        Es, gs = fastbp.gradient(w, X, y, sample_weight=sw, reduction="sum", **kw)
                        put(key + "|gradient", E, *g, Es, *gs)
                        put(key + "|error", fastbp.error(w, X, y, **kw),
                            fastbp.error(w, X, y, sample_weight=sw, **kw))
                        if threads == 1:
                            put(key + "|forward", fastbp.forward(w, X, output=out, activation=act))
    # training: 5 epochs of every method, tanh and relu units, two outputs, decay and weights
    for widths in ([6, 8, 3], [12, 16, 8, 4]):
        for act, out in (("tanh", "tanh"), ("relu", "softmax"), ("logistic", "linear")):
            for dtype in (np.float64, np.float32):
                w0, X, y = problem(widths, 2600, dtype, out, seed=len(widths))
                sw = np.random.default_rng(7).random(len(X)).astype(dtype)
                for threads in (1, 2):
                    for m, (method, opts) in enumerate(METHODS):
                        for decay, weights in ((0.0, None), (0.01, sw)):
                            w = [a.copy() for a in w0]
                            h = fastbp.fit(w, X, y, output=out, method=method, activation=act,
                                           epochs=5, seed=3, num_threads=threads,
                                           weight_decay=decay, sample_weight=weights, **opts)
                            key = (f"fit|{widths}|{act}|{out}|{np.dtype(dtype).name}|t{threads}|"
                                   f"{method}{m}|decay{decay}")
                            put(key, *w, np.asarray(h.E_in, dtype=np.float64))
    try:
        import sklearn  # noqa: F401
    except ImportError:
        sklearn = None
    if sklearn is not None:
        from fastbp.sklearn import MLPClassifier, MLPRegressor
        rng = np.random.default_rng(11)
        X = rng.standard_normal((1300, 6))
        yc = rng.integers(0, 3, 1300)
        yr = np.tanh(X[:, :2]).sum(axis=1)
        for solver in ("adam", "sgd", "lbfgs", "gd", "variable-lr", "rprop"):
            for dtype in (np.float64, np.float32):
                for threads in (1, 2):
                    for est in (MLPClassifier(hidden_layer_sizes=(9, 5), solver=solver,
                                              max_iter=5, random_state=0, num_threads=threads,
                                              batch_size=600, tol=0.0),
                                MLPRegressor(hidden_layer_sizes=(8,), solver=solver, max_iter=5,
                                             random_state=0, num_threads=threads, tol=0.0,
                                             activation="relu")):
                        import warnings
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            est.fit(X.astype(dtype),
                                    yc if isinstance(est, MLPClassifier) else yr)
                        key = (f"sklearn|{type(est).__name__}|{solver}|{np.dtype(dtype).name}"
                               f"|t{threads}")
                        put(key, *est.coefs_, *est.intercepts_,
                            np.asarray(est.loss_curve_ if hasattr(est, "loss_curve_") else
                                       [est.loss_], dtype=np.float64))
    json.dump({"isa": _api.ISA, "records": records}, sys.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="the interpreter to run")
    parser.add_argument("--detail", help="write each case's digest to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child()
        return
    total = hashlib.sha256()
    detail = []
    seen = set()
    for wanted in ("baseline", "avx2", "avx512", ""):
        env = dict(os.environ, FASTBP_SIMD=wanted)
        run = subprocess.run([args.python, os.path.abspath(__file__), "--child"], env=env,
                             capture_output=True, text=True, cwd="/")
        if run.returncode != 0:
            sys.exit(f"FASTBP_SIMD={wanted!r}: the child failed:\n{run.stderr}")
        result = json.loads(run.stdout)
        if result["isa"] in seen:           # a set this CPU lacks falls back to one seen
            continue
        seen.add(result["isa"])
        h = hashlib.sha256()
        for key in sorted(result["records"]):
            h.update(f"{key}={result['records'][key]}\n".encode())
            detail.append(f"{result['isa']}|{key} {result['records'][key]}")
        total.update(h.hexdigest().encode())
        print(f"{result['isa']:10s} {len(result['records']):5d} cases  {h.hexdigest()}")
    print(f"{'all':10s} {len(detail):5d} cases  {total.hexdigest()}")
    if args.detail:
        with open(args.detail, "w") as f:
            f.write("\n".join(detail) + "\n")


if __name__ == "__main__":
    main()
