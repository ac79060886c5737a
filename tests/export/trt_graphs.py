"""Hand-made ONNX graphs for the TensorRT tests: the two parts of a split pair, and a graph no parser takes.

Small enough to build with the real library in a second; they keep the artifact contract (names,
metadata) so that every step of stam-build runs on them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from runtime import contract
from tests.runtime.conftest import NUM_CLASSES, build_mean_rgb, contract_metadata

EMBED_DIM = 6


def part_graph(path: Path, part: str, frames_trained: int = 4, input_name: str | None = None) -> Path:
    """The frames part (images (N, 3, 224, 224) -> mean colour @ W -> embeddings (N, D)) or the temporal
    part (embeddings (B, T, D) -> mean over T @ W -> logits (B, C)), with the split metadata."""
    default_input, output_name = contract.PART_IO[part]
    input_name = input_name or default_input
    if part == contract.PART_FRAMES:
        dims, axes, width, out = ["images", 3, 224, 224], [2, 3], 3, EMBED_DIM
    else:
        dims, axes, width, out = ["batch", "frames", EMBED_DIM], [1], EMBED_DIM, NUM_CLASSES
    weights = np.linspace(-1, 1, width * out, dtype=np.float32).reshape(width, out)
    nodes = [
        helper.make_node("ReduceMean", [input_name, "axes"], ["mean"], keepdims=0),
        helper.make_node("MatMul", ["mean", "weights"], [output_name]),
    ]
    graph = helper.make_graph(
        nodes,
        f"stam_{part}",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [dims[0], out])],
        initializer=[
            numpy_helper.from_array(np.array(axes, np.int64), "axes"),
            numpy_helper.from_array(weights, "weights"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", contract.OPSET)])
    model.ir_version = 9
    partner = contract.PART_TEMPORAL if part == contract.PART_FRAMES else contract.PART_FRAMES
    helper.set_model_props(
        model,
        contract_metadata(
            **{
                contract.META_FRAMES_TRAINED: str(frames_trained),
                contract.META_PART: part,
                contract.META_PARTNER: f"m.{partner}.onnx",
            }
        ),
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def custom_op_graph(path: Path) -> Path:
    """The mean-RGB model with its logits passed through `com.example::Frobnicate`, which no parser knows."""
    build_mean_rgb(path)
    model = onnx.load(str(path))
    model.graph.node[-1].output[0] = "scores"
    model.graph.node.append(
        helper.make_node(
            "Frobnicate", ["scores"], [contract.OUTPUT_NAME], name="frobnicate_logits", domain="com.example"
        )
    )
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    onnx.save(model, str(path))
    return path
