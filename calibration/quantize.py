"""Post-training quantization of a STAM ONNX export: measure ranges, insert Q/DQ, keep the metadata.

Why not `onnxruntime.quantization.quantize_static`: its QDQ pass routes every consumer of a
quantized tensor through the DequantizeLinear, so the residual Adds of the post-norm temporal layers
read 8-bit values (on stam_tiny that is a 14x larger logit error than quantizing the MatMul inputs
alone), and it makes FP8 only with its own `Distribution` scales, not TensorRT's amax/448. We keep
its calibrators (calibration.ranges) and place Q/DQ ourselves (calibration.qdq). NVIDIA ModelOpt
would do the placement too, but its ONNX extra pins onnxruntime-gpu, cupy-cuda12x and an older onnx.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from calibration.qdq import FORMATS, insert_qdq
from calibration.ranges import METHODS, measure_amax
from runtime import contract
from runtime.artifact import KIND_ONNX, ArtifactInfo, describe, load_onnx
from runtime.errors import ArtifactError, StamError
from runtime.onnx_io import ensure_writable, save_single_file, set_metadata
from runtime.progress import progress_bar

META_CALIBRATION = "stam.calibration"  # how the ranges were measured; informative, not in REQUIRED_METADATA


@dataclass
class CalibrationResult:
    path: Path
    precision: str
    method: str
    clips: int
    frames: int
    seconds: float


def check_source(path: str | Path) -> ArtifactInfo:
    """The source must be a STAM fp32 export (or its frames part): fp16, quantized graphs and temporal
    parts are refused, from the metadata alone, before any video is decoded."""
    info = describe(path)
    if info.part == contract.PART_TEMPORAL:
        raise ArtifactError(
            f"{path}: is the temporal part, which stays as exported; calibrate its frames part "
            f"({info.metadata.get(contract.META_PARTNER, 'NAME.frames.onnx')})"
        )
    if info.kind != KIND_ONNX:
        raise ArtifactError(f"{path}: calibration reads an ONNX export, not a TensorRT plan")
    if info.precision != "fp32":
        raise ArtifactError(f"{path}: is {info.precision}; calibrate the fp32 export (stam-export --precision fp32)")
    return info


def load_fp32_model(path: str | Path) -> onnx.ModelProto:
    """The checked source (`check_source`) with its weights."""
    info = check_source(path)
    model = load_onnx(info.path, weights=True)
    if [value.name for value in model.graph.input] != [contract.INPUT_NAME]:
        raise ArtifactError(f"{path}: expected one input named {contract.INPUT_NAME!r}")
    return model


def check_options(precision: str, method: str) -> None:
    if precision not in FORMATS:
        raise StamError(f"--precision must be one of {', '.join(FORMATS)}, got {precision!r}")
    if method not in METHODS:
        raise StamError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")


def calibrate(
    model_path: str | Path,
    clips: Iterable[np.ndarray],
    output: str | Path,
    *,
    precision: str = "int8",
    method: str = "entropy",
    total: int | None = None,
    progress: bool = False,
) -> CalibrationResult:
    """Write the Q/DQ model for `precision` to `output`; `clips` are preprocessed (T, 3, 224, 224) arrays.

    A whole model takes each clip as a batch of one; the frames part of a split pair takes its T
    frames as N = T. A quantized frames part keeps `stam.partner`: write it beside the temporal part.
    """
    check_options(precision, method)
    model_path, output = Path(model_path), Path(output)
    model = load_fp32_model(model_path)
    if output.resolve() == model_path.resolve():
        raise ArtifactError(f"{output}: would overwrite the fp32 input; choose another -o")
    ensure_writable(output)
    seen = _Counter(clips)
    start = time.perf_counter()
    bar = progress_bar(total, unit="clip", desc=f"calibrating ({method})", enabled=progress, iterable=seen)
    amax = measure_amax(model_path, bar, method)
    quantized = insert_qdq(model, amax, precision)
    description = f"{precision} {method}, {seen.count} clips of {seen.frames} frames"
    set_metadata(quantized, {contract.META_PRECISION: precision, META_CALIBRATION: description})
    save_single_file(quantized, output)
    seconds = time.perf_counter() - start
    return CalibrationResult(output, precision, method, seen.count, seen.frames, seconds)


class _Counter:
    """Passes clips through, remembering how many there were and their frame count (for the metadata)."""

    def __init__(self, clips: Iterable[np.ndarray]):
        self._clips = clips
        self.count = 0
        self.frames = 0

    def __iter__(self):
        for clip in self._clips:
            if clip.ndim != 4 or clip.shape[1:] != (contract.CHANNELS, contract.INPUT_SIZE, contract.INPUT_SIZE):
                raise StamError(f"calibration clip has shape {clip.shape}, expected (T, 3, 224, 224)")
            self.count += 1
            self.frames = clip.shape[0]
            yield clip
