"""PyTorch round trips: Network.to_torch and Network.from_torch.

torch==2.13.0 is in the `test` extra from Python 3.10 on (the first Python that version supports):
there these tests run; on Python 3.9 the module is skipped, saying so.
"""
import sys

import numpy as np
import pytest

import fastbp
from _helpers import assert_forward_equal

torch = pytest.importorskip("torch", reason="torch==2.13.0 (the test extra's, from Python 3.10) "
                                            "is not installed")
nn = torch.nn



@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("output", ["tanh", "linear", "logistic", "softmax"])
@pytest.mark.parametrize("activation", ["tanh", "relu", "logistic", "identity"])
def test_to_torch_and_back(activation, output, dtype):
    widths = [5, 8, 6, 3]
    net = fastbp.Network(widths, output=output, activation=activation, dtype=dtype,
                         weights=[2 * w for w in fastbp.init_weights(widths, seed=1)])
    rng = np.random.default_rng(0)
    X = np.vstack([rng.standard_normal((50, 5)), 30 * rng.standard_normal((50, 5))]).astype(dtype)
    module = net.to_torch()
    assert isinstance(module, nn.Sequential)
    assert all(p.dtype == getattr(torch, dtype) for p in module.parameters())
    with torch.no_grad():
        got = module(torch.from_numpy(X)).numpy()
    assert_forward_equal(got, net, X)
    back = fastbp.Network.from_torch(module)
    assert (back.widths, back.output, back.activation, back.dtype) == (
        net.widths, net.output, net.activation, net.dtype)
    for a, b in zip(back.weights, net.weights):
        np.testing.assert_array_equal(a, b)


def test_from_torch_reads_common_stacks():
    torch.manual_seed(0)
    stack = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Sequential(nn.Linear(6, 5), nn.ReLU()),
                          nn.Linear(5, 3, bias=False), nn.Softmax(dim=-1))
    net = fastbp.Network.from_torch(stack)
    assert (net.widths, net.activation, net.output, net.dtype) == (
        [4, 6, 5, 3], "relu", "softmax", np.float32)
    np.testing.assert_array_equal(net.weights[2][0], 0)       # no bias: a zero bias row
    X = np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(net.forward(X), stack(torch.from_numpy(X)).numpy(),
                                   rtol=1e-5, atol=1e-6)
    # Linear after Linear: identity hidden units; a last Identity: a linear output
    plain = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2), nn.Identity()).double()
    net = fastbp.Network.from_torch(plain)
    assert (net.activation, net.output, net.dtype) == ("identity", "linear", np.float64)
    # float16 parameters with dtype=
    half = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1), nn.Sigmoid()).half()
    assert fastbp.Network.from_torch(half, dtype="float64").dtype == np.float64


@pytest.mark.parametrize("stack,message", [
    (lambda: nn.Sequential(nn.Linear(3, 4), nn.Dropout(), nn.Linear(4, 1)),
     r"module 1 \(Dropout\(p=0.5, inplace=False\)\) cannot be mapped"),
    (lambda: nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 1)),
     r"module 1 \(GELU\(approximate='none'\)\) cannot be mapped: fastbp takes Linear modules "
     r"and, after each, a hidden activation"),
    (lambda: nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2), nn.ReLU()),
     r"module 3 \(ReLU\(\)\) cannot be mapped: .* the output \(Tanh, Sigmoid, Softmax or none\)"),
    (lambda: nn.Sequential(nn.Linear(3, 4), nn.Softmax(dim=1), nn.Linear(4, 2)),
     r"module 1 \(Softmax\(dim=1\)\) cannot be mapped: Softmax is fastbp's output only"),
    (lambda: nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2), nn.Softmax(dim=0)),
     r"module 3 \(Softmax\(dim=0\)\) cannot be mapped: .*dim=0"),
    (lambda: nn.Sequential(nn.Tanh(), nn.Linear(3, 1)),
     r"module 0 \(Tanh\(\)\) cannot be mapped: a fastbp network starts with a Linear"),
    (lambda: nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Tanh(), nn.Linear(4, 1)),
     r"module 2 \(Tanh\(\)\) cannot be mapped: a second activation after the Linear module 0"),
    (lambda: nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(5, 1)),
     r"module 2 \(Linear\(in_features=5.*\)\) takes 5 inputs, but the Linear before it has 4"),
    (lambda: nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 4), nn.ReLU(),
                           nn.Linear(4, 1)),
     r"the one after Linear module 2 is 'relu' and the one after 0 is 'tanh'"),
    (lambda: nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.Tanh(), nn.LayerNorm(4))),
     r"module 1.1 \(LayerNorm"),
    (lambda: nn.Sequential(),
     "module holds no Linear module"),
    (lambda: nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)).half(),
     r"must all be float32 or all float64 \(else pass dtype=\), got \['torch.float16'\]"),
])
def test_from_torch_names_the_first_module_it_cannot_map(stack, message):
    with pytest.raises(ValueError, match=message):
        fastbp.Network.from_torch(stack())


def test_from_torch_needs_a_sequential():
    with pytest.raises(TypeError, match="module must be a torch.nn.Sequential .*got "
                                        "torch.nn.modules.linear.Linear"):
        fastbp.Network.from_torch(nn.Linear(2, 1))


def test_missing_torch_names_the_extra(monkeypatch):
    net = fastbp.Network([2, 1])
    monkeypatch.setitem(sys.modules, "torch", None)     # `import torch` now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "fastbp\[torch\]"'):
        net.to_torch()
    with pytest.raises(ImportError, match=r'pip install "fastbp\[torch\]"'):
        fastbp.Network.from_torch(object())


def test_to_torch_refuses_a_poisson_output():
    net = fastbp.Network([3, 4, 2], output="poisson", seed=0)
    with pytest.raises(ValueError, match="output='poisson' .* has no module in torch.nn"):
        net.to_torch()
