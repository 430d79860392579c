"""The worked example of the issue, with numbers one can check by hand (and with math.tanh)."""
import math

import numpy as np
import pytest

import fastbp
from fastbp import reference

W = [np.array([[0.1, 0.2], [0.3, 0.4]]), np.array([[0.2], [1.0], [-3.0]]), np.array([[1.0], [2.0]])]


def by_hand():
    """The lecture's recursion written out for d = [1, 2, 1, 1], x = 2, y = 1, tanh everywhere."""
    x, y = 2.0, 1.0
    s1 = [0.1 + 0.3 * x, 0.2 + 0.4 * x]                  # [0.7, 1.0]
    x1 = [1.0, math.tanh(s1[0]), math.tanh(s1[1])]        # [1, 0.60, 0.76]
    s2 = 0.2 + 1.0 * x1[1] - 3.0 * x1[2]
    x2 = [1.0, math.tanh(s2)]                              # [1, -0.90]
    s3 = 1.0 + 2.0 * x2[1]
    x3 = math.tanh(s3)                                     # -0.67
    d3 = 2 * (x3 - y) * (1 - x3 ** 2)
    d2 = (1 - x2[1] ** 2) * (2.0 * d3)                     # W(3) without its bias row is [2]
    d1 = [(1 - x1[1] ** 2) * (1.0 * d2), (1 - x1[2] ** 2) * (-3.0 * d2)]
    g1 = [[1.0 * d1[0], 1.0 * d1[1]], [x * d1[0], x * d1[1]]]
    g2 = [[x1[0] * d2], [x1[1] * d2], [x1[2] * d2]]
    g3 = [[x2[0] * d3], [x2[1] * d3]]
    return [x1, x2, [x3]], [d1, [d2], [d3]], [g1, g2, g3], (x3 - y) ** 2


@pytest.mark.parametrize("module", [fastbp, reference], ids=["fastbp", "reference"])
def test_forward_to_two_decimals(module):
    xs, _ = module.backprop(W, [2.0], [1.0])
    np.testing.assert_allclose(xs[1], [1, 0.60, 0.76], atol=0.005)
    np.testing.assert_allclose(xs[2], [1, -0.90], atol=0.005)
    np.testing.assert_allclose(xs[3], [-0.67], atol=0.005)
    assert module.forward(W, [[2.0]])[0, 0] == pytest.approx(-0.6658, abs=1e-4)


@pytest.mark.parametrize("module", [fastbp, reference], ids=["fastbp", "reference"])
def test_sensitivities_and_gradients_by_hand(module):
    xs_hand, deltas_hand, grads_hand, e_hand = by_hand()
    xs, deltas = module.backprop(W, [2.0], [1.0])
    np.testing.assert_allclose(xs[0], [1.0, 2.0], rtol=0, atol=0)
    for got, want in zip(xs[1:], xs_hand):
        np.testing.assert_allclose(got, want, rtol=1e-14)
    for got, want in zip(deltas, deltas_hand):
        np.testing.assert_allclose(got, want, rtol=1e-14)
    # the figures rounded, as one would get them on paper
    np.testing.assert_allclose(deltas[2], [-1.855], atol=1e-3)
    np.testing.assert_allclose(deltas[1], [-0.695], atol=1e-3)
    np.testing.assert_allclose(deltas[0], [-0.441, 0.875], atol=1e-3)
    e, grads = module.gradient(W, [[2.0]], [1.0])
    assert e == pytest.approx(e_hand, rel=1e-14)
    for got, want in zip(grads, grads_hand):
        np.testing.assert_allclose(got, want, rtol=1e-14)
    np.testing.assert_allclose(grads[0], [[-0.441, 0.875], [-0.882, 1.750]], atol=1e-3)
    np.testing.assert_allclose(grads[2], [[-1.855], [1.672]], atol=1e-3)
