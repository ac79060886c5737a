"""export.fp16: float32 I/O, fp16 weights and compute, fp32 islands, and parity with the fp32 graph on ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from export.fp16 import KEEP_FP32_OPS, convert_to_fp16, elem_types
from runtime import contract

FP32, FP16 = TensorProto.FLOAT, TensorProto.FLOAT16


@pytest.fixture(scope="module")
def tiny_pair(tiny_onnx):
    fp32 = onnx.load(str(tiny_onnx))
    return fp32, convert_to_fp16(fp32)


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in model.graph.node for out in node.output}


def _is_fp32_source(model: onnx.ModelProto, name: str) -> bool:
    """Whether a tensor is float32, by ONNX shape inference over the converted graph."""
    return elem_types(model).get(name) == FP32


def test_checker_passes_and_io_stays_float32(tiny_pair):
    _, fp16 = tiny_pair
    onnx.checker.check_model(fp16, full_check=True)
    assert [v.type.tensor_type.elem_type for v in (*fp16.graph.input, *fp16.graph.output)] == [FP32, FP32]
    assert [v.name for v in fp16.graph.input] == [contract.INPUT_NAME]
    assert [v.name for v in fp16.graph.output] == [contract.OUTPUT_NAME]


def test_weights_and_matmuls_are_fp16(tiny_pair):
    _, fp16 = tiny_pair
    inits = {i.name: i for i in fp16.graph.initializer}
    compute = [n for n in fp16.graph.node if n.op_type in ("MatMul", "Conv", "Gemm")]
    weights = [inits[name] for n in compute for name in n.input if name in inits]
    assert len(weights) > len(compute) // 2 and all(w.data_type == FP16 for w in weights)
    for node in compute:  # attention's activation x activation products too
        assert not any(_is_fp32_source(fp16, name) for name in node.input if name), node.name
    big_fp32 = [i.name for i in inits.values() if i.data_type == FP32 and np.prod(i.dims) > 1]
    consumers = {n.op_type for n in fp16.graph.node for name in n.input if name in big_fp32}
    assert consumers <= {"LayerNormalization"}  # only the kept ops' own parameters stay float32


def test_layernorm_and_softmax_run_in_float32(tiny_pair):
    _, fp16 = tiny_pair
    kept = [n for n in fp16.graph.node if n.op_type in ("LayerNormalization", "Softmax")]
    assert kept
    for node in kept:
        assert all(_is_fp32_source(fp16, name) for name in node.input if name), node.name


def test_shape_arithmetic_stays_float32(tiny_pair):
    """The frame-index math of the position interpolation: fp16 would move floor() boundaries."""
    _, fp16 = tiny_pair
    ranges = [n for n in fp16.graph.node if n.op_type == "Range"]
    assert ranges and all(_is_fp32_source(fp16, name) for n in ranges for name in n.input)
    floors = [n for n in fp16.graph.node if n.op_type == "Floor"]
    types = {v.name: v.type.tensor_type.elem_type for v in fp16.graph.value_info}
    assert floors and all(types.get(n.output[0], FP32) == FP32 for n in floors)


def test_source_model_is_left_untouched(tiny_pair, tiny_onnx):
    fp32, _ = tiny_pair
    assert fp32.SerializeToString() == onnx.load(str(tiny_onnx)).SerializeToString()


@pytest.mark.parametrize("batch, frames", [(1, 8), (2, 3), (1, 16), (3, 5), (2, 1)])
def test_parity_with_fp32_on_onnxruntime(tiny_pair, batch, frames):
    fp32, fp16 = tiny_pair
    inputs = np.random.default_rng(batch * 100 + frames).random(contract.input_shape(batch, frames), np.float32)
    expected = _session(fp32).run(None, {contract.INPUT_NAME: inputs})[0]
    actual = _session(fp16).run(None, {contract.INPUT_NAME: inputs})[0]
    assert actual.dtype == np.float32
    np.testing.assert_array_equal(actual.argmax(-1), expected.argmax(-1))
    diff = np.abs(actual - expected).max()
    scale = max(1.0, float(np.abs(expected).max()))
    assert 0 < diff <= 1e-2 * scale  # it really ran in fp16, and the error is bounded


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    onnx.checker.check_model(model, full_check=True)
    return _session(model).run(None, feeds)


def _model(nodes, inputs, outputs, initializers=(), opset=18) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _input(name="x", shape=(2, 8)):
    return helper.make_tensor_value_info(name, FP32, list(shape))


def test_decomposed_layernorm_keeps_its_statistics_in_float32():
    scale = numpy_helper.from_array(np.linspace(0.5, 1.5, 8, dtype=np.float32), "scale")
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    eps = numpy_helper.from_array(np.array(1e-5, np.float32), "eps")
    axes = numpy_helper.from_array(np.array([-1], np.int64), "axes")
    nodes = [
        helper.make_node("ReduceMean", ["x", "axes"], ["mean"]),
        helper.make_node("Sub", ["x", "mean"], ["centered"]),
        helper.make_node("Pow", ["centered", "two"], ["squared"]),
        helper.make_node("ReduceMean", ["squared", "axes"], ["var"]),
        helper.make_node("Add", ["var", "eps"], ["var_eps"]),
        helper.make_node("Sqrt", ["var_eps"], ["std"]),
        helper.make_node("Div", ["centered", "std"], ["normed"]),
        helper.make_node("Mul", ["normed", "scale"], ["y"]),
    ]
    model = _model(nodes, [_input()], [helper.make_tensor_value_info("y", FP32, [2, 8])], [scale, two, eps, axes])
    converted = convert_to_fp16(model)
    by_output = _producers(converted)
    for name in ("var_eps", "std", "var", "squared"):
        node = by_output[name]
        assert all(
            _is_fp32_source(converted, i) or by_output.get(i, node).op_type in KEEP_FP32_OPS | {"Add"}
            for i in node.input
            if i != "axes"
        ), name
    assert by_output["normed"].op_type == "Div"
    x = np.random.default_rng(0).normal(0, 300, (2, 8)).astype(np.float32)  # squares overflow fp16
    expected = _run(model, {"x": x})[0]
    actual = _run(converted, {"x": x})[0]
    assert np.isfinite(actual).all()
    np.testing.assert_allclose(actual, expected, atol=5e-3 * np.abs(expected).max())


def test_constants_attributes_and_shared_initializers():
    """Constant node, ConstantOfShape value, Cast `to`, and one initializer read in both precisions."""
    w = numpy_helper.from_array(np.full((8, 8), 0.5, np.float32), "w")
    nodes = [
        helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.full((8,), 2.0, np.float32))),
        helper.make_node("MatMul", ["x", "w"], ["mm"]),
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("ConstantOfShape", ["shape"], ["ones"], value=numpy_helper.from_array(np.ones(1, np.float32))),
        helper.make_node("Mul", ["mm", "ones"], ["scaled"]),
        helper.make_node("Add", ["scaled", "c"], ["shifted"]),
        helper.make_node("Cast", ["shifted"], ["as_float"], to=FP32),
        helper.make_node("Softmax", ["as_float"], ["soft"]),
        helper.make_node("Add", ["soft", "w"], ["y"]),  # w read again by a float32 (follow) op
    ]
    model = _model(nodes, [_input()], [helper.make_tensor_value_info("y", FP32, [8, 8])], [w])
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 8
    converted = convert_to_fp16(model)
    inits = {i.name: i.data_type for i in converted.graph.initializer}
    assert inits == {"w": FP32, "w__fp16": FP16}
    x = np.random.default_rng(1).random((8, 8), np.float32)
    np.testing.assert_allclose(_run(converted, {"x": x})[0], _run(model, {"x": x})[0], atol=2e-3)
    cast = next(n for n in converted.graph.node if n.output[0] == "as_float")
    assert cast.attribute[0].i == FP16  # a data Cast to float now casts to float16
    constant = next(n for n in converted.graph.node if n.output[0] == "c")
    assert constant.attribute[0].t.data_type == FP16


def test_subgraph_reads_outer_fp16_tensor_through_a_cast():
    then_graph = helper.make_graph(
        [helper.make_node("Relu", ["mm"], ["out_then"])],
        "then",
        [],
        [helper.make_tensor_value_info("out_then", FP32, None)],
    )
    else_graph = helper.make_graph(
        [helper.make_node("Neg", ["mm"], ["out_else"])],
        "else",
        [],
        [helper.make_tensor_value_info("out_else", FP32, None)],
    )
    w = numpy_helper.from_array(np.eye(8, dtype=np.float32), "w")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["mm"]),
        helper.make_node("If", ["cond"], ["y"], then_branch=then_graph, else_branch=else_graph),
    ]
    cond = helper.make_tensor_value_info("cond", TensorProto.BOOL, [])
    model = _model(nodes, [_input(), cond], [helper.make_tensor_value_info("y", FP32, [2, 8])], [w])
    converted = convert_to_fp16(model)
    x = np.random.default_rng(2).random((2, 8), np.float32)
    for flag in (True, False):
        feeds = {"x": x, "cond": np.array(flag)}
        np.testing.assert_allclose(
            _session(converted).run(None, feeds)[0], _session(model).run(None, feeds)[0], atol=1e-3
        )


def test_values_beyond_fp16_range_are_clipped_with_a_warning():
    w = numpy_helper.from_array(np.array([[1e6, -1e6], [1.0, 2.0]], np.float32), "w")
    model = _model(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        [_input(shape=(1, 2))],
        [helper.make_tensor_value_info("y", FP32, [1, 2])],
        [w],
    )
    with pytest.warns(UserWarning, match="clipped"):
        converted = convert_to_fp16(model)
    values = numpy_helper.to_array(converted.graph.initializer[0])
    assert np.isfinite(values).all() and values.max() == np.finfo(np.float16).max
