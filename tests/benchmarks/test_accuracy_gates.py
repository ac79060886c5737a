"""Accuracy gates of the shipped motion model on held-out videos, through the full runtime path.

Encoded videos -> runtime.decode.read_frames -> runtime.preprocess -> ONNX Runtime or OpenVINO (the
`motion_clips` fixture decodes once; the last test runs `python -m runtime.infer` end to end).
OpenVINO is gated like ONNX Runtime: fp32 agrees with PyTorch, bf16 (where the CPU has it) is held
to the fp16 bound, INT8 (the same Q/DQ graph) to the INT8 bound.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from benchmarks.accuracy import predict_clips, score
from benchmarks.motion.generate import CLASSES
from runtime import contract

TRAINED_FRAMES = 8
MIN_HELD_OUT_TOP1 = 0.95
FP16_MAX_DROP = 0.005  # the fp16 bound, which bf16 is held to
INT8_MAX_DROP = 0.01
needs_openvino = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None, reason="openvino is not installed (the [openvino] extra)"
)


class TorchRunner:
    """The PyTorch model behind `Model.run`'s signature, for `predict_clips`."""

    def __init__(self, model):
        self.model = model

    def run(self, frames: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model(torch.from_numpy(frames)).numpy()


@pytest.fixture(scope="module")
def onnx_fp32(motion_onnx_fp32):
    from runtime import open_model

    with open_model(motion_onnx_fp32, backend="onnxruntime") as model:
        yield model


def top1(logits: np.ndarray, targets: np.ndarray) -> float:
    return score(logits, targets, CLASSES).top1


@pytest.fixture(scope="module")
def fp32_logits(onnx_fp32, motion_clips) -> np.ndarray:
    return predict_clips(onnx_fp32, motion_clips.frames(TRAINED_FRAMES), batch_size=16)


def test_fp32_onnx_agrees_with_pytorch(motion_model, motion_clips, fp32_logits):
    torch_logits = predict_clips(TorchRunner(motion_model), motion_clips.frames(TRAINED_FRAMES), batch_size=16)
    agreement = float(np.mean(torch_logits.argmax(1) == fp32_logits.argmax(1)))
    print(
        f"fp32 ONNX vs PyTorch: top-1 agreement {agreement:.2%}, "
        f"max |logit diff| {np.abs(torch_logits - fp32_logits).max():.2e}"
    )
    assert agreement >= 0.995
    assert top1(fp32_logits, motion_clips.targets) >= MIN_HELD_OUT_TOP1


def test_fp16_onnx_within_half_a_point_of_fp32(motion_onnx_fp16, motion_clips, fp32_logits):
    from runtime import open_model

    with open_model(motion_onnx_fp16) as model:
        assert model.precision == "fp16"
        fp16_logits = predict_clips(model, motion_clips.frames(TRAINED_FRAMES), batch_size=16)
    fp32, fp16 = top1(fp32_logits, motion_clips.targets), top1(fp16_logits, motion_clips.targets)
    print(f"top-1 fp32 {fp32:.2%}, fp16 {fp16:.2%}")
    assert abs(fp16 - fp32) <= 0.005


def test_reversed_frame_order_loses_at_least_30_points(onnx_fp32, motion_clips, fp32_logits):
    """The model uses time, and the runtime keeps frame order: backwards, a growth reads as a shrink."""
    reversed_logits = predict_clips(onnx_fp32, motion_clips.frames(TRAINED_FRAMES, reverse=True), batch_size=16)
    forward, backward = top1(fp32_logits, motion_clips.targets), top1(reversed_logits, motion_clips.targets)
    print(f"top-1 in order {forward:.2%}, reversed {backward:.2%}")
    assert forward - backward >= 0.30


@pytest.mark.parametrize("frames", [4, 16])
def test_other_frame_counts_are_measured(onnx_fp32, motion_clips, frames):
    """Reported, not gated: accuracy away from the trained T is measured, never promised (DESIGN.md)."""
    logits = predict_clips(onnx_fp32, motion_clips.frames(frames), batch_size=16)
    assert logits.shape == (len(motion_clips.targets), len(CLASSES))
    assert np.isfinite(logits).all()
    print(f"top-1 at {frames} frames (trained {TRAINED_FRAMES}): {top1(logits, motion_clips.targets):.2%}")


def test_shipped_model_reaches_95_percent_through_runtime_infer(motion_held_out_dir, motion_onnx_fp32):
    """The shipped model's ONNX export, end to end in a fresh process: `python -m runtime.infer --json`."""
    videos = [str(path) for label in CLASSES for path in sorted((motion_held_out_dir / label).glob("*.mp4"))[:6]]
    completed = subprocess.run(
        [sys.executable, "-m", "runtime.infer", str(motion_onnx_fp32), *videos, "--json", "--topk", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    results = [json.loads(line) for line in completed.stdout.splitlines()]
    assert [r["path"] for r in results] == videos
    correct = sum(r["topk"][0]["label"] == r["path"].split("/")[-2] for r in results)
    print(f"runtime.infer on {len(videos)} held-out videos: top-1 {correct / len(videos):.2%}")
    assert correct / len(videos) >= MIN_HELD_OUT_TOP1


# --- OpenVINO ----------------------------------------------------------------------------------------


def openvino_logits(path, motion_clips, precision: str = "fp32") -> np.ndarray:
    from runtime import open_model

    with open_model(path, backend="openvino", precision=precision) as model:
        return predict_clips(model, motion_clips.frames(TRAINED_FRAMES), batch_size=16)


@needs_openvino
def test_openvino_fp32_agrees_with_pytorch_and_onnx_runtime(motion_model, motion_onnx_fp32, motion_clips, fp32_logits):
    logits = openvino_logits(motion_onnx_fp32, motion_clips)
    torch_logits = predict_clips(TorchRunner(motion_model), motion_clips.frames(TRAINED_FRAMES), batch_size=16)
    agreement = float(np.mean(torch_logits.argmax(1) == logits.argmax(1)))
    print(
        f"OpenVINO fp32: agreement with PyTorch {agreement:.2%}, max |logit diff| vs ONNX Runtime "
        f"{np.abs(logits - fp32_logits).max():.2e}"
    )
    assert agreement >= 0.995
    np.testing.assert_allclose(logits, fp32_logits, atol=contract.FP32_MAX_ABS_DIFF, rtol=0)


@needs_openvino
def test_openvino_bf16_within_the_fp16_bound_or_refused(motion_onnx_fp32, motion_clips, fp32_logits):
    from runtime.errors import StamError

    try:
        logits = openvino_logits(motion_onnx_fp32, motion_clips, precision="bf16")
    except StamError as error:
        assert "bf16 needs a CPU with avx512_bf16 or AMX" in str(error)
        pytest.skip(f"bf16 refused on this CPU, as it must be: {error}")
    fp32, bf16 = top1(fp32_logits, motion_clips.targets), top1(logits, motion_clips.targets)
    print(f"top-1 fp32 {fp32:.2%}, OpenVINO bf16 {bf16:.2%}, max |logit diff| {np.abs(logits - fp32_logits).max():.2e}")
    assert abs(bf16 - fp32) <= FP16_MAX_DROP


@needs_openvino
def test_openvino_int8_within_the_int8_bound(motion_onnx_int8, motion_clips, fp32_logits):
    """The Q/DQ graph of stam-calibrate, as it is, on OpenVINO's integer kernels and on ONNX Runtime's."""
    from runtime import open_model

    ov_logits = openvino_logits(motion_onnx_int8, motion_clips)
    with open_model(motion_onnx_int8, backend="onnxruntime") as model:
        ort_logits = predict_clips(model, motion_clips.frames(TRAINED_FRAMES), batch_size=16)
    fp32, ov, ort = (top1(x, motion_clips.targets) for x in (fp32_logits, ov_logits, ort_logits))
    scale = float(np.abs(fp32_logits).max())
    print(
        f"top-1 fp32 {fp32:.2%}, INT8 OpenVINO {ov:.2%}, INT8 ONNX Runtime {ort:.2%}; max |logit diff| vs fp32: "
        f"OpenVINO {np.abs(ov_logits - fp32_logits).max():.3g}, ONNX Runtime {np.abs(ort_logits - fp32_logits).max():.3g} "
        f"(largest fp32 logit {scale:.3g})"
    )
    assert ov >= fp32 - INT8_MAX_DROP
    assert float(np.mean(ov_logits.argmax(1) == ort_logits.argmax(1))) >= 0.95
