"""Shared fixtures, built once per test session: a small STAM and its ONNX export, a random-weight
STAM-16, and the shipped motion model with its held-out videos (exports and encodes cost seconds);
and the one TensorRT skip mechanism.

`make test` runs the suite on two pytest-xdist workers (`--dist loadfile`: a file's tests and module
fixtures stay on one worker). The expensive session artifacts (the full-size export, the motion set
and its exports) are built by whichever worker asks first and reused by the other (`build_once`).

TensorRT tests carry one of two markers and are skipped here, with the reason, where they cannot run:
`trt_builder` needs a library that builds (tensorrt_rtx builds without a GPU, so CI runs these);
`tensorrt` runs a plan and needs a library, cuda-python and an NVIDIA GPU with its driver; `gpu`
needs only cuda-python and the GPU (the runner's CUDA side, with a stand-in engine).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from filelock import FileLock

from benchmarks.motion import HELD_OUT_SEED, SHIPPED_CHECKPOINT
from benchmarks.motion.generate import CLASSES, generate
from runtime.decode import read_frames
from runtime.preprocess import preprocess

TINY_CLASSES = 10


def build_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]) -> Path:
    """A folder filled by `build(folder)` once per test run, whatever the number of xdist workers.

    The first worker to ask builds it under a file lock; the others wait and reuse it. A build that
    fails leaves no mark, so the next worker to ask tries again and fails the same way.
    """
    root = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:
        root = root.parent  # the run's folder, above every worker's own
    folder = root / f"shared_{name}"
    built = folder / ".built"
    with FileLock(f"{folder}.lock"):
        if not built.exists():
            folder.mkdir(parents=True, exist_ok=True)
            build(folder)
            built.touch()
    return folder


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

    folder = build_once(
        tmp_path_factory,
        "tiny_onnx",
        lambda folder: export_onnx(tiny_model, folder / "stam_tiny.onnx", labels=tiny_labels),
    )
    return folder / "stam_tiny.onnx"


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
    folder = build_once(tmp_path_factory, "stam16", lambda folder: export_onnx(model, folder / "stam_16.onnx"))
    return model, folder / "stam_16.onnx"


@pytest.fixture(scope="session")
def tiny_split(tiny_model, tiny_labels, tmp_path_factory):
    """(frames part, temporal part) paths of the fp32 `stam-export --split` of `tiny_model`."""
    from export.onnx import export_split, split_paths

    folder = build_once(
        tmp_path_factory,
        "tiny_split",
        lambda folder: export_split(tiny_model, folder / "stam_tiny.onnx", labels=tiny_labels),
    )
    return split_paths(folder / "stam_tiny.onnx")


# --- TensorRT: which tests can run here ---------------------------------------------------------

BUILDER_LIBRARIES = ("tensorrt_rtx", "tensorrt")


def _importable(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def builder_skip_reason() -> str | None:
    if any(_importable(name) for name in BUILDER_LIBRARIES):
        return None
    return "no TensorRT library imports (pip install -e '.[rtx]' builds without a GPU)"


def gpu_skip_reason() -> str | None:
    from runtime.backends.cuda import driver_problem

    problem = driver_problem()
    if problem:
        return f"needs an NVIDIA GPU; this machine has {problem}"
    return None if _importable("cuda") else "cuda-python is not installed"


def execution_skip_reason() -> str | None:
    return gpu_skip_reason() or builder_skip_reason()


def pytest_collection_modifyitems(config, items):
    reasons = {"trt_builder": builder_skip_reason(), "tensorrt": execution_skip_reason(), "gpu": gpu_skip_reason()}
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


# --- the shipped motion model and its held-out videos ---------------------------------------------
# The held-out set (seed HELD_OUT_SEED, never seen in training) is small and short so that writing
# and decoding it takes seconds. Each video is decoded once through the runtime's `read_frames` +
# `preprocess` at 16 frames and kept as uint8: with uniform sampling, every second frame of those 16
# is exactly the 8-frame sampling and every fourth the 4-frame one (floor(2i*N/16) == floor(i*N/8)),
# so one decode serves every frame count the gates measure. Every test area shares these fixtures
# (accuracy gates, calibration, batch jobs, serving), so each is built once per session.

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
    return build_once(
        tmp_path_factory,
        "motion_held_out",
        lambda root: generate(root, HELD_OUT_PER_CLASS, HELD_OUT_SEED, max_side=200, max_seconds=2.5),
    )


@pytest.fixture(scope="session")
def motion_clips(motion_held_out_dir, tmp_path_factory) -> MotionClips:
    paths = sorted(motion_held_out_dir.glob("*/*.mp4"))
    folder = build_once(tmp_path_factory, "motion_clips", lambda folder: decode_clips(paths, folder / "clips.npy"))
    targets = np.array([CLASSES.index(path.parent.name) for path in paths])
    return MotionClips(paths, np.load(folder / "clips.npy"), targets)


def decode_clips(paths: list[Path], out: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def decode(path: Path) -> np.ndarray:
        return np.rint(preprocess(read_frames(path, DECODED_FRAMES)) * 255).astype(np.uint8)

    with ThreadPoolExecutor(max_workers=2) as pool:
        np.save(out, np.stack(list(pool.map(decode, paths))))


@pytest.fixture(scope="session")
def motion_model():
    """The shipped checkpoint, in PyTorch."""
    from export.checkpoint import load_checkpoint

    return load_checkpoint(SHIPPED_CHECKPOINT)


@pytest.fixture(scope="session")
def motion_onnx_fp32(motion_model, tmp_path_factory) -> Path:
    """A fresh fp32 ONNX export of the shipped checkpoint, labels included."""
    from export.onnx import export_onnx

    folder = build_once(
        tmp_path_factory,
        "motion_onnx_fp32",
        lambda folder: export_onnx(motion_model, folder / "stam_motion.onnx", labels=list(CLASSES)),
    )
    return folder / "stam_motion.onnx"


@pytest.fixture(scope="session")
def motion_onnx_fp16(motion_model, tmp_path_factory) -> Path:
    from export.onnx import export_onnx

    folder = build_once(
        tmp_path_factory,
        "motion_onnx_fp16",
        lambda folder: export_onnx(
            motion_model, folder / "stam_motion.fp16.onnx", labels=list(CLASSES), precision="fp16"
        ),
    )
    return folder / "stam_motion.fp16.onnx"


@pytest.fixture(scope="session")
def motion_onnx_int8(motion_onnx_fp32, tmp_path_factory) -> Path:
    """The fp32 export calibrated to INT8 Q/DQ as `benchmarks.accuracy_table` does, on 2 videos per class of its seed."""
    from benchmarks.accuracy_table import calibrate_int8

    folder = build_once(
        tmp_path_factory,
        "motion_onnx_int8",
        lambda folder: calibrate_int8(motion_onnx_fp32, folder, frames=8, per_class=2),
    )
    return folder / "motion.int8.onnx"
