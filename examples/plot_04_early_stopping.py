"""
Early stopping and weight decay
===============================

Overfitting, and two cures, on a small sample. We take all 64 pixels of scikit-learn's 8 x 8 digits
1 and 5, keep only 40 images for training and hold out the rest for validation, and train a network
with far more weights than training points (``[64, 20, 1]``: 1321 weights). With every epoch
:math:`E_{\\text{in}}` falls; :math:`E_{\\text{val}}` falls, then rises again.

- **Early stopping** (``early_stopping=True``) watches :math:`E_{\\text{val}}` and restores the
  weights of its best epoch once it has not improved for ``patience`` epochs.
- **Weight decay** (``weight_decay=lambda``) minimises :math:`E_{\\text{aug}} = E_{\\text{in}} +
  (\\lambda / N) \\sum w^2` instead, which keeps the weights small.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

import fastbp

digits = load_digits()
keep = np.isin(digits.target, (1, 5))
X_all = digits.data[keep] / 8.0 - 1.0                  # pixels scaled to [-1, 1]
y_all = np.where(digits.target[keep] == 1, 1.0, -1.0)
order = np.random.default_rng(0).permutation(len(X_all))
train, val = order[:40], order[40:]
X, y, X_val, y_val = X_all[train], y_all[train], X_all[val], y_all[val]
print(f"{len(X)} training images, {len(X_val)} validation images")

# %%
# E_in and E_val, epoch by epoch
# ------------------------------
# Plain training records both curves; the same run with ``early_stopping=True`` stops and rolls
# back.
widths = [64, 20, 1]
options = dict(method="gd", learning_rate=0.2, momentum=0.9, epochs=300,
               validation_data=(X_val, y_val))
plain = fastbp.Network(widths, seed=1)
h_plain = plain.fit(X, y, **options)
stopped = fastbp.Network(widths, seed=1)
h_stop = stopped.fit(X, y, early_stopping=True, patience=20, **options)
print(f"no early stopping: {len(h_plain)} epochs, final E_val {h_plain.E_val[-1]:.4f}")
print(f"early stopping: stopped after {len(h_stop)} epochs, weights of epoch "
      f"{h_stop.best_epoch} restored, E_val {stopped.error(X_val, y_val):.4f}")

# %%
# Weight decay
# ------------
# The same network and epochs, for several :math:`\lambda`.
lambdas = [0.0, 0.01, 0.03, 0.1, 0.3]
decayed = {}
for lam in lambdas:
    net = fastbp.Network(widths, seed=1)
    h = net.fit(X, y, weight_decay=lam, **options)
    decayed[lam] = h
    print(f"lambda = {lam:<5}: E_in {h.E_in[-1]:.4f}, E_val {h.E_val[-1]:.4f}, "
          f"validation classification error {net.classification_error(X_val, y_val):.1%}")

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
epochs = np.arange(1, len(h_plain) + 1)
left.plot(epochs, h_plain.E_in, label=r"$E_{\mathrm{in}}$")
left.plot(epochs, h_plain.E_val, label=r"$E_{\mathrm{val}}$")
left.axvline(h_stop.best_epoch, color="grey", linestyle="--",
             label=f"early stopping restores epoch {h_stop.best_epoch}")
left.axvline(len(h_stop), color="grey", linestyle=":", label=f"and stops at {len(h_stop)}")
left.set_yscale("log")
left.set_xlabel("epoch")
left.set_title("No regularisation: 40 points, 1321 weights")
left.legend(fontsize=8)

for lam, h in decayed.items():
    line, = right.plot(epochs, h.E_val, label=rf"$\lambda$ = {lam}")
    right.plot(epochs, h.E_in, color=line.get_color(), linestyle=":", linewidth=1)
right.set_yscale("log")
right.set_xlabel("epoch")
right.set_title(r"Weight decay: $E_{\mathrm{val}}$ (solid), $E_{\mathrm{in}}$ (dotted)")
right.legend(fontsize=8)
fig.tight_layout()
plt.show()
