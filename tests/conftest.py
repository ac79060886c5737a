"""Shared fixtures: one small STAM and its ONNX export per test session (exports cost seconds)."""

from __future__ import annotations

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


@pytest.fixture(scope="session")
def tiny_split(tiny_model, tiny_labels, tmp_path_factory):
    """(frames part, temporal part) paths of the fp32 `stam-export --split` of `tiny_model`."""
    from export.onnx import export_split

    return export_split(tiny_model, tmp_path_factory.mktemp("tiny_split") / "stam_tiny.onnx", labels=tiny_labels)
