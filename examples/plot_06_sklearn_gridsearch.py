"""
From scikit-learn's MLP to fastbp.sklearn in a grid search
==========================================================

:mod:`fastbp.sklearn` has scikit-learn's ``MLPClassifier`` with the same parameters, the same
fitted attributes and the same model after ``fit``; only the arithmetic runs in fastbp's kernels.
So switching a pipeline over is one import. Here a ``GridSearchCV`` over the hidden layer size and
the L2 penalty ``alpha`` on scikit-learn's digits (all ten classes, 64 pixels) runs once with each,
and we compare what it chose, the scores and the time.
"""

import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neural_network import MLPClassifier as SklearnMLP
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fastbp.sklearn import MLPClassifier as FastbpMLP

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)

# %%
# The same search, twice
# ----------------------
# Only the class in the pipeline differs. A few L-BFGS iterations per fit keep the example quick
# (both libraries then warn that the fit did not converge; we silence that here).
grid = {"mlpclassifier__hidden_layer_sizes": [(16,), (32,)],
        "mlpclassifier__alpha": [1e-3, 1.0]}
searches = {}
for name, MLP in (("scikit-learn", SklearnMLP), ("fastbp.sklearn", FastbpMLP)):
    pipe = make_pipeline(StandardScaler(), MLP(solver="lbfgs", max_iter=50, random_state=0))
    search = GridSearchCV(pipe, grid, cv=3, n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        search.fit(X_train, y_train)
        elapsed = time.perf_counter() - t0
    searches[name] = (search, elapsed)
    print(f"{name:15s} {elapsed:5.2f} s  best {search.best_params_}  "
          f"CV accuracy {search.best_score_:.3f}  test accuracy {search.score(X_test, y_test):.3f}")

# %%
# The same model
# --------------
# Every candidate's mean cross-validated accuracy, side by side: the two searches computed the same
# models (up to the last bits of the floating-point sums, which round in another order). The times
# are those of this build, on whatever else the machine was doing; ``python bench/sklearn_mlp.py``
# compares the two properly.
sk, fb = searches["scikit-learn"][0], searches["fastbp.sklearn"][0]
diff = np.max(np.abs(sk.cv_results_["mean_test_score"] - fb.cv_results_["mean_test_score"]))
print(f"largest difference in mean CV accuracy over the {len(sk.cv_results_['params'])} "
      f"candidates: {diff:.2g}")
a = sk.best_estimator_[-1]
b = fb.best_estimator_[-1]
coef_diff = max(np.max(np.abs(p - q)) for p, q in zip(a.coefs_, b.coefs_))
print(f"best model: {a.n_iter_} iterations each, largest coefficient difference {coef_diff:.2g}")

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8),
                                  gridspec_kw={"width_ratios": [2, 1]})
labels = [f"{p['mlpclassifier__hidden_layer_sizes'][0]} units\nalpha={p['mlpclassifier__alpha']:g}"
          for p in sk.cv_results_["params"]]
pos = np.arange(len(labels))
left.bar(pos - 0.2, sk.cv_results_["mean_test_score"], 0.4, label="scikit-learn")
left.bar(pos + 0.2, fb.cv_results_["mean_test_score"], 0.4, label="fastbp.sklearn")
left.set_xticks(pos, labels, fontsize=8)
left.set_ylim(0.8, 1.0)
left.set_ylabel("mean CV accuracy")
left.legend(loc="lower right")
left.set_title("Every candidate of the grid")
names = list(searches)
right.bar(names, [searches[n][1] for n in names], color=["C0", "C1"])
right.set_ylabel("seconds")
n_fits = len(sk.cv_results_["params"]) * sk.n_splits_
right.set_title(f"GridSearchCV.fit: {n_fits} fits + refit")
fig.tight_layout()
plt.show()
