"""
Digits 1 and 5: every training method
=====================================

The lecture's classic problem: tell handwritten 1s from 5s by two features of the image, its
*intensity* (the mean grey level) and its *symmetry* (minus the mean absolute difference between the
image and its mirror image, flipped top to bottom: a 1 is nearly symmetric, a 5 is not). Here the
digits are scikit-learn's 8 x 8 images (:func:`sklearn.datasets.load_digits`). A ``[2, 8, 1]`` tanh
network learns the labels :math:`\\pm 1` with each of fastbp's eight training methods, from the same
initial weights; we plot :math:`E_{\\text{in}}` against the time each took.
"""

import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

import fastbp

# %%
# The two features
# ----------------
digits = load_digits()
keep = np.isin(digits.target, (1, 5))
images = digits.images[keep] / 16.0                    # grey levels in [0, 1]
intensity = images.mean(axis=(1, 2))
symmetry = -np.abs(images - images[:, ::-1, :]).mean(axis=(1, 2))
features = np.column_stack([intensity, symmetry])
lo, hi = features.min(axis=0), features.max(axis=0)
X = 2 * (features - lo) / (hi - lo) - 1                # each feature scaled to [-1, 1]
y = np.where(digits.target[keep] == 1, 1.0, -1.0)
print(f"{len(X)} images: {np.sum(y > 0)} ones, {np.sum(y < 0)} fives")

# %%
# Eight methods, the same start
# -----------------------------
# Each method gets a budget of epochs that fits its cost per epoch (an epoch of ``sgd`` or
# ``adam`` is a pass over the data in mini-batches, one of ``lbfgs`` a quasi-Newton iteration); the
# learning rates are the defaults, except a larger one for Adam on this tiny problem.
start = fastbp.init_weights([2, 8, 1], seed=3)
runs = {
    "gd": dict(epochs=400, learning_rate=0.1, momentum=0.9),
    "sgd": dict(epochs=150, learning_rate=0.05, batch_size=16),
    "adam": dict(epochs=150, learning_rate=0.01, batch_size=16),
    "variable-lr": dict(epochs=400),
    "steepest": dict(epochs=150),
    "cg": dict(epochs=150),
    "rprop": dict(epochs=400),
    "lbfgs": dict(epochs=150),
}
results = {}
for method, options in runs.items():
    weights = [w.copy() for w in start]
    t0 = time.perf_counter()
    history = fastbp.fit(weights, X, y, method=method, seed=0, **options)
    elapsed = time.perf_counter() - t0
    net = fastbp.Network([2, 8, 1], weights=weights)
    results[method] = (history, weights)
    print(f"{method:12s} {len(history):4d} epochs in {elapsed * 1e3:7.1f} ms:  "
          f"E_in {history.E_in[-1]:.4f}, classification error "
          f"{net.classification_error(X, y):.1%}  ({history.stop_reason})")

# %%
# E_in against time
# -----------------
# ``history.time`` is the wall-clock time at the end of each epoch. Full-batch methods with a line
# search or curvature (``cg``, ``lbfgs``) and RPROP reach a low error in the fewest evaluations;
# plain gradient descent crawls.
fig, ax = plt.subplots(figsize=(7, 4.5))
for method, (history, _) in results.items():
    t = [0.0] + list(history.time)
    e = [history.start["E_in"]] + list(history.E_in)
    ax.plot(np.array(t) * 1e3, e, label=method, linewidth=1.5)
ax.set_xscale("symlog", linthresh=1)
ax.set_yscale("log")
ax.set_xlabel("time (ms)")
ax.set_ylabel(r"$E_{\mathrm{in}}$")
ax.set_title("Digits 1 vs 5, [2, 8, 1] tanh network")
ax.legend(ncol=2, fontsize=9)
ax.grid(True, which="both", alpha=0.3)
fig.tight_layout()
plt.show()
