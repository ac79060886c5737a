"""Activation ranges (|max| per tensor) measured on calibration clips with ONNX Runtime's calibrators.

ONNX Runtime's `create_calibrator` does the statistics (min/max, percentile and entropy histograms)
on the CPU; we feed it one clip at a time, so memory stays at one clip's activations whatever the
number of clips, and the progress bar moves per clip.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, create_calibrator
from onnxruntime.quantization.calibrate import TensorData

from calibration.qdq import QUANTIZED_OPS, activation_names
from runtime import contract
from runtime.errors import StamError

METHODS = {
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
    "minmax": CalibrationMethod.MinMax,
}
PERCENTILE = 99.999


class _OneClip(CalibrationDataReader):
    """ORT's reader protocol for a single (T, 3, H, W) clip: a batch of one for a whole model
    (input rank 5), its T frames as N for the frames part of a split pair (input rank 4)."""

    def __init__(self, clip: np.ndarray, input_rank: int):
        batch = clip[None] if input_rank == 5 else clip
        self._pending = [{contract.INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)}]

    def get_next(self) -> dict[str, np.ndarray] | None:
        return self._pending.pop() if self._pending else None


def measure_amax(model_path: str | Path, clips: Iterable[np.ndarray], method: str = "entropy") -> dict[str, float]:
    """|max| of every activation that feeds a quantized op, under the chosen calibration method."""
    if method not in METHODS:
        raise StamError(f"unknown calibration method {method!r} (choose from {', '.join(METHODS)})")
    graph = onnx.load(str(model_path), load_external_data=False).graph
    wanted = activation_names(graph)
    input_rank = len(graph.input[0].type.tensor_type.shape.dim)
    quiet = contextlib.redirect_stdout(io.StringIO())  # ORT's histogram calibrators print per batch
    with tempfile.TemporaryDirectory(prefix="stam-calibrate-") as scratch, quiet:
        calibrator = create_calibrator(
            Path(model_path),
            list(QUANTIZED_OPS),
            augmented_model_path=str(Path(scratch) / "augmented.onnx"),
            calibrate_method=METHODS[method],
            extra_options={"symmetric": True, "percentile": PERCENTILE},
        )
        count = 0
        for clip in clips:
            calibrator.collect_data(_OneClip(clip, input_rank))
            count += 1
        if count == 0:
            raise StamError("no calibration clips to measure ranges on")
        ranges = calibrator.compute_data()
    return {name: _amax(ranges[name]) for name in wanted if name in ranges}


def _amax(data: TensorData) -> float:
    """Symmetric quantization only needs the larger of |lowest| and |highest|."""
    lowest, highest = data.range_value
    return float(max(np.abs(np.asarray(lowest)).max(), np.abs(np.asarray(highest)).max()))
