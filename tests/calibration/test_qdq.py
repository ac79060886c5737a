"""Q/DQ placement, dtypes and scales of calibration.qdq, for INT8 and FP8."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from calibration.qdq import FORMATS, activation_names, find_targets, insert_qdq, quantize_weight
from calibration.ranges import measure_amax
from runtime import contract
from tests.calibration.conftest import random_clips

FLOAT_ONLY = {"Add", "LayerNormalization", "Softmax", "Erf", "Relu", "Mul", "Div"}


@pytest.fixture(scope="module")
def tiny_amax(tiny_onnx):
    return measure_amax(tiny_onnx, random_clips(4, seed=2), "minmax")


@pytest.fixture(scope="module", params=["int8", "fp8"])
def quantized(request, tiny_onnx, tiny_amax):
    return request.param, insert_qdq(onnx.load(str(tiny_onnx)), tiny_amax, request.param)


def consumers(graph: onnx.GraphProto, tensor: str) -> list[onnx.NodeProto]:
    return [node for node in graph.node if tensor in node.input]


def initializers(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    return {init.name: numpy_helper.to_array(init) for init in graph.initializer}


def test_every_linear_layer_gets_qdq_and_attention_matmuls_stay_float(tiny_onnx):
    graph = onnx.load(str(tiny_onnx)).graph
    targets = find_targets(graph)
    ops = [graph.node[t.node_index].op_type for t in targets if t.axis is None]
    # stam_tiny: patch Conv, 2 spatial blocks x 4 linears, 2 temporal layers x 4 linears, the Gemm head
    assert ops.count("Conv") == 1 and ops.count("Gemm") == 1 and ops.count("MatMul") == 16
    matmuls = sum(node.op_type == "MatMul" for node in graph.node)
    assert matmuls == 16 + 8  # the 8 activation x activation MatMuls of attention are left out
    assert len(activation_names(graph)) == 18


def test_dq_outputs_feed_only_quantized_ops(quantized):
    precision, model = quantized
    graph = model.graph
    for node in graph.node:
        if node.op_type == "DequantizeLinear":
            users = {user.op_type for user in consumers(graph, node.output[0])}
            assert users and users <= {"Conv", "MatMul", "Gemm"}, (node.name, users)
        if node.op_type in FLOAT_ONLY:
            producers = {n.op_type for n in graph.node if set(n.output) & set(node.input)}
            assert "DequantizeLinear" not in producers, node.name


def test_symmetric_per_tensor_activations_per_channel_weights(quantized, tiny_amax):
    precision, model = quantized
    fmt, values = FORMATS[precision], initializers(model.graph)
    dtype = {"int8": TensorProto.INT8, "fp8": TensorProto.FLOAT8E4M3FN}[precision]
    stored = {init.name: init.data_type for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        data, scale, zero = node.input
        assert stored[zero] == dtype and not np.any(values[zero].astype(np.float32))
        if node.op_type == "QuantizeLinear":  # activations: one scale, amax / largest value
            assert values[scale].shape == () and values[scale] == pytest.approx(
                tiny_amax[data] / fmt.max_value, rel=1e-6
            )
        elif data in values:  # weights: stored quantized, one scale per output channel
            axis = next(a.i for a in node.attribute if a.name == "axis")
            assert stored[data] == dtype and values[scale].shape == (values[data].shape[axis],)


def test_checker_and_opset(quantized):
    precision, model = quantized
    onnx.checker.check_model(model, full_check=True)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    assert opset == (19 if precision == "fp8" else contract.OPSET)


def test_fp32_weights_are_gone(quantized, tiny_onnx):
    _, model = quantized
    names = {init.name for init in model.graph.initializer}
    assert "head.weight" not in names and "patch_embed.proj.weight" not in names
    assert "head.weight_quantized" in names and "patch_embed.proj.bias" in names  # biases stay float


@pytest.mark.parametrize("precision", ["int8", "fp8"])
def test_quantized_weights_reconstruct_within_half_a_step(precision):
    weight = np.random.default_rng(0).normal(size=(48, 32)).astype(np.float32)
    weight[:, 5] = 0.0  # a dead output channel must not divide by zero
    values, scale = quantize_weight(weight, 1, FORMATS[precision])
    restored = values.astype(np.float32) * scale
    assert scale.shape == (32,) and scale[5] == 1.0
    if precision == "int8":
        assert np.abs(values).max() == 127 and np.all(np.abs(restored - weight) <= scale / 2 + 1e-7)
    else:  # E4M3 keeps 3 mantissa bits: relative error at most 2^-4 above the subnormal range
        assert values.dtype == ml_dtypes.float8_e4m3fn and float(np.abs(values.astype(np.float32)).max()) == 448.0
        normal = np.abs(weight) > scale * 2.0**-6
        assert np.all(np.abs(restored - weight)[normal] <= np.abs(weight)[normal] * 2.0**-4)


def _linear_graph() -> onnx.ModelProto:
    """x (2, 16) @ W (16, 8) + b: the smallest graph with one activation and one weight to quantize."""
    rng = np.random.default_rng(3)
    weight = numpy_helper.from_array(rng.normal(size=(16, 8)).astype(np.float32), "W")
    bias = numpy_helper.from_array(rng.normal(size=8).astype(np.float32), "b")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])],
        initializer=[weight, bias],
    )
    # opset 19: the reference evaluator implements DequantizeLinear from 19 on
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


@pytest.mark.parametrize("precision", ["int8", "fp8"])
def test_onnx_runtime_matches_the_onnx_reference_on_qdq(precision):
    """Both runtimes agree with each other on our graph, and with a numpy fake-quant of it."""
    model = insert_qdq(_linear_graph(), {"x": 2.5}, precision)
    x = np.random.default_rng(4).uniform(-3, 3, size=(2, 16)).astype(np.float32)  # some values saturate
    expected = ReferenceEvaluator(model).run(None, {"x": x})[0]
    actual = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
    fmt, values = FORMATS[precision], initializers(model.graph)
    step = np.float32(2.5 / fmt.max_value)
    if precision == "int8":  # QuantizeLinear saturates to the full int8 range, -128 included
        rounded = np.clip(np.rint(x / step), -128, 127)
    else:
        rounded = np.clip(x / step, -448, 448).astype(ml_dtypes.float8_e4m3fn).astype(np.float32)
    weight = values["W_quantized"].astype(np.float32) * values["W_scale"]
    np.testing.assert_allclose(expected, (rounded * step) @ weight + values["b"], rtol=1e-4, atol=1e-4)


def test_missing_range_is_an_error(tiny_onnx):
    from runtime.errors import StamError

    with pytest.raises(StamError, match="no range"):
        insert_qdq(onnx.load(str(tiny_onnx)), {}, "int8")
