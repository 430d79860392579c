import numpy as np
import pytest


def make_problem(widths, n, dtype="float64", seed=0, output="tanh"):
    """Random weights (not too small, so that every path matters), inputs and targets."""
    import fastbp
    rng = np.random.default_rng(seed)
    weights = [w * 1.5 for w in fastbp.init_weights(widths, seed=seed + 1, dtype="float64")]
    X = rng.standard_normal((n, widths[0]))
    y = rng.uniform(-0.9, 0.9, (n, widths[-1]))
    return [w.astype(dtype) for w in weights], X.astype(dtype), y.astype(dtype)


def rel_err(a, b):
    """Norm-wise relative error of a against b (max abs difference over max abs of b)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = max(np.abs(b).max(), np.finfo(np.float64).tiny)
    return float(np.abs(a - b).max() / scale)


@pytest.fixture
def problem():
    return make_problem
