"""
Deploying with ONNX: train with fastbp.sklearn, predict with ONNX Runtime
=========================================================================

A classifier trained with :mod:`fastbp.sklearn` is exported with :func:`fastbp.onnx.to_onnx` and
served by ONNX Runtime, where neither fastbp nor a compiler is needed. We check that the served
model computes what fastbp computes, and put ONNX Runtime's prediction time beside
:func:`fastbp.forward`'s, for the record (:doc:`/user_guide/deploying` describes the graph and the
other routes out of fastbp).

This example needs ``onnx`` and ``onnxruntime`` (``pip install "fastbp[onnx]" onnxruntime``);
where either is missing it says so and does nothing else.
"""

import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

import fastbp
from fastbp.sklearn import MLPClassifier

try:
    import onnx
    import onnxruntime

    from fastbp.onnx import to_onnx
except ImportError as exc:
    onnxruntime = None
    print(f"Skipped: this example needs onnx and onnxruntime, which cannot be imported here "
          f"({exc}).")

# %%
# Train
# -----
# scikit-learn's digits (8 x 8 pixels, ten classes), pixels scaled to [0, 1] by hand, so that the
# exported model needs no preprocessing step of its own.
X, y = load_digits(return_X_y=True)
X = X / 16.0
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
clf = MLPClassifier(hidden_layer_sizes=(64,), activation="relu", solver="adam",
                    learning_rate_init=0.01, max_iter=60, random_state=0)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    clf.fit(X_train, y_train)
print(f"fastbp.sklearn: test accuracy {clf.score(X_test, y_test):.3f} after {clf.n_iter_} epochs")

# %%
# Export
# ------
# The estimator's network in fastbp's terms: :math:`W^{(l)}` is the intercepts over the
# coefficients, the hidden activation keeps its name, and scikit-learn's ``softmax`` output is
# fastbp's. The model's input is ``"X"`` (any number of rows), its output ``"output"`` holds
# :math:`x^{(L)}`, here a distribution over the ten classes per row.
weights = [np.vstack([b, W]) for W, b in zip(clf.coefs_, clf.intercepts_)]
if onnxruntime is not None:
    model = to_onnx(weights, output="softmax", activation=clf.activation)
    onnx.checker.check_model(model)
    print(f"opset {model.opset_import[0].version}, IR version {model.ir_version}, "
          f"{len(model.SerializeToString()) / 1024:.1f} KiB")
    print("nodes:", " -> ".join(node.op_type for node in model.graph.node))

# %%
# Predict with ONNX Runtime
# -------------------------
# The session is all a service needs (the model's bytes, or a file written with ``onnx.save``).
# Its probabilities equal fastbp's to rounding, and so do the predicted classes.
if onnxruntime is not None:
    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    proba = session.run(None, {"X": X_test})[0]
    ours = clf.predict_proba(X_test)
    print(f"largest difference from fastbp's predict_proba: {np.abs(proba - ours).max():.2g}")
    labels = clf.classes_[np.argmax(proba, axis=1)]
    print(f"ONNX Runtime's classes equal fastbp's: {bool((labels == clf.predict(X_test)).all())}; "
          f"test accuracy {np.mean(labels == y_test):.3f}")

# %%
# Timing, for the record
# ----------------------
# The best of several runs of ONNX Runtime's ``session.run`` and of :func:`fastbp.forward` on the
# same weights: one row at a time (a service's latency) and a batch of 20 000 rows. Both use every
# core they are given by default. These are the times of the machine that built this page, on
# whatever else it was doing then: a record, not a benchmark.


def best_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


if onnxruntime is not None:
    batch = np.tile(X_test, (-(-20000 // len(X_test)), 1))[:20000]
    one = X_test[:1]
    rows = []
    for name, data, repeats in (("1 row", one, 200), ("20 000 rows", batch, 10)):
        t_ort = best_time(lambda d=data: session.run(None, {"X": d}), repeats)
        t_fb = best_time(lambda d=data: fastbp.forward(weights, d, output="softmax",
                                                       activation="relu"), repeats)
        rows.append((name, t_ort, t_fb))
        print(f"{name:12s} onnxruntime {t_ort * 1e6:9.1f} us   fastbp.forward {t_fb * 1e6:9.1f} us")

    fig, ax = plt.subplots(figsize=(6, 3))
    positions = np.arange(len(rows))
    ax.barh(positions - 0.2, [r[1] * 1e6 for r in rows], height=0.4, label="ONNX Runtime")
    ax.barh(positions + 0.2, [r[2] * 1e6 for r in rows], height=0.4, label="fastbp.forward")
    ax.set_yticks(positions, [r[0] for r in rows])
    ax.set_xscale("log")
    ax.set_xlabel("best time (microseconds, log scale)")
    ax.legend()
    fig.tight_layout()
    plt.show()
