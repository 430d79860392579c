"""ONNX export: a fastbp network as an ONNX model, for ONNX Runtime and every other ONNX runner.

    from fastbp.onnx import to_onnx
    model = to_onnx(net)                       # an onnx.ModelProto
    onnx.save(model, "net.onnx")

The graph is the network's forward pass, layer by layer: for l = 1, ..., L one ``Gemm`` node
(s(l) = x(l-1) W + b, with W = W(l)[1:] and b = W(l)[0], the bias row) and the layer's activation
node: ``Tanh``, ``Relu`` or ``Sigmoid`` for the hidden activations "tanh", "relu" and "logistic"
(none for "identity"), and for the output ``Tanh`` ("tanh"), ``Sigmoid`` ("logistic"), ``Softmax``
over the units (``axis=1``, "softmax") or none ("linear"); an ``Identity`` node last names the
result. Its one input (default name "X") has
shape (N, d(0)), its one output (default "output") shape (N, d(L)); N is a symbolic dimension
(any batch size). The output holds x(L), what `fastbp.forward` returns: values for "tanh" and
"linear"; for "logistic" each unit's probability of its label being 1; for "softmax" each row a
distribution over the classes. Both are float64 or float32, the weights' dtype (or `dtype`).

Opset: 13 by default, the newest version of every operator the graph uses with these types (from
opset 13 on, nothing it relies on has changed); any opset from 7 (``Gemm`` with a bias broadcast
over the batch, from opset 7) to the newest the installed ``onnx`` knows can be asked for. The
model's IR version is the oldest that carries its opset (4 at least: the weights are initializers
that are not graph inputs), so older runtimes load it too.

``onnx`` is an optional dependency (pip install "fastbp[onnx]"); `import fastbp` does not import
this module.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from . import _checks

__all__ = ["to_onnx", "DEFAULT_OPSET", "MIN_OPSET"]

#: The opset of the models `to_onnx` writes when none is asked for.
DEFAULT_OPSET = 13

# The oldest opset in which each operator the graph uses has the form it relies on: Gemm from 7
# (its bias C broadcast over the rows; Gemm 1-6 need a `broadcast` attribute), the activations
# from 6 (1-5 carry the legacy `consumed_inputs`), Softmax from 1 (on a 2-D input its versions
# before 13 and after agree along axis 1), Identity from 1.
_OPERATOR_OPSET = {"Gemm": 7, "Tanh": 6, "Sigmoid": 6, "Relu": 6, "Softmax": 1, "Identity": 1,
                   "Exp": 6}

#: The oldest opset `to_onnx` writes (that of ``Gemm``, which every graph holds).
MIN_OPSET = max(_OPERATOR_OPSET.values())

# fastbp's units as ONNX operators (None: no node)
_HIDDEN = {"tanh": "Tanh", "relu": "Relu", "logistic": "Sigmoid", "identity": None}
_OUTPUT = {"tanh": "Tanh", "linear": None, "logistic": "Sigmoid", "softmax": "Softmax",
           "poisson": "Exp"}


def _model_of(network_or_weights, output, activation):
    """(weights, widths, dtype, output, activation) of a Network or of a list of weights. A
    Network is told by its attributes (this module is below fastbp.network, which imports it)."""
    if not isinstance(network_or_weights, (list, tuple)) and all(
            hasattr(network_or_weights, a) for a in ("weights", "output", "activation")):
        for name, value in (("output", output), ("activation", activation)):
            if value is not None:
                fixed = getattr(network_or_weights, name)
                raise TypeError(f"{name} is given by the Network ({fixed!r}); pass {name}= only "
                                f"with a list of weights, got {name}={value!r}")
        net = network_or_weights
        weights, widths, dtype = _checks.check_weights(net.weights)
        return weights, widths, dtype, net.output, net.activation
    if not isinstance(network_or_weights, (list, tuple)):
        raise TypeError(f"network_or_weights must be a fastbp.Network or a list of weight arrays "
                        f"W(1), ..., W(L), got {type(network_or_weights).__name__}")
    weights, widths, dtype = _checks.check_weights(network_or_weights)
    output = _checks.check_output("tanh" if output is None else output)
    activation = _checks.check_activation("tanh" if activation is None else activation)
    _checks.check_output_width(output, widths)
    return weights, widths, dtype, output, activation


def _check_opset(opset, operators, newest: int) -> int:
    if opset is None:
        opset = DEFAULT_OPSET
    if isinstance(opset, (bool, np.bool_)) or not isinstance(opset, (int, np.integer)):
        raise TypeError(f"opset must be an integer or None, got {opset!r}")
    opset = int(opset)
    for op in sorted(operators, key=lambda o: -_OPERATOR_OPSET[o]):
        if opset < _OPERATOR_OPSET[op]:
            raise ValueError(f"opset={opset} is too old for the operator {op} this graph needs "
                             f"(from opset {_OPERATOR_OPSET[op]}; fastbp writes opsets "
                             f"{MIN_OPSET} to {newest})")
    if opset > newest:
        raise ValueError(f"opset={opset} is newer than the newest the installed onnx knows "
                         f"({newest})")
    return opset


def to_onnx(network_or_weights, *, output: str | None = None, activation: str | None = None,
            dtype=None, opset: int | None = None, input_name: str = "X",
            output_name: str = "output", file=None) -> Any:
    """Convert a network to an ONNX model that computes its forward pass.

    Parameters
    ----------
    network_or_weights : Network or list of ndarray
        A `fastbp.Network` (its weights, output and activation), or the weights
        W(1), ..., W(L) themselves, W(l) of shape (d(l-1)+1, d(l)), row 0 the bias.
    output : {"tanh", "linear", "logistic", "softmax", "poisson"} or None, default=None
        The output activation, with a list of weights (None: "tanh", as `fastbp.forward`);
        must be None with a Network.
    activation : {"tanh", "relu", "logistic", "identity"} or None, default=None
        The hidden activation, with a list of weights (None: "tanh"); must be None with a
        Network.
    dtype : {"float64", "float32"} or None, default=None
        The dtype of the model's input, weights and output (None: the weights' dtype).
    opset : int or None, default=None
        The ONNX opset (None: `DEFAULT_OPSET`, 13); from `MIN_OPSET` (7) to the newest the
        installed onnx knows.
    input_name, output_name : str, default="X", "output"
        The names of the graph's input and output.
    file : str, path-like or None, default=None
        Also write the model there (``onnx.save_model``).

    Returns
    -------
    onnx.ModelProto
        The model, checked by ``onnx.checker.check_model``. Input `input_name` of shape
        (N, d(0)), output `output_name` of shape (N, d(L)) holding x(L) (see Notes), N any
        batch size.

    Raises
    ------
    ImportError
        If onnx is not installed (pip install "fastbp[onnx]").
    TypeError
        If `network_or_weights` is neither a Network nor a list of arrays, `output` or
        `activation` is given with a Network, or `opset` is not an integer.
    ValueError
        If the weights, `output`, `activation` or `dtype` are not valid, or `opset` is older
        than an operator of the graph needs or newer than onnx knows.

    See Also
    --------
    fastbp.Network.to_onnx : The same, as a method.

    Notes
    -----
    The graph is, for l = 1, ..., L, ``Gemm(x(l-1), W(l)[1:], W(l)[0])`` followed by the
    layer's activation: ``Tanh``, ``Relu`` or ``Sigmoid`` for the hidden activations "tanh",
    "relu", "logistic" (no node for "identity"); for the output ``Tanh`` ("tanh"),
    ``Sigmoid`` ("logistic", each unit the probability of its label being 1), ``Softmax``
    along axis 1 ("softmax", each row a distribution over the classes), ``Exp`` ("poisson",
    the rates) or none ("linear").
    So the output is what `fastbp.forward` returns: values for "tanh" and "linear",
    probabilities for "logistic" and "softmax". A last ``Identity`` node gives that value
    the name `output_name`. The model's metadata (``metadata_props``) records the widths,
    output and activation.

    Examples
    --------
    >>> import numpy as np
    >>> import fastbp
    >>> from fastbp.onnx import to_onnx
    >>> net = fastbp.Network([2, 3, 2], output="softmax", activation="relu", seed=0)
    >>> model = to_onnx(net)
    >>> [node.op_type for node in model.graph.node]
    ['Gemm', 'Relu', 'Gemm', 'Softmax', 'Identity']
    >>> model.opset_import[0].version
    13
    >>> import onnxruntime
    >>> session = onnxruntime.InferenceSession(model.SerializeToString(),
    ...                                        providers=["CPUExecutionProvider"])
    >>> X = np.array([[0.5, -1.0], [1.0, 2.0]])
    >>> bool(np.allclose(session.run(None, {"X": X})[0], net.forward(X), rtol=1e-12))
    True
    """
    onnx = _checks.import_optional("onnx", "fastbp.onnx", "onnx")
    from onnx import TensorProto, helper, numpy_helper

    weights, widths, w_dtype, output, activation = _model_of(network_or_weights, output,
                                                             activation)
    dtype = w_dtype if dtype is None else _checks.check_dtype(dtype)
    for name, value in (("input_name", input_name), ("output_name", output_name)):
        if not isinstance(value, str) or not value:
            raise TypeError(f"{name} must be a non-empty string, got {value!r}")
    if input_name == output_name:
        raise ValueError(f"input_name and output_name must differ, both are {input_name!r}")
    L = len(weights)
    ops = [_HIDDEN[activation]] * (L - 1) + [_OUTPUT[output]]
    operators = {"Gemm", "Identity"} | {op for op in ops if op is not None}
    opset = _check_opset(opset, operators, onnx.defs.onnx_opset_version())
    elem = TensorProto.DOUBLE if dtype == np.float64 else TensorProto.FLOAT

    nodes, initializers = [], []
    x = input_name
    for l, (w, op) in enumerate(zip(weights, ops), start=1):
        with np.errstate(over="ignore"):
            w = w.astype(dtype)
        if not np.isfinite(w).all():
            raise ValueError(f"weights[{l - 1}] holds values too large for dtype {dtype}")
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(w[1:]), f"W{l}"))
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(w[0]), f"b{l}"))
        s = f"s{l}"
        nodes.append(helper.make_node("Gemm", [x, f"W{l}", f"b{l}"], [s], name=f"layer{l}"))
        x = s
        if op is not None:
            attrs: dict[str, Any] = {"axis": 1} if op == "Softmax" else {}
            nodes.append(helper.make_node(op, [s], [f"x{l}"], name=f"theta{l}", **attrs))
            x = f"x{l}"
    # the last value takes the output's name through an Identity node, so that no intermediate
    # name can clash with the names the caller chose
    nodes.append(helper.make_node("Identity", [x], [output_name], name="output"))
    graph = helper.make_graph(
        nodes, "fastbp_network",
        [helper.make_tensor_value_info(input_name, elem, ["N", widths[0]])],
        [helper.make_tensor_value_info(output_name, elem, ["N", widths[-1]])],
        initializers,
        doc_string=(f"fastbp network {widths}, activation={activation!r}, output={output!r}: "
                    f"{output_name} = x(L) of each row of {input_name}"))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="fastbp", producer_version=_version())
    model.ir_version = max(4, helper.find_min_ir_version_for(list(model.opset_import)))
    helper.set_model_props(model, {"fastbp_widths": json.dumps(widths),
                                   "fastbp_output": output, "fastbp_activation": activation})
    onnx.checker.check_model(model, full_check=True)
    if file is not None:
        onnx.save_model(model, file)
    return model


def _version() -> str:
    from . import __version__
    return __version__
