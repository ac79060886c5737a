"""Accuracy gate: the trained motion model, INT8 through the full runtime path, within 1 point of fp32.

Held-out videos are encoded with PyAV, then read back by runtime.video, preprocessed by
runtime.preprocess and run on ONNX Runtime CPU, exactly as `python -m runtime.infer` does.
Calibration uses videos of another seed than both the training and the held-out sets.
"""

from __future__ import annotations

import pytest

from calibration.data import iter_clips
from calibration.quantize import calibrate
from calibration.report import compare_models, folder_labels

CALIBRATION_SEED = 4242  # neither benchmarks.motion.TRAIN_SEED nor HELD_OUT_SEED
CALIBRATION_PER_CLASS = 3
HELD_OUT_PER_CLASS = 8
MAX_TOP1_DROP = 0.01  # one point


@pytest.fixture(scope="module")
def motion_fp32(tmp_path_factory):
    """The shipped motion model exported to fp32 ONNX, labels included."""
    from benchmarks.motion import SHIPPED_CHECKPOINT
    from benchmarks.motion.generate import CLASSES
    from export.checkpoint import load_checkpoint
    from export.onnx import export_onnx

    path = tmp_path_factory.mktemp("motion") / "stam_motion.onnx"
    return export_onnx(load_checkpoint(SHIPPED_CHECKPOINT), path, labels=list(CLASSES))


@pytest.fixture(scope="module")
def motion_videos(tmp_path_factory):
    """(calibration videos, held-out videos), encoded to files in class folders."""
    from benchmarks.motion import HELD_OUT_SEED, TRAIN_SEED
    from benchmarks.motion.generate import generate

    assert CALIBRATION_SEED not in (TRAIN_SEED, HELD_OUT_SEED)
    root = tmp_path_factory.mktemp("motion_videos")
    calibration = generate(root / "calibration", per_class=CALIBRATION_PER_CLASS, seed=CALIBRATION_SEED)
    held_out = generate(root / "held_out", per_class=HELD_OUT_PER_CLASS, seed=HELD_OUT_SEED)
    assert not set(calibration) & set(held_out)
    return calibration, held_out


def test_int8_top1_within_one_point_of_fp32(motion_fp32, motion_videos, tmp_path):
    from runtime import open_model

    calibration_videos, held_out = motion_videos
    with open_model(motion_fp32) as model:
        frames, labels = model.frames_trained, folder_labels(held_out, model.labels)
    assert labels is not None, "held-out videos must sit in folders named after the model's labels"
    cache = tmp_path / "clips"
    int8 = calibrate(motion_fp32, iter_clips(calibration_videos, frames, cache_dir=cache),
                     tmp_path / "motion.int8.onnx", method="entropy").path
    report = compare_models(motion_fp32, int8, iter_clips(held_out, frames, cache_dir=cache), labels)
    print(f"\n{report.table('int8')}")
    assert report.fp32_top1 >= 0.8, "the shipped motion model should solve its own task"
    assert report.quantized_top1 >= report.fp32_top1 - MAX_TOP1_DROP
    assert report.top1_agreement >= 0.95
