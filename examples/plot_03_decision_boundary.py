"""
The decision boundary it learns
===============================

The same two features of the digits 1 and 5 (intensity and symmetry, see
:ref:`sphx_glr_auto_examples_plot_02_digits_methods.py`). A ``[2, 8, 1]`` tanh network trained by
L-BFGS with four random restarts (``Network.fit(restarts=4)``, the four trained side by side by
:func:`fastbp.fit_many`); we draw the sign of its output over the feature plane and the line where
the output is zero: the boundary between "1" and "5".
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

import fastbp

digits = load_digits()
keep = np.isin(digits.target, (1, 5))
images = digits.images[keep] / 16.0
features = np.column_stack([images.mean(axis=(1, 2)),
                            -np.abs(images - images[:, ::-1, :]).mean(axis=(1, 2))])
lo, hi = features.min(axis=0), features.max(axis=0)
X = 2 * (features - lo) / (hi - lo) - 1
y = np.where(digits.target[keep] == 1, 1.0, -1.0)

# %%
# Train, keeping the best of four restarts
# ----------------------------------------
net = fastbp.Network([2, 8, 1], seed=0)
history = net.fit(X, y, method="lbfgs", epochs=200, restarts=4)
finals = [h.E_in[-1] for h in net.restart_histories]
print("final E_in of the four restarts:", np.round(finals, 4))
print(f"kept: E_in {history.E_in[-1]:.4f}, "
      f"classification error {net.classification_error(X, y):.1%}")

# %%
# The regions
# -----------
grid = np.linspace(-1.1, 1.1, 300)
gx, gy = np.meshgrid(grid, grid)
out = net.forward(np.column_stack([gx.ravel(), gy.ravel()])).reshape(gx.shape)

fig, ax = plt.subplots(figsize=(6, 5.2))
filled = ax.contourf(gx, gy, out, levels=np.linspace(-1, 1, 21), cmap="RdBu", alpha=0.6)
ax.contour(gx, gy, out, levels=[0], colors="black", linewidths=2)
ax.scatter(*X[y > 0].T, s=14, c="#1f4e96", edgecolors="white", linewidths=0.4, label="digit 1")
ax.scatter(*X[y < 0].T, s=14, c="#b2182b", marker="s", edgecolors="white", linewidths=0.4,
           label="digit 5")
fig.colorbar(filled, ax=ax, label="network output $x^{(L)}$")
ax.set_xlabel("intensity (scaled)")
ax.set_ylabel("symmetry (scaled)")
ax.set_title("Decision boundary (black) of the [2, 8, 1] network")
ax.legend(loc="lower right")
fig.tight_layout()
plt.show()
