"""Torch-free fp32 -> fp16 conversion of an ONNX graph, with float32 I/O and fp32 islands.

TensorRT 11 builds strongly typed networks only (no BuilderFlag.FP16), so an FP16 engine comes from
an FP16 ONNX graph; this converter makes that graph, for `stam-export --precision fp16` and for
`stam-build --precision fp16` on an fp32 file.

Rules, node by node in topological order:
- graph inputs and outputs stay float32: a Cast follows each input and precedes each output;
- compute (MatMul, Conv, Gemm, elementwise, data movement) runs in fp16, float weights become fp16;
- numerically sensitive ops stay float32 (`KEEP_FP32_OPS`: LayerNormalization and the other
  normalizations, Softmax, reductions, Pow/Sqrt of a decomposed LayerNorm, Range), with Casts around
  them; elementwise/movement ops fed only by such fp32 results stay fp32 too (so ReduceMean -> Add eps
  -> Sqrt of a decomposed LayerNorm is fp32 throughout);
- shape arithmetic (float math that depends only on tensor shapes and scalar constants, e.g. the
  frame-index computation of the temporal position interpolation) stays float32: fp16 would move
  floor() boundaries and pick different frames;
- nodes with subgraphs (If/Loop/Scan) are left as they are, in float32; outer-scope fp16 tensors
  they read are cast back to float32 for them.
A constant (initializer or Constant node) needed in both precisions is stored twice rather than cast
at run time. Values beyond the fp16 range are clipped to +-65504 (with a warning).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FP32, FP16 = TensorProto.FLOAT, TensorProto.FLOAT16
_SUFFIX: dict[int, str] = {FP32: "fp32", FP16: "fp16"}
FP16_MAX = float(np.finfo(np.float16).max)
Constant = onnx.TensorProto | onnx.NodeProto  # an initializer or a Constant node

KEEP_FP32_OPS = frozenset(
    {
        "LayerNormalization",
        "GroupNormalization",
        "InstanceNormalization",
        "RMSNormalization",
        "MeanVarianceNormalization",
        "BatchNormalization",
        "Softmax",
        "LogSoftmax",
        "ReduceMean",
        "ReduceSum",
        "ReduceSumSquare",
        "ReduceL1",
        "ReduceL2",
        "ReduceLogSum",
        "ReduceLogSumExp",
        "ReduceProd",
        "ReduceMax",
        "ReduceMin",
        "Pow",
        "Sqrt",
        "CumSum",
        "Range",
    }
)
# Ops that carry their input's precision: fed only by fp32 results of kept ops, they stay fp32.
FOLLOW_OPS = frozenset(
    {
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Neg",
        "Abs",
        "Reciprocal",
        "Reshape",
        "Transpose",
        "Squeeze",
        "Unsqueeze",
        "Flatten",
        "Gather",
        "GatherElements",
        "GatherND",
        "Slice",
        "Concat",
        "Expand",
        "Identity",
        "Clip",
        "Max",
        "Min",
        "Where",
        "Tile",
        "Split",
        "Floor",
        "Ceil",
        "Round",
        "Relu",
    }
)
# (op, input position) that accept any element type: never cast.
_ANY_TYPE_INPUTS = {("Shape", 0), ("Size", 0), ("Cast", 0), ("CastLike", 0)}
# (op, input position) that ONNX requires to be float32 whatever the data type.
_FP32_ONLY_INPUTS = {("Resize", 1), ("Resize", 2), ("Upsample", 1)}
_DTYPE_ATTRIBUTES = {
    "Cast": "to",
    "EyeLike": "dtype",
    "RandomNormal": "dtype",
    "RandomUniform": "dtype",
    "RandomNormalLike": "dtype",
    "RandomUniformLike": "dtype",
    "Multinomial": "dtype",
}


def convert_to_fp16(model: onnx.ModelProto, keep_fp32_ops: frozenset[str] = KEEP_FP32_OPS) -> onnx.ModelProto:
    """A converted copy of `model` (the argument is left untouched); its I/O stays float32."""
    converted = onnx.ModelProto()
    converted.CopyFrom(model)
    types = elem_types(converted)
    _GraphConverter(converted.graph, types, keep_fp32_ops).run()
    return converted


def elem_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor the main graph names (after ONNX shape inference)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    types = {init.name: init.data_type for init in graph.initializer}
    for value in (*graph.input, *graph.output, *graph.value_info):
        if value.type.HasField("tensor_type"):
            types[value.name] = value.type.tensor_type.elem_type
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute:
            types[node.output[0]] = _constant_type(node)
    return types


def _constant_type(node: onnx.NodeProto) -> int:
    attribute = node.attribute[0]
    if attribute.name == "value":
        return attribute.t.data_type
    return FP32 if attribute.name in ("value_float", "value_floats") else TensorProto.UNDEFINED


def has_subgraph(node: onnx.NodeProto) -> bool:
    return any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)


@dataclass
class _GraphConverter:
    """One pass over one graph: decide each node's precision, then rewrite with Casts."""

    graph: onnx.GraphProto
    types: dict[str, int]
    keep_fp32_ops: frozenset[str]
    constants: dict[str, Constant] = field(default_factory=dict)  # name -> initializer or Constant node
    home: dict[str, int] = field(default_factory=dict)  # precision a non-constant float tensor is made in
    data: set[str] = field(default_factory=set)  # depends on input values or on weights (not shape math)
    precision: dict[int, int] = field(
        default_factory=dict
    )  # node index -> FP32 / FP16 (protobuf wrappers have no stable id)
    casts: dict[tuple[str, int], str] = field(default_factory=dict)

    def run(self) -> None:
        self._collect_constants()
        for value in self.graph.input:
            if value.name not in self.constants:
                self.data.add(value.name)  # made in float32; fp16 consumers read it through one Cast
        for index, node in enumerate(self.graph.node):
            self._decide(index, node)
        demand = self._constant_demand()
        self._rewrite_nodes()
        self._convert_constants(demand)
        self._cast_outputs()
        self._retype_value_info()

    # -- analysis ------------------------------------------------------------------------------
    def _collect_constants(self) -> None:
        for init in self.graph.initializer:
            self.constants[init.name] = init
            if init.data_type == FP32 and int(np.prod(init.dims)) > 1:
                self.data.add(init.name)  # a weight, not a scalar of shape arithmetic
        for node in self.graph.node:
            if node.op_type == "Constant":
                self.constants[node.output[0]] = node
                if self.types.get(node.output[0]) == FP32 and _constant_size(node) > 1:
                    self.data.add(node.output[0])

    def _float_inputs(self, node: onnx.NodeProto) -> list[tuple[int, str]]:
        return [
            (i, name)
            for i, name in enumerate(node.input)
            if name and self.types.get(name) == FP32 and (node.op_type, i) not in _ANY_TYPE_INPUTS
        ]

    def _decide(self, index: int, node: onnx.NodeProto) -> None:
        if node.op_type == "Constant":
            return
        is_data = node.op_type not in ("Shape", "Size") and any(name in self.data for name in node.input)
        if is_data:
            self.data.update(node.output)
        floats_out = [name for name in node.output if self.types.get(name) == FP32]
        if not self._float_inputs(node) and not floats_out and not _float_dtype_attribute(node):
            return
        precision = FP16 if is_data and not self._stays_fp32(node) else FP32
        if has_subgraph(node):
            precision = FP32
        self.precision[index] = precision
        for name in floats_out:
            self.home[name] = precision

    def _stays_fp32(self, node: onnx.NodeProto) -> bool:
        if node.op_type in self.keep_fp32_ops:
            return True
        if node.op_type not in FOLLOW_OPS:
            return False
        fed = [name for _, name in self._float_inputs(node) if name not in self.constants]
        graph_inputs = {value.name for value in self.graph.input}
        return bool(fed) and all(self.home.get(n) == FP32 and n not in graph_inputs for n in fed)

    def _wanted(self, index: int, node: onnx.NodeProto) -> list[tuple[int, str, int]]:
        """(position, tensor, precision) of every float input the node reads."""
        precision = self.precision[index]
        return [
            (i, name, FP32 if (node.op_type, i) in _FP32_ONLY_INPUTS else precision)
            for i, name in self._float_inputs(node)
        ]

    def _constant_demand(self) -> dict[str, set[int]]:
        demand: dict[str, set[int]] = {}
        for index, node in enumerate(self.graph.node):
            if index in self.precision:
                for _, name, precision in self._wanted(index, node):
                    if name in self.constants:
                        demand.setdefault(name, set()).add(precision)
            for name in _outer_references(node):
                if name in self.constants:
                    demand.setdefault(name, set()).add(FP32)
        return demand

    # -- rewriting -----------------------------------------------------------------------------
    def _rewrite_nodes(self) -> None:
        nodes: list[onnx.NodeProto] = []
        for index, node in enumerate(self.graph.node):
            if index in self.precision:
                for position, name, precision in self._wanted(index, node):
                    node.input[position] = self._provide(name, precision, nodes)
                if self.precision[index] == FP16:
                    _retype_attributes(node)
            if has_subgraph(node):
                self._feed_subgraphs(node, nodes)
            nodes.append(onnx.NodeProto())
            nodes[-1].CopyFrom(node)
        del self.graph.node[:]
        self.graph.node.extend(nodes)

    def _provide(self, name: str, precision: int, nodes: list[onnx.NodeProto]) -> str:
        """The name under which `name` exists in `precision`, adding a Cast before first use."""
        if name in self.constants:
            return name if precision == FP32 else f"{name}__fp16"  # renamed back if fp16 only
        if self.home.get(name, FP32) == precision:  # graph inputs are made in float32
            return name
        key = (name, precision)
        if key not in self.casts:
            self.casts[key] = f"{name}__{_SUFFIX[precision]}"
            nodes.append(
                helper.make_node(
                    "Cast", [name], [self.casts[key]], to=precision, name=f"{name}__cast_{_SUFFIX[precision]}"
                )
            )
        return self.casts[key]

    def _feed_subgraphs(self, node: onnx.NodeProto, nodes: list[onnx.NodeProto]) -> None:
        renames = {}
        for name in _outer_references(node):
            if name in self.constants or self.types.get(name) != FP32:
                continue
            provided = self._provide(name, FP32, nodes)
            if provided != name:
                renames[name] = provided
        for attribute in node.attribute:
            for body in [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else attribute.graphs:
                _rename_inputs(body, renames)

    def _convert_constants(self, demand: dict[str, set[int]]) -> None:
        copies = []
        current = {node.output[0]: node for node in self.graph.node if node.op_type == "Constant"}
        for name, source in self.constants.items():
            source = current.get(name, source)  # the rewrite replaced the node objects
            wanted = demand.get(name, set())
            if FP16 not in wanted:
                continue
            if wanted == {FP16}:
                self._rename_everywhere(f"{name}__fp16", name)
                _to_fp16(source, name)
                self.home[name] = FP16  # for its value_info
            else:
                copies.append(_fp16_copy(source, f"{name}__fp16"))
        for copy in copies:
            if isinstance(copy, onnx.TensorProto):
                self.graph.initializer.append(copy)
            else:
                self.graph.node.insert(0, copy)

    def _cast_outputs(self) -> None:
        """Graph outputs made in fp16 get their producer renamed and a final Cast to float32."""
        for value in self.graph.output:
            if self.home.get(value.name) != FP16 or self.types.get(value.name) != FP32:
                continue
            internal = f"{value.name}__fp16"
            self._rename_everywhere(value.name, internal, outputs_too=True)
            self.home[internal] = FP16
            self.graph.node.append(
                helper.make_node("Cast", [internal], [value.name], to=FP32, name=f"{value.name}__cast_fp32")
            )

    def _rename_everywhere(self, old: str, new: str, outputs_too: bool = False) -> None:
        for node in self.graph.node:
            node.input[:] = [new if name == old else name for name in node.input]
            if outputs_too:
                node.output[:] = [new if name == old else name for name in node.output]
        for value in self.graph.value_info:
            if value.name == old and outputs_too:
                value.name = new

    def _retype_value_info(self) -> None:
        for value in self.graph.value_info:
            if self.home.get(value.name) == FP16 and value.type.tensor_type.elem_type == FP32:
                value.type.tensor_type.elem_type = FP16


def _constant_size(node: onnx.NodeProto) -> int:
    attribute = node.attribute[0]
    if attribute.name == "value":
        return int(np.prod(attribute.t.dims))
    return len(attribute.floats) if attribute.name == "value_floats" else 1


def _float_dtype_attribute(node: onnx.NodeProto) -> bool:
    key = _DTYPE_ATTRIBUTES.get(node.op_type)
    return any(a.name == key and a.i == FP32 for a in node.attribute) or node.op_type == "ConstantOfShape"


def _retype_attributes(node: onnx.NodeProto) -> None:
    """Typed attributes of a node that now runs in fp16: Cast `to`, ConstantOfShape `value`, dtypes."""
    key = _DTYPE_ATTRIBUTES.get(node.op_type)
    for attribute in node.attribute:
        if attribute.name == key and attribute.i == FP32:
            attribute.i = FP16
        elif node.op_type == "ConstantOfShape" and attribute.name == "value" and attribute.t.data_type == FP32:
            attribute.t.CopyFrom(_half_tensor(attribute.t, attribute.t.name))
    if node.op_type == "ConstantOfShape" and not node.attribute:  # the default value is float32 zero
        node.attribute.append(helper.make_attribute("value", numpy_helper.from_array(np.zeros(1, np.float16))))


def _half_tensor(tensor: onnx.TensorProto, name: str) -> onnx.TensorProto:
    values = numpy_helper.to_array(tensor)
    clipped = int(np.count_nonzero(np.abs(values) > FP16_MAX))
    if clipped:
        warnings.warn(
            f"fp16 conversion: {clipped} values of {tensor.name or name} exceed the fp16 range and are "
            f"clipped to +-{FP16_MAX:g}",
            stacklevel=3,
        )
    return numpy_helper.from_array(np.clip(values, -FP16_MAX, FP16_MAX).astype(np.float16), name)


def _to_fp16(source: Constant, name: str) -> None:
    """Convert a float32 initializer or Constant node in place."""
    if isinstance(source, onnx.TensorProto):
        source.CopyFrom(_half_tensor(source, name))
        return
    value = _constant_tensor(source)
    del source.attribute[:]
    source.attribute.append(helper.make_attribute("value", _half_tensor(value, "")))


def _fp16_copy(source: Constant, name: str) -> Constant:
    if isinstance(source, onnx.TensorProto):
        return _half_tensor(source, name)
    return helper.make_node(
        "Constant", [], [name], value=_half_tensor(_constant_tensor(source), ""), name=f"{name}__const"
    )


def _constant_tensor(node: onnx.NodeProto) -> onnx.TensorProto:
    attribute = node.attribute[0]
    if attribute.name == "value":
        return attribute.t
    if attribute.name == "value_float":
        return numpy_helper.from_array(np.array(attribute.f, dtype=np.float32))
    return numpy_helper.from_array(np.array(attribute.floats, dtype=np.float32))


def _outer_references(node: onnx.NodeProto) -> set[str]:
    """Names a node's subgraphs read from enclosing scopes."""
    names: set[str] = set()
    for attribute in node.attribute:
        bodies = [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else list(attribute.graphs)
        for body in bodies:
            defined = {v.name for v in (*body.input, *body.initializer)} | {o for n in body.node for o in n.output}
            used = {name for n in body.node for name in n.input if name}
            used |= {name for n in body.node for name in _outer_references(n)}
            names |= used - defined
    return names


def _rename_inputs(graph: onnx.GraphProto, renames: dict[str, str]) -> None:
    if not renames:
        return
    for node in graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]
        for attribute in node.attribute:
            for body in [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else attribute.graphs:
                _rename_inputs(body, renames)
