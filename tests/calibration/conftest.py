"""Calibration fixtures: random clips, stand-in decoding, and the tiny model calibrated once per session."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from runtime import contract
from runtime.limits import Limits

FRAMES = 8  # stam_tiny's trained frame count


def random_clips(count: int, seed: int, frames: int = FRAMES) -> list[np.ndarray]:
    """Preprocessed-shaped clips in [0, 1]; a smooth ramp plus noise so that patches differ."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, contract.INPUT_SIZE, dtype=np.float32)
    base = np.broadcast_to(ramp, (frames, 3, contract.INPUT_SIZE, contract.INPUT_SIZE))
    return [np.clip(base * rng.random() + 0.3 * rng.random(base.shape, dtype=np.float32), 0, 1) for _ in range(count)]


def fake_clip(video: Path, num_frames: int, mode: str = "uniform") -> np.ndarray:
    """Deterministic per file name and frame count, standing in for decode + preprocess."""
    seed = int(hashlib.sha256(f"{video.name}|{num_frames}|{mode}".encode()).hexdigest()[:8], 16)
    return random_clips(1, seed, num_frames)[0]


def make_video_tree(root: Path, classes: dict[str, int]) -> Path:
    """Empty files with video suffixes in class folders (listing never opens them)."""
    for name, count in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            (root / name / f"{name}_{i}.mp4").write_bytes(b"")
    return root


@pytest.fixture
def fake_decode(monkeypatch):
    """Replace decoding with `fake_clip`; returns the list of videos it was asked for."""
    import calibration.data

    calls: list[Path] = []

    def decode(video: Path, num_frames: int, mode: str = "uniform", *, limits: Limits) -> tuple[np.ndarray, list[str]]:
        assert isinstance(limits, Limits)  # every decode gets the command's limits
        calls.append(video)
        return fake_clip(video, num_frames, mode), []

    monkeypatch.setattr(calibration.data.clips, "load_clip", decode)
    return calls


@pytest.fixture(scope="session")
def tiny_int8(tiny_onnx, tmp_path_factory):
    """`tiny_onnx` calibrated to INT8 (minmax, the fastest method) on 6 random clips."""
    from calibration.quantize import calibrate

    output = tmp_path_factory.mktemp("int8") / "stam_tiny.int8.onnx"
    return calibrate(tiny_onnx, random_clips(6, seed=1), output, precision="int8", method="minmax").path
