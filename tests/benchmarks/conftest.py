"""Held-out motion videos and the shipped model's exports, built once per test session.

The held-out set (seed HELD_OUT_SEED, never seen in training) is small and short so that writing
and decoding it takes seconds. Each video is decoded once through the runtime's `read_frames` +
`preprocess` at 16 frames and kept as uint8: with uniform sampling, every second frame of those 16
is exactly the 8-frame sampling and every fourth the 4-frame one (floor(2i*N/16) == floor(i*N/8)),
so one decode serves every frame count the gates measure. The calibration tests reuse these
fixtures: `motion_held_out_dir`, `motion_clips`, `motion_onnx_fp32`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from benchmarks.motion import HELD_OUT_SEED, SHIPPED_CHECKPOINT
from benchmarks.motion.generate import CLASSES, generate
from runtime.preprocess import preprocess
from runtime.video import read_frames

HELD_OUT_PER_CLASS = 25  # 225 videos: one changed prediction moves accuracy by 0.44 points
DECODED_FRAMES = 16


@dataclass(frozen=True)
class MotionClips:
    """The held-out set, decoded: `clips` (N, 16, 3, 224, 224) uint8 and `targets` (N,) class indices."""

    paths: list[Path]
    clips: np.ndarray
    targets: np.ndarray

    def frames(self, count: int, reverse: bool = False) -> list[np.ndarray]:
        """Float32 (T, 3, 224, 224) clips equal to `preprocess(read_frames(path, count))`; count divides 16."""
        if DECODED_FRAMES % count:
            raise ValueError(f"{count} frames cannot be taken exactly from {DECODED_FRAMES}")
        step = DECODED_FRAMES // count
        return [to_float(clip[::step][::-1] if reverse else clip[::step]) for clip in self.clips]


def to_float(clip: np.ndarray) -> np.ndarray:
    """What `preprocess` returns for these uint8 values (it divides by 255 in float32)."""
    return np.divide(clip, np.float32(255), dtype=np.float32)


@pytest.fixture(scope="session")
def motion_held_out_dir(tmp_path_factory) -> Path:
    """DIR/<class>/<id>.mp4: 25 short, small videos per motion class."""
    root = tmp_path_factory.mktemp("motion_held_out")
    generate(root, HELD_OUT_PER_CLASS, HELD_OUT_SEED, max_side=200, max_seconds=2.5)
    return root


@pytest.fixture(scope="session")
def motion_clips(motion_held_out_dir) -> MotionClips:
    from concurrent.futures import ThreadPoolExecutor

    paths = sorted(motion_held_out_dir.glob("*/*.mp4"))

    def decode(path: Path) -> np.ndarray:
        return np.rint(preprocess(read_frames(path, DECODED_FRAMES)) * 255).astype(np.uint8)

    with ThreadPoolExecutor(max_workers=2) as pool:
        clips = np.stack(list(pool.map(decode, paths)))
    targets = np.array([CLASSES.index(path.parent.name) for path in paths])
    return MotionClips(paths, clips, targets)


@pytest.fixture(scope="session")
def motion_model():
    """The shipped checkpoint, in PyTorch."""
    from export.checkpoint import load_checkpoint

    return load_checkpoint(SHIPPED_CHECKPOINT)


@pytest.fixture(scope="session")
def motion_onnx_fp32(motion_model, tmp_path_factory) -> Path:
    """A fresh fp32 ONNX export of the shipped checkpoint, labels included."""
    from export.onnx import export_onnx

    path = tmp_path_factory.mktemp("motion_onnx") / "stam_motion.onnx"
    return export_onnx(motion_model, path, labels=list(CLASSES))


@pytest.fixture(scope="session")
def motion_onnx_fp16(motion_model, tmp_path_factory) -> Path:
    from export.onnx import export_onnx

    path = tmp_path_factory.mktemp("motion_onnx") / "stam_motion.fp16.onnx"
    return export_onnx(motion_model, path, labels=list(CLASSES), precision="fp16")


@pytest.fixture(scope="session")
def motion_onnx_int8(motion_onnx_fp32, tmp_path_factory) -> Path:
    """The fp32 export calibrated to INT8 Q/DQ as `benchmarks.accuracy_table` does, on 2 videos per class of its seed."""
    from benchmarks.accuracy_table import calibrate_int8

    return calibrate_int8(motion_onnx_fp32, tmp_path_factory.mktemp("motion_int8"), frames=8, per_class=2)
