"""fastbp.sklearn against scikit-learn's own MLP: the same estimator parameters on both sides, fit
time and final score, in one run.

  digits      MLPClassifier on scikit-learn's digits (1797 x 64, 10 classes), hidden (100,),
              adam, 200 epochs (batch "auto" = 200; both stop by the same rule at the same epoch)
  classify    MLPClassifier on make_classification(100000 x 50, 10 classes), hidden (256, 128),
              adam, batch 200, 20 epochs
  regress     MLPRegressor on make_regression(100000 x 20), hidden (64, 64), sgd (20 epochs,
              batch 200) and lbfgs (50 iterations)

Why lbfgs stops at 50 iterations: the two gradients agree to the last few bits, not bitwise (BLAS
and fastbp's kernel add in different orders), and past about 60 iterations L-BFGS-B's line search
turns such a difference into another step, after which the two fits follow different (equally
good) paths. Measured on this problem (fastbp against scikit-learn, largest relative difference
of the coefficients; |score difference|): 20 iterations 4e-14 (9e-16), 50 iterations 4e-12
(1e-14), 100 iterations 2e-2 (2e-6), 150 iterations 1e-1 (7e-6). At 50 the two still compute the
same fit, so the times compare the same work and the scores agree; --lbfgs-iterations changes it.

Targets (issue 12): fastbp at least 10x scikit-learn's fit time with adam and sgd, 5x with lbfgs,
on 2 threads (fastbp's num_threads; scikit-learn's BLAS its default), with scores equal to within
1e-6. fastbp computes scikit-learn's model (tests/test_sklearn.py), so the scores agree to
rounding and the comparison is of the same work.

    python bench/sklearn_mlp.py [--quick] [--threads 2] [--json bench/results/sklearn_mlp.json]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import cpu_info, fmt_time, warn_openblas_env, write_record  # noqa: E402


def problems(quick, lbfgs_iterations=50):
    from sklearn.datasets import load_digits, make_classification, make_regression
    from sklearn.preprocessing import StandardScaler
    n = 20_000 if quick else 100_000
    digits = load_digits()
    Xd = digits.data / 16.0
    Xc, yc = make_classification(n_samples=n, n_features=50, n_informative=30, n_classes=10,
                                 random_state=0)
    Xr, yr = make_regression(n_samples=n, n_features=20, noise=1.0, random_state=0)
    Xr = StandardScaler().fit_transform(Xr)
    yr = (yr - yr.mean()) / yr.std()
    return [
        ("digits", "MLPClassifier", Xd, digits.target,
         dict(hidden_layer_sizes=(100,), solver="adam", max_iter=200 if not quick else 50)),
        ("classify", "MLPClassifier", Xc, yc,
         dict(hidden_layer_sizes=(256, 128), solver="adam", batch_size=200,
              max_iter=20 if not quick else 3, n_iter_no_change=1000)),
        ("regress-sgd", "MLPRegressor", Xr, yr,
         dict(hidden_layer_sizes=(64, 64), solver="sgd", batch_size=200, learning_rate_init=0.01,
              max_iter=20 if not quick else 3, n_iter_no_change=1000)),
        ("regress-lbfgs", "MLPRegressor", Xr, yr,
         dict(hidden_layer_sizes=(64, 64), solver="lbfgs",
              max_iter=lbfgs_iterations if not quick else 10)),
    ]


def timed_fit(cls, X, y, params):
    est = cls(random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        est.fit(X, y)
        seconds = time.perf_counter() - t0
    return est, seconds, est.score(X, y)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller data, fewer epochs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lbfgs-iterations", type=int, default=50,
                    help="max_iter of the lbfgs row (see the module docstring)")
    ap.add_argument("--json", default=os.path.join(HERE, "results", "sklearn_mlp.json"))
    args = ap.parse_args(argv)
    warn_openblas_env()
    import sklearn
    from sklearn import neural_network as sk

    import fastbp
    from fastbp import sklearn as fb

    rows = []
    print(f"fastbp.sklearn against scikit-learn {sklearn.__version__}; fastbp on {args.threads} "
          f"threads; CPU: {cpu_info().get('model', '?')}")
    print(f"{'problem':14s} {'estimator':14s} {'solver':6s} {'scikit-learn':>13s} {'fastbp':>10s} "
          f"{'speed-up':>9s} {'target':>7s} {'score (sk)':>11s} {'|score diff|':>12s} "
          f"{'epochs':>7s}")
    for name, est_name, X, y, params in problems(args.quick, args.lbfgs_iterations):
        theirs, t_sk, s_sk = timed_fit(getattr(sk, est_name), X, y, params)
        ours, t_fb, s_fb = timed_fit(getattr(fb, est_name), X, y,
                                     dict(params, num_threads=args.threads))
        target = 5.0 if params["solver"] == "lbfgs" else 10.0
        ratio = t_sk / t_fb
        met = ratio >= target and abs(s_sk - s_fb) <= 1e-6
        rows.append({"problem": name, "estimator": est_name, "params": params,
                     "sklearn_s": t_sk, "fastbp_s": t_fb, "speedup": ratio, "target": target,
                     "met": bool(met), "score_sklearn": s_sk, "score_fastbp": s_fb,
                     "n_iter_sklearn": theirs.n_iter_, "n_iter_fastbp": ours.n_iter_,
                     "shape": list(X.shape)})
        print(f"{name:14s} {est_name:14s} {params['solver']:6s} {fmt_time(t_sk):>13s} "
              f"{fmt_time(t_fb):>10s} {ratio:8.1f}x {target:6.0f}x {s_sk:11.6f} "
              f"{abs(s_sk - s_fb):12.1e} {ours.n_iter_:3d}/{theirs.n_iter_:<3d} "
              f"{'met' if met else 'NOT met'}")
    write_record(args.json, {"threads": args.threads,
                             "versions": {"fastbp": fastbp.__version__,
                                          "sklearn": sklearn.__version__,
                                          "numpy": np.__version__},
                             "rows": rows})


if __name__ == "__main__":
    main()
