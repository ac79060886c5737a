"""Runtime fixtures: tiny hand-built ONNX graphs that keep (or break) the artifact contract."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from runtime import contract

NUM_CLASSES = 4
LABELS = ["archery", "bowling", "juggling balls", "surfing water"]
WEIGHTS = np.arange(3 * NUM_CLASSES, dtype=np.float32).reshape(3, NUM_CLASSES) / 7.0 - 0.5


def contract_metadata(**overrides: str) -> dict[str, str]:
    metadata = {
        contract.META_MODEL: "mean_rgb",
        contract.META_FRAMES_TRAINED: "4",
        contract.META_INPUT_SIZE: str(contract.INPUT_SIZE),
        contract.META_RESIZE_SHORT: str(contract.RESIZE_SHORT),
        contract.META_PRECISION: "fp32",
        contract.META_LABELS: "\n".join(LABELS),
        contract.META_EXPORTER_VERSION: "tests",
    }
    metadata.update(overrides)
    return metadata


def mean_rgb_logits(frames: np.ndarray) -> np.ndarray:
    """What the hand-built graph computes: per-video mean colour times a fixed (3, C) matrix."""
    return frames.astype(np.float64).mean(axis=(1, 3, 4)) @ WEIGHTS.astype(np.float64)


def build_mean_rgb(
    path: Path,
    metadata: dict[str, str] | None = None,
    input_name: str = contract.INPUT_NAME,
    dims: tuple = (contract.BATCH_DIM, contract.FRAMES_DIM, 3, 224, 224),
) -> Path:
    """A contract-shaped ONNX model small enough to build per test: logits = mean(frames over T,H,W) @ W."""
    frames = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, list(dims))
    logits = helper.make_tensor_value_info(contract.OUTPUT_NAME, TensorProto.FLOAT, [dims[0], NUM_CLASSES])
    channel_axis = len(dims) - 3
    reduced = [axis for axis in range(1, len(dims)) if axis != channel_axis]  # all but batch and channels
    axes = numpy_helper.from_array(np.array(reduced, dtype=np.int64), "axes")
    weights = numpy_helper.from_array(WEIGHTS, "weights")
    nodes = [
        helper.make_node("ReduceMean", [input_name, "axes"], ["mean"], keepdims=0),
        helper.make_node("MatMul", ["mean", "weights"], [contract.OUTPUT_NAME]),
    ]
    graph = helper.make_graph(nodes, "mean_rgb", [frames], [logits], initializer=[axes, weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", contract.OPSET)])
    model.ir_version = 9
    helper.set_model_props(model, contract_metadata() if metadata is None else metadata)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def mean_rgb_onnx(tmp_path: Path) -> Path:
    return build_mean_rgb(tmp_path / "mean_rgb.onnx")


@pytest.fixture
def onnx_factory(tmp_path: Path) -> Callable[..., Path]:
    """Build variants: `onnx_factory("name.onnx", metadata=..., input_name=..., dims=...)`."""
    return lambda name, **kwargs: build_mean_rgb(tmp_path / name, **kwargs)
