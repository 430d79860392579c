"""
The lecture's worked example, step by step
==========================================

Backpropagation on the smallest network that shows every step: ``widths = [1, 2, 1, 1]``, one input
:math:`x = 2`, target :math:`y = 1`, tanh at every layer. We compute each :math:`\\mathbf{x}^{(l)}`
and :math:`\\boldsymbol{\\delta}^{(l)}` by the formulas of :ref:`maths`, compare them with
:func:`fastbp.backprop` and the pure-Python :mod:`fastbp.reference`, then check the gradient against
finite differences.
"""

import matplotlib.pyplot as plt
import numpy as np

import fastbp
from fastbp import reference

# %%
# The network
# -----------
# ``weights[l - 1]`` is :math:`W^{(l)}`, of shape :math:`(d^{(l-1)} + 1) \times d^{(l)}`, row 0 the
# biases.
W = [np.array([[0.1, 0.2],
               [0.3, 0.4]]),        # W(1): 1 input (+ bias) -> 2 units
     np.array([[0.2],
               [1.0],
               [-3.0]]),            # W(2): 2 units (+ bias) -> 1 unit
     np.array([[1.0],
               [2.0]])]             # W(3): 1 unit (+ bias) -> the output
x, y = np.array([2.0]), np.array([1.0])

# %%
# Forward propagation
# -------------------
# :math:`\mathbf{x}^{(0)} = [1; x]`, :math:`\mathbf{s}^{(l)} = (W^{(l)})^{\mathsf T}
# \mathbf{x}^{(l-1)}`, :math:`\mathbf{x}^{(l)} = [1; \tanh \mathbf{s}^{(l)}]` (no bias at the
# output).
xs = [np.concatenate(([1.0], x))]
for l, Wl in enumerate(W, start=1):
    s = Wl.T @ xs[-1]
    xs.append(np.tanh(s) if l == len(W) else np.concatenate(([1.0], np.tanh(s))))
    print(f"s({l}) = {np.round(s, 4)}   x({l}) = {np.round(xs[-1], 4)}")

# %%
# Backward propagation of the sensitivities
# -----------------------------------------
# :math:`\boldsymbol{\delta}^{(L)} = 2(\mathbf{x}^{(L)} - \mathbf{y})(1 - (\mathbf{x}^{(L)})^2)`, then
# :math:`\boldsymbol{\delta}^{(l)} = (1 - \mathbf{x}^{(l)} \otimes \mathbf{x}^{(l)}) \otimes
# [W^{(l+1)} \boldsymbol{\delta}^{(l+1)}]` with the bias components dropped.
L = len(W)
deltas = [None] * (L + 1)
deltas[L] = 2 * (xs[L] - y) * (1 - xs[L] ** 2)
for l in range(L - 1, 0, -1):
    deltas[l] = (1 - xs[l][1:] ** 2) * (W[l] @ deltas[l + 1])[1:]
for l in range(L, 0, -1):
    print(f"delta({l}) = {np.round(deltas[l], 4)}")

# %%
# The gradient
# ------------
# :math:`\partial e / \partial W^{(l)} = \mathbf{x}^{(l-1)} (\boldsymbol{\delta}^{(l)})^{\mathsf T}`.
grads = [np.outer(xs[l - 1], deltas[l]) for l in range(1, L + 1)]
e = float(np.sum((xs[L] - y) ** 2))
print(f"e = {e:.6f}")
for l, g in enumerate(grads, start=1):
    print(f"de/dW({l}) =\n{np.round(g, 4)}")

# %%
# The same numbers from fastbp and from the reference
# ---------------------------------------------------
# :func:`fastbp.backprop` returns every :math:`\mathbf{x}^{(l)}` and
# :math:`\boldsymbol{\delta}^{(l)}` of one sample; :func:`fastbp.gradient` the error and gradient of
# a batch (here of one sample).
xs_fast, deltas_fast = fastbp.backprop(W, x, y)
xs_ref, deltas_ref = reference.backprop(W, x, y)
e_fast, grads_fast = fastbp.gradient(W, x[None, :], y)
worst = max(
    max(np.max(np.abs(a - b)) for a, b in zip(xs_fast, xs)),
    max(np.max(np.abs(a - b)) for a, b in zip(deltas_fast, deltas[1:])),
    max(np.max(np.abs(a - b)) for a, b in zip(grads_fast, grads)),
    max(np.max(np.abs(a - b)) for a, b in zip(deltas_ref, deltas[1:])),
    abs(e_fast - e))
print(f"largest difference between the hand computation, fastbp and the reference: {worst:.1e}")

# %%
# Against finite differences
# --------------------------
# Each partial derivative against the central difference
# :math:`(e(w + \varepsilon) - e(w - \varepsilon)) / 2\varepsilon`, computed here weight by weight
# with :func:`fastbp.error`, and all at once with :func:`fastbp.check_gradient`.
eps = 1e-6
numeric = []
for Wl in W:
    g = np.empty_like(Wl)
    for idx in np.ndindex(Wl.shape):
        old = Wl[idx]
        Wl[idx] = old + eps
        up = fastbp.error(W, x[None, :], y)
        Wl[idx] = old - eps
        down = fastbp.error(W, x[None, :], y)
        Wl[idx] = old
        g[idx] = (up - down) / (2 * eps)
    numeric.append(g)
analytic = np.concatenate([g.ravel() for g in grads_fast])
numeric = np.concatenate([g.ravel() for g in numeric])
print(f"worst relative error, check_gradient: {fastbp.check_gradient(W, x[None, :], y):.1e}")

labels = [f"W({l})[{i},{j}]" for l, Wl in enumerate(W, 1) for i, j in np.ndindex(Wl.shape)]
fig, ax = plt.subplots(figsize=(7, 3.2))
pos = np.arange(len(labels))
ax.bar(pos - 0.2, analytic, width=0.4, label="backpropagation")
ax.bar(pos + 0.2, numeric, width=0.4, label="finite differences")
ax.axhline(0, color="black", linewidth=0.5)
ax.set_xticks(pos, labels, rotation=45, ha="right", fontsize=8)
ax.set_ylabel(r"$\partial e / \partial w$")
ax.set_title("The gradient of the worked example, two ways")
ax.legend()
fig.tight_layout()
plt.show()
