"""fastbp.onnx: the exported graph, run by ONNX Runtime, computes Network.forward.

onnx and onnxruntime are in the `test` extra: these tests run (no skip) wherever the suite does.
"""
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime
import pytest

import fastbp
from _helpers import FORWARD_TOL, assert_forward_equal, forward_error_scale
from fastbp.onnx import DEFAULT_OPSET, MIN_OPSET, to_onnx

ACTIVATIONS = ["tanh", "relu", "logistic", "identity"]
OUTPUTS = ["tanh", "linear", "logistic", "softmax"]
def session(model):
    return onnxruntime.InferenceSession(model.SerializeToString(),
                                        providers=["CPUExecutionProvider"])


def run(model, X, input_name="X"):
    return session(model).run(None, {input_name: X})[0]


def inputs(d0, dtype, seed=0):
    """Rows of ordinary size, rows 30 times larger (large |s|: saturated tanh and logistic
    units, softmax rows of one dominant class, large linear outputs) and a row of zeros."""
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.standard_normal((100, d0)), 30 * rng.standard_normal((100, d0)),
                   np.zeros((1, d0))])
    return X.astype(dtype)


def network(widths, output, activation, dtype, seed=1):
    weights = [2 * w for w in fastbp.init_weights(widths, seed=seed)]
    return fastbp.Network(widths, output=output, activation=activation, dtype=dtype,
                          weights=weights)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_onnx_runtime_computes_forward(activation, output, dtype):
    widths = [5, 8, 6, 3]
    net = network(widths, output, activation, dtype)
    X = inputs(widths[0], dtype)
    # the large inputs do reach large |s| in the first layer
    s1 = X.astype(np.float64) @ net.weights[0][1:] + net.weights[0][0]
    assert np.abs(s1).max() > 50
    model = net.to_onnx()
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == DEFAULT_OPSET
    got = run(model, X)
    assert_forward_equal(got, net, X)
    if output == "softmax":
        np.testing.assert_allclose(got.sum(axis=1), 1, rtol=FORWARD_TOL[dtype])
    if output == "logistic":
        assert ((got >= 0) & (got <= 1)).all()


@pytest.mark.parametrize("widths,output", [
    (widths, output) for widths in ([4, 1], [3, 2], [2, 5, 4, 3, 1], [6, 40, 2])
    for output in OUTPUTS if output != "softmax" or widths[-1] > 1])  # softmax: 2 units or more
def test_shapes_and_a_dynamic_batch(widths, output):
    net = network(widths, output, "relu", "float64")
    sess = session(net.to_onnx())
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert (inp.name, inp.shape, out.name, out.shape) == ("X", ["N", widths[0]], "output",
                                                          ["N", widths[-1]])
    for n in (1, 7, 201):        # one session, any batch size
        X = inputs(widths[0], "float64", seed=n)[:n]
        assert_forward_equal(sess.run(None, {"X": X})[0], net, X)


@pytest.mark.parametrize("opset", [MIN_OPSET, 11, DEFAULT_OPSET, 17, 21])
def test_opsets(opset):
    net = network([3, 4, 3], "softmax", "logistic", "float64")
    model = net.to_onnx(opset=opset)
    assert model.opset_import[0].version == opset
    assert model.ir_version == max(4, onnx.helper.find_min_ir_version_for(model.opset_import))
    X = inputs(3, "float64")
    assert_forward_equal(run(model, X), net, X)


def test_weights_list_dtype_names_metadata_and_file(tmp_path):
    net = network([3, 4, 2], "logistic", "identity", "float64")
    before = [w.copy() for w in net.weights]
    path = tmp_path / "net.onnx"
    model = to_onnx(net.weights, output="logistic", activation="identity", dtype="float32",
                    input_name="features", output_name="proba", file=path)
    for a, b in zip(net.weights, before):   # the caller's arrays are untouched
        np.testing.assert_array_equal(a, b)
    assert [n.op_type for n in model.graph.node] == ["Gemm", "Gemm", "Sigmoid", "Identity"]
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    props = {p.key: p.value for p in model.metadata_props}
    assert props == {"fastbp_widths": "[3, 4, 2]", "fastbp_output": "logistic",
                     "fastbp_activation": "identity"}
    assert model.producer_name == "fastbp" and model.producer_version == fastbp.__version__
    loaded = onnx.load(path)
    X = inputs(3, "float32")
    got = run(loaded, X, "features")
    net32 = fastbp.Network([3, 4, 2], output="logistic", activation="identity", dtype="float32",
                           weights=net.weights)
    assert_forward_equal(got, net32, X)
    # a list of weights defaults to fastbp.forward's units: tanh and tanh
    default = to_onnx(net.weights)
    assert [n.op_type for n in default.graph.node] == ["Gemm", "Tanh", "Gemm", "Tanh",
                                                       "Identity"]


def test_reference_network_exports_too():
    ref = fastbp.reference.Network([2, 3, 1], output="linear", seed=0)
    X = inputs(2, "float64")
    assert_forward_equal(run(to_onnx(ref), X), ref, X)


# ------------------------------------------------------------------------------------------------
# Bad input

def test_opset_too_old_or_too_new():
    net = network([3, 4, 3], "softmax", "relu", "float64")
    with pytest.raises(ValueError, match=r"opset=6 is too old for the operator Gemm .*from "
                                         r"opset 7"):
        net.to_onnx(opset=6)
    newest = onnx.defs.onnx_opset_version()
    with pytest.raises(ValueError, match=f"opset={newest + 1} is newer than the newest the "
                                         f"installed onnx knows"):
        net.to_onnx(opset=newest + 1)
    with pytest.raises(TypeError, match="opset must be an integer or None, got '13'"):
        net.to_onnx(opset="13")


def test_bad_arguments():
    net = network([3, 4, 1], "tanh", "tanh", "float64")
    with pytest.raises(TypeError, match="output is given by the Network"):
        to_onnx(net, output="linear")
    with pytest.raises(TypeError, match="network_or_weights must be a fastbp.Network or a list"):
        to_onnx(np.zeros((4, 1)))
    with pytest.raises(ValueError, match="output must be one of"):
        to_onnx(net.weights, output="relu")
    with pytest.raises(ValueError, match="output='softmax' needs at least 2 output units"):
        to_onnx(net.weights, output="softmax")
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64', got float16"):
        net.to_onnx(dtype="float16")
    with pytest.raises(ValueError, match="input_name and output_name must differ"):
        net.to_onnx(input_name="a", output_name="a")
    with pytest.raises(TypeError, match="input_name must be a non-empty string"):
        net.to_onnx(input_name="")
    bad = [w.copy() for w in net.weights]
    bad[1][0, 0] = np.nan
    with pytest.raises(ValueError, match=r"weights\[1\]"):
        to_onnx(bad)
    big = [w.copy() for w in net.weights]
    big[0][1, 0] = 1e300
    with pytest.raises(ValueError, match=r"weights\[0\] holds values too large for dtype float32"):
        to_onnx(big, dtype="float32")


def test_missing_onnx_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)     # `import onnx` now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "fastbp\[onnx\]"'):
        fastbp.Network([2, 1]).to_onnx()


def test_import_fastbp_does_not_import_onnx_or_torch():
    code = ("import sys, fastbp, fastbp.sklearn; "
            "print(sorted(m for m in ('onnx', 'onnxruntime', 'torch', 'skops') "
            "if m in sys.modules))")
    # from tests/, as pytest imports it: from the checkout's root the source tree, which has no
    # compiled module, would shadow the installed fastbp
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, "-c", code], cwd=here, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_onnx_runtime_computes_a_poisson_output(activation, dtype):
    """output="poisson": an Exp node after the last Gemm, the rates exp(s(L)) (inputs of the
    ordinary size: exp of the large ones' s(L) would leave float32's range)."""
    net = network([5, 8, 6, 3], "poisson", activation, dtype)
    X = inputs(5, dtype)[:100]
    model = net.to_onnx()
    onnx.checker.check_model(model, full_check=True)
    assert [n.op_type for n in model.graph.node][-2:] == ["Exp", "Identity"]
    got = run(model, X)
    assert (got > 0).all()
    # exp carries the rounding error of s(L) as a relative error of the rate: the forward-error
    # bound of assert_forward_equal, relative to x(L)
    want = net.forward(X)
    assert got.dtype == want.dtype and got.shape == want.shape
    scale = want * np.maximum(1.0, forward_error_scale(net, X))
    err = np.abs(got.astype(np.float64) - want) / scale
    assert err.max() <= FORWARD_TOL[dtype], err.max()
