"""Explicit-quantization (Q/DQ) rewriting of an fp32 ONNX graph, in the form TensorRT builds from.

TensorRT fuses a DequantizeLinear into the Conv/MatMul/Gemm that consumes it, so the graph carries
Q/DQ only on the inputs of those ops: one per-tensor, symmetric (zero point 0) pair per activation
and a per-channel DequantizeLinear over pre-quantized weights. Outputs, biases, normalisation,
softmax, residual adds and the two activation-activation MatMuls of attention stay float: quantizing
the softmax output to 8 bits is the usual source of accuracy loss in ViTs, and TensorRT gains little
from it. INT8 and FP8 (E4M3) differ only in the stored dtype and the largest representable value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import ml_dtypes
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from runtime.errors import StamError

QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")
FP8_MIN_OPSET = 19  # QuantizeLinear/DequantizeLinear take FLOAT8E4M3FN from opset 19 on


@dataclass(frozen=True)
class QuantFormat:
    """What one precision stores: the ONNX dtype, the numpy dtype and the largest magnitude."""

    name: str
    onnx_type: int
    numpy_type: type
    max_value: float


FORMATS = {
    "int8": QuantFormat("int8", TensorProto.INT8, np.int8, 127.0),
    "fp8": QuantFormat("fp8", TensorProto.FLOAT8E4M3FN, ml_dtypes.float8_e4m3fn, 448.0),
}


@dataclass(frozen=True)
class Target:
    """One input of one node to quantize; `axis` is the per-channel axis of a weight, None for an activation."""

    node_index: int
    input_index: int
    axis: int | None


def find_targets(graph: onnx.GraphProto) -> list[Target]:
    """The activation and weight inputs of every Conv, Gemm and weight-carrying MatMul."""
    weights = {init.name: init for init in graph.initializer}
    targets: list[Target] = []
    for index, node in enumerate(graph.node):
        if node.op_type not in QUANTIZED_OPS:
            continue
        weight_input = _weight_input(node, weights)
        if weight_input is None:
            continue  # activation x activation (attention scores, attention x values): left float
        activation_input = 1 - weight_input
        targets.append(Target(index, activation_input, None))
        targets.append(Target(index, weight_input, _channel_axis(node, weights[node.input[weight_input]])))
    return targets


def activation_names(graph: onnx.GraphProto) -> list[str]:
    """The tensors whose ranges calibration must measure, in graph order, without repeats."""
    names = [graph.node[t.node_index].input[t.input_index] for t in find_targets(graph) if t.axis is None]
    return list(dict.fromkeys(names))


def insert_qdq(model: onnx.ModelProto, amax: Mapping[str, float], precision: str) -> onnx.ModelProto:
    """A copy of `model` with Q/DQ before every target input; `amax` maps activation names to |max|."""
    fmt = FORMATS[precision]
    result = onnx.ModelProto()
    result.CopyFrom(model)
    graph = result.graph
    targets = find_targets(graph)
    missing = sorted({graph.node[t.node_index].input[t.input_index] for t in targets if t.axis is None} - set(amax))
    if missing:
        raise StamError(f"calibration measured no range for {len(missing)} tensors ({', '.join(missing[:3])}...)")
    _rewrite(graph, targets, amax, fmt)
    if precision == "fp8":
        _raise_opset(result, FP8_MIN_OPSET)
    return result


def quantize_weight(weight: np.ndarray, axis: int, fmt: QuantFormat) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel symmetric quantization: (quantized weight, scale per channel along `axis`)."""
    reduce = tuple(i for i in range(weight.ndim) if i != axis)
    scale = _scale(np.abs(weight).max(axis=reduce), fmt).astype(np.float32)
    shaped = np.expand_dims(scale, reduce)
    scaled = weight.astype(np.float32) / shaped
    if fmt.onnx_type == TensorProto.INT8:
        return np.clip(np.rint(scaled), -fmt.max_value, fmt.max_value).astype(np.int8), scale
    return np.clip(scaled, -fmt.max_value, fmt.max_value).astype(fmt.numpy_type), scale


def activation_scale(amax: float, fmt: QuantFormat) -> np.float32:
    """TensorRT's convention: scale = amax / largest value (127 for INT8, 448 for E4M3)."""
    return np.float32(_scale(np.asarray(amax, dtype=np.float64), fmt))


def _scale(amax: np.ndarray, fmt: QuantFormat) -> np.ndarray:
    """A zero range (a dead channel, a constant tensor) gets scale 1: any positive scale is exact there."""
    amax = np.asarray(amax, dtype=np.float64)
    return np.where(amax > 0, amax / fmt.max_value, 1.0)


def _rewrite(graph: onnx.GraphProto, targets: list[Target], amax: Mapping[str, float], fmt: QuantFormat) -> None:
    """Rebuild the node list, placing each Q/DQ just before its first consumer (keeps topological order)."""
    names = _NameSource(graph)
    weights = {init.name: init for init in graph.initializer}
    by_node: dict[int, list[Target]] = {}
    for target in targets:
        by_node.setdefault(target.node_index, []).append(target)
    dequantized: dict[str, str] = {}  # activation name -> its DQ output, shared by all consumers
    nodes: list[onnx.NodeProto] = []
    for index, node in enumerate(graph.node):
        for target in by_node.get(index, []):
            source = node.input[target.input_index]
            if source not in dequantized:
                if target.axis is None:
                    dequantized[source] = _activation_qdq(graph, nodes, names, source, amax[source], fmt)
                else:
                    dequantized[source] = _weight_dq(graph, nodes, names, weights[source], target.axis, fmt)
            node.input[target.input_index] = dequantized[source]
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    _drop_unused_initializers(graph)


def _activation_qdq(graph, nodes, names, source: str, amax: float, fmt: QuantFormat) -> str:
    scale, zero = names.new(f"{source}_scale"), names.new(f"{source}_zero_point")
    graph.initializer.append(numpy_helper.from_array(np.array(activation_scale(amax, fmt)), scale))
    graph.initializer.append(numpy_helper.from_array(np.zeros((), dtype=fmt.numpy_type), zero))
    quantized, output = names.new(f"{source}_quantized"), names.new(f"{source}_dequantized")
    nodes.append(helper.make_node("QuantizeLinear", [source, scale, zero], [quantized], name=names.new(f"{source}_Q")))
    nodes.append(
        helper.make_node("DequantizeLinear", [quantized, scale, zero], [output], name=names.new(f"{source}_DQ"))
    )
    return output


def _weight_dq(graph, nodes, names, weight: onnx.TensorProto, axis: int, fmt: QuantFormat) -> str:
    values, scales = quantize_weight(numpy_helper.to_array(weight), axis, fmt)
    stored, scale = names.new(f"{weight.name}_quantized"), names.new(f"{weight.name}_scale")
    zero, output = names.new(f"{weight.name}_zero_point"), names.new(f"{weight.name}_dequantized")
    graph.initializer.append(numpy_helper.from_array(values, stored))
    graph.initializer.append(numpy_helper.from_array(scales, scale))
    graph.initializer.append(numpy_helper.from_array(np.zeros(scales.shape, dtype=fmt.numpy_type), zero))
    node = helper.make_node(
        "DequantizeLinear", [stored, scale, zero], [output], name=names.new(f"{weight.name}_DQ"), axis=axis
    )
    nodes.append(node)
    return output


def _weight_input(node: onnx.NodeProto, weights: Mapping[str, onnx.TensorProto]) -> int | None:
    """Index (0 or 1) of the constant operand; Conv and Gemm always have their weight at 1."""
    if node.op_type in ("Conv", "Gemm"):
        return 1 if node.input[1] in weights else None
    constant = [i for i in (0, 1) if node.input[i] in weights]
    if len(constant) != 1 or len(weights[node.input[constant[0]]].dims) != 2:
        return None  # batched or fully constant MatMul: not a linear layer
    return constant[0]


def _channel_axis(node: onnx.NodeProto, weight: onnx.TensorProto) -> int:
    """The output-channel axis: Conv (O, I, kh, kw) -> 0; MatMul x @ W (K, N) -> 1; Gemm by transB."""
    if node.op_type == "Conv":
        return 0
    if node.op_type == "Gemm":
        trans_b = next((attr.i for attr in node.attribute if attr.name == "transB"), 0)
        return 0 if trans_b else 1
    return 1 if node.input[1] == weight.name else 0


def _raise_opset(model: onnx.ModelProto, version: int) -> None:
    """Opsets 18 -> 19 change no semantics the exported graph relies on; they only add types."""
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and opset.version < version:
            opset.version = version


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    """The fp32 weights that now exist only in quantized form."""
    used = {name for node in graph.node for name in node.input} | {out.name for out in graph.output}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


class _NameSource:
    """Fresh tensor and node names that cannot collide with the graph's own."""

    def __init__(self, graph: onnx.GraphProto):
        self.taken = {name for node in graph.node for name in (*node.input, *node.output, node.name)}
        self.taken |= {init.name for init in graph.initializer} | {vi.name for vi in graph.input}

    def new(self, base: str) -> str:
        name, suffix = base, 1
        while name in self.taken:
            name, suffix = f"{base}_{suffix}", suffix + 1
        self.taken.add(name)
        return name
