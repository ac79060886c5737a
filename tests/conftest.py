"""Shared fixtures: one small STAM and its ONNX export per test session (exports cost seconds), the
shipped motion model's export, and the one TensorRT skip mechanism.

TensorRT tests carry one of two markers and are skipped here, with the reason, where they cannot run:
`trt_builder` needs a library that builds (tensorrt_rtx builds without a GPU, so CI runs these);
`tensorrt` runs a plan and needs a library, cuda-python and an NVIDIA GPU with its driver.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

TINY_CLASSES = 10


@pytest.fixture(scope="session")
def tiny_model():
    """stam_tiny with a widened head: random init gives near-tied logits, which make top-1 checks moot."""
    import torch

    from export.model import create_model

    torch.manual_seed(0)
    model = create_model("stam_tiny", num_classes=TINY_CLASSES)
    with torch.no_grad():
        model.head.weight.mul_(50.0)
    return model


@pytest.fixture(scope="session")
def tiny_labels() -> list[str]:
    return [f"class {i}" for i in range(TINY_CLASSES)]


@pytest.fixture(scope="session")
def tiny_onnx(tiny_model, tiny_labels, tmp_path_factory):
    """Path of the fp32 ONNX export of `tiny_model`, labels included."""
    from export.onnx import export_onnx

    return export_onnx(tiny_model, tmp_path_factory.mktemp("tiny") / "stam_tiny.onnx", labels=tiny_labels)


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_model, tmp_path_factory):
    """`tiny_model` saved in the official checkpoint layout."""
    from export.checkpoint import save_checkpoint

    return save_checkpoint(tiny_model, tmp_path_factory.mktemp("ckpt") / "stam_tiny.pth")


@pytest.fixture(scope="session")
def stam16(tmp_path_factory):
    """(model, fp32 ONNX path) of a random-weight stam_16: one full-size export per session (~30 s)."""
    import torch

    from export.model import create_model
    from export.onnx import export_onnx

    torch.manual_seed(0)
    model = create_model("stam_16")
    return model, export_onnx(model, tmp_path_factory.mktemp("stam16") / "stam_16.onnx")


BUILDER_LIBRARIES = ("tensorrt_rtx", "tensorrt")


def _importable(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def builder_skip_reason() -> str | None:
    if any(_importable(name) for name in BUILDER_LIBRARIES):
        return None
    return "no TensorRT library imports (pip install -e '.[rtx]' builds without a GPU)"


def execution_skip_reason() -> str | None:
    from runtime.backends.cuda import driver_problem

    problem = driver_problem()
    if problem:
        return f"running a plan needs an NVIDIA GPU; this machine has {problem}"
    if builder_skip_reason():
        return builder_skip_reason()
    return None if _importable("cuda") else "cuda-python is not installed (running a plan needs it)"


def pytest_collection_modifyitems(config, items):
    reasons = {"trt_builder": builder_skip_reason(), "tensorrt": execution_skip_reason()}
    for item in items:
        for marker, reason in reasons.items():
            if reason and item.get_closest_marker(marker):
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def trt_library() -> ModuleType:
    """The library `trt_builder` tests build with: tensorrt_rtx where installed (it needs no GPU), else tensorrt."""
    from runtime.backends.trt import import_tensorrt

    name = next(name for name in BUILDER_LIBRARIES if _importable(name))
    return import_tensorrt(name)


@pytest.fixture(scope="session")
def motion_model():
    """The shipped checkpoint, in PyTorch."""
    from benchmarks.motion import SHIPPED_CHECKPOINT
    from export.checkpoint import load_checkpoint

    return load_checkpoint(SHIPPED_CHECKPOINT)


@pytest.fixture(scope="session")
def motion_onnx_fp32(motion_model, tmp_path_factory) -> Path:
    """A fresh fp32 ONNX export of the shipped checkpoint, labels included: one per session."""
    from benchmarks.motion.generate import CLASSES
    from export.onnx import export_onnx

    path = tmp_path_factory.mktemp("motion_onnx") / "stam_motion.onnx"
    return export_onnx(motion_model, path, labels=list(CLASSES))
