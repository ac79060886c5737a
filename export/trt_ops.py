"""Operator check of an ONNX graph against the TensorRT ONNX parser's support matrix, without TensorRT.

The matrix is data (`export/data/tensorrt_onnx_ops.json`, its source named inside): which ops the
parser of a TensorRT major version accepts and with which restrictions. `check_operators` lists every
op of a graph (subgraphs included), marks the unsupported ones and the restrictions this graph breaks,
so a model that cannot build is caught on a machine without a GPU (`stam-build --check`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto, helper

from runtime.errors import StamError

TABLE_PATH = Path(__file__).parent / "data" / "tensorrt_onnx_ops.json"
DEFAULT_DOMAINS = ("", "ai.onnx")
MATRIX_VERSION = "10.15"  # the TensorRT release whose operators.md the table copies (named in its "source")
_RESIZE_MODES = {"nearest", "linear"}
_RESIZE_TRANSFORMS = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}
_FIRST_OPSET = {"LayerNormalization": 17, "Gelu": 20, "Attention": 23, "RMSNormalization": 23, "RotaryEmbedding": 23}


@lru_cache(maxsize=1)
def load_table() -> dict[str, Any]:
    return json.loads(TABLE_PATH.read_text())


@dataclass
class OpRow:
    domain: str
    op_type: str
    count: int
    opset: int
    supported: bool
    restriction: str = ""


@dataclass
class OperatorReport:
    """Every op of a graph and the problems that would stop (errors) or may affect (warnings) a build."""

    trt_major: int
    source: str
    rows: list[OpRow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.errors

    def matrix_note(self) -> str:
        """Which support matrix answered: the table has one operator matrix (TensorRT 10.15's) for every major."""
        note = f"onnx-tensorrt operators.md of TensorRT {MATRIX_VERSION}"
        if self.trt_major != int(MATRIX_VERSION.split(".")[0]):
            note += f", which TensorRT {self.trt_major} keeps (no ONNX operator removed); opsets of TensorRT {self.trt_major}"
        return note

    def table(self) -> str:
        lines = [f"{'domain':<10} {'op':<24} {'count':>5} {'opset':>5}  TensorRT {self.trt_major}"]
        for row in self.rows:
            verdict = "yes" if row.supported else "NO"
            note = f"  ({row.restriction})" if row.restriction and row.supported else ""
            lines.append(
                f"{row.domain or 'ai.onnx':<10} {row.op_type:<24} {row.count:>5} {row.opset:>5}  {verdict}{note}"
            )
        lines += [f"error: {text}" for text in self.errors] + [f"warning: {text}" for text in self.warnings]
        lines.append(
            f"{'PASSED' if self.passed else 'FAILED'}: {len(self.rows)} op types, {len(self.errors)} "
            f"errors, {len(self.warnings)} warnings (matrix: {self.matrix_note()})"
        )
        return "\n".join(lines)


def check_operators(model: onnx.ModelProto, trt_major: int = 10) -> OperatorReport:
    """Check every node (subgraphs included) against the matrix of TensorRT `trt_major` (10 or 11)."""
    table = load_table()
    major = table["majors"].get(str(trt_major))
    if major is None:
        raise StamError(f"no operator table for TensorRT {trt_major} (known: {', '.join(sorted(table['majors']))})")
    report = OperatorReport(trt_major=trt_major, source=table["source"])
    opsets = {entry.domain: entry.version for entry in model.opset_import}
    _check_opset(report, opsets, major)
    nodes = list(iter_nodes(model.graph))
    constants = _constant_names(model.graph)
    supported, unsupported = table["operators"]["supported"], set(table["operators"]["unsupported"])
    unsupported |= set(major["unsupported_extra"])
    for (domain, op_type), count in sorted(Counter((n.domain, n.op_type) for n in nodes).items()):
        opset = opsets.get(domain, opsets.get("ai.onnx", 0)) if domain in DEFAULT_DOMAINS else opsets.get(domain, 0)
        ok = domain in DEFAULT_DOMAINS and op_type in supported and op_type not in unsupported
        report.rows.append(OpRow(domain, op_type, count, opset, ok, supported.get(op_type, "")))
        if not ok:
            report.errors.append(_unsupported_reason(domain, op_type, op_type in unsupported, trt_major))
        elif op_type in _FIRST_OPSET and opset < _FIRST_OPSET[op_type]:
            report.errors.append(
                f"{op_type} is an ONNX opset {_FIRST_OPSET[op_type]} op but the model imports opset {opset}"
            )
    for node in nodes:
        if node.domain in DEFAULT_DOMAINS and node.op_type in _NODE_CHECKS:
            _NODE_CHECKS[node.op_type](node, constants, report)
    _check_initializers(model.graph, report)
    return report


def iter_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node of a graph and of its subgraphs, depth first."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from iter_nodes(attribute.g)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for body in attribute.graphs:
                    yield from iter_nodes(body)


def _check_opset(report: OperatorReport, opsets: dict[str, int], major: dict[str, Any]) -> None:
    opset = opsets.get("", opsets.get("ai.onnx"))
    if opset is None:
        report.errors.append("the model imports no default-domain (ai.onnx) opset")
    elif not major["opset_min"] <= opset <= major["opset_max"]:
        report.errors.append(
            f"opset {opset} is outside TensorRT {report.trt_major}'s {major['opset_min']}..{major['opset_max']}"
        )
    else:
        older = [v for v, top in major["opset_max_by_version"].items() if top < opset]
        if older:
            report.warnings.append(f"opset {opset} needs a newer TensorRT than {', '.join(sorted(older))}")


def _unsupported_reason(domain: str, op_type: str, listed: bool, trt_major: int) -> str:
    if domain not in DEFAULT_DOMAINS:
        return f"{domain}::{op_type} is a custom-domain op: the TensorRT parser needs a plugin for it"
    why = "listed as unsupported" if listed else "not in the support matrix"
    return f"{op_type} is {why} for the TensorRT {trt_major} ONNX parser"


def _constant_names(graph: onnx.GraphProto) -> set[str]:
    names = {init.name for init in graph.initializer}
    return names | {n.output[0] for n in iter_nodes(graph) if n.op_type == "Constant"}


def _attribute(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    for attribute in node.attribute:
        if attribute.name == name:
            value = helper.get_attribute_value(attribute)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _where(node: onnx.NodeProto) -> str:
    return f"node {node.name or '(unnamed)'} ({node.op_type})"


def _check_resize(node: onnx.NodeProto, constants: set[str], report: OperatorReport) -> None:
    if _attribute(node, "antialias", 0):
        report.errors.append(f"{_where(node)}: antialiasing is not supported")
    if _attribute(node, "mode", "nearest") not in _RESIZE_MODES:
        report.errors.append(f"{_where(node)}: mode {_attribute(node, 'mode')!r} is not supported (nearest, linear)")
    transform = _attribute(node, "coordinate_transformation_mode", "half_pixel")
    if transform not in _RESIZE_TRANSFORMS:
        report.errors.append(f"{_where(node)}: coordinate_transformation_mode {transform!r} is not supported")
    dynamic = [name for name in node.input[2:] if name and name not in constants]
    if dynamic:
        report.warnings.append(
            f"{_where(node)}: dynamic Resize (scales/sizes {', '.join(dynamic)} computed at run "
            "time): axes must cover all dims in order; check the build"
        )


def _check_reduce(node: onnx.NodeProto, constants: set[str], report: OperatorReport) -> None:
    if len(node.input) > 1 and node.input[1] and node.input[1] not in constants:
        report.errors.append(f"{_where(node)}: axes must be an initializer, got computed tensor {node.input[1]}")


def _check_axes(node: onnx.NodeProto, constants: set[str], report: OperatorReport) -> None:
    position = 3 if node.op_type == "Slice" else 1
    if len(node.input) > position and node.input[position] and node.input[position] not in constants:
        report.warnings.append(
            f"{_where(node)}: axes {node.input[position]} is computed; TensorRT needs it "
            "resolvable to a constant at build time"
        )


def _check_layer_norm(node: onnx.NodeProto, constants: set[str], report: OperatorReport) -> None:
    if any(node.output[1:]):
        report.errors.append(f"{_where(node)}: only the first output (Y) is supported, Mean/InvStdDev are used")


def _check_einsum(node: onnx.NodeProto, constants: set[str], report: OperatorReport) -> None:
    if "..." in str(_attribute(node, "equation", "")):
        report.warnings.append(f"{_where(node)}: ellipsis in the equation is unsupported by older parsers")


def _check_cast(node: onnx.NodeProto, constants: set[str], report: OperatorReport) -> None:
    target = _attribute(node, "to")
    if target == TensorProto.DOUBLE:
        report.warnings.append(f"{_where(node)}: cast to DOUBLE runs as FLOAT in TensorRT")
    elif target not in (
        TensorProto.FLOAT,
        TensorProto.FLOAT16,
        TensorProto.BFLOAT16,
        TensorProto.INT32,
        TensorProto.INT64,
        TensorProto.UINT8,
        TensorProto.BOOL,
        TensorProto.INT8,
    ):
        report.errors.append(f"{_where(node)}: cast to {TensorProto.DataType.Name(target)} is not a TensorRT type")
    elif target == TensorProto.BOOL:
        report.warnings.append(
            f"{_where(node)}: cast to BOOL (supported, but bool tensors cannot be network "
            "outputs of arithmetic; check the build)"
        )


def _check_topk(node: onnx.NodeProto, constants: set[str], report: OperatorReport) -> None:
    if len(node.input) > 1 and node.input[1] not in constants:
        report.warnings.append(f"{_where(node)}: K is computed; it must be below 3840 at build time")


_NODE_CHECKS: dict[str, Callable[[onnx.NodeProto, set[str], OperatorReport], None]] = {
    "Resize": _check_resize,
    "LayerNormalization": _check_layer_norm,
    "Einsum": _check_einsum,
    "Cast": _check_cast,
    "TopK": _check_topk,
    "Slice": _check_axes,
    "Squeeze": _check_axes,
    "Unsqueeze": _check_axes,
    **{
        op: _check_reduce
        for op in (
            "ReduceL1",
            "ReduceL2",
            "ReduceLogSum",
            "ReduceLogSumExp",
            "ReduceMax",
            "ReduceMean",
            "ReduceMin",
            "ReduceProd",
            "ReduceSum",
            "ReduceSumSquare",
        )
    },
}


def _check_initializers(graph: onnx.GraphProto, report: OperatorReport) -> None:
    """Weights TensorRT stores natively are FLOAT/FLOAT16 (BF16, integer and bool constants also parse)."""
    supported = set(load_table()["supported_types"])
    counts = Counter(TensorProto.DataType.Name(init.data_type) for init in graph.initializer)
    for name, count in sorted(counts.items()):
        if name == "DOUBLE":
            report.warnings.append(f"{count} DOUBLE initializers: {load_table()['limited_types']['DOUBLE']}")
        elif name not in supported:
            report.errors.append(f"{count} initializers of type {name}, which TensorRT does not support")
