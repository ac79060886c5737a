"""Accuracy gate: the trained motion model, INT8 through the full runtime path, within 1 point of fp32.

The held-out videos (the session's shared set) are read back by runtime.decode, preprocessed by
runtime.preprocess and run on ONNX Runtime CPU, exactly as `python -m runtime.infer` does.
Calibration uses videos of another seed than both the training and the held-out sets.
"""

from __future__ import annotations

import pytest

from calibration.data import iter_clips
from calibration.quantize import calibrate
from calibration.report import compare_models, folder_labels
from tests.conftest import build_once

CALIBRATION_SEED = 4242  # neither benchmarks.motion.TRAIN_SEED nor HELD_OUT_SEED
CALIBRATION_PER_CLASS = 3
MAX_TOP1_DROP = 0.01  # one point

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def calibration_videos(tmp_path_factory):
    from benchmarks.motion import HELD_OUT_SEED, TRAIN_SEED
    from benchmarks.motion.generate import generate, plan_dataset

    assert CALIBRATION_SEED not in (TRAIN_SEED, HELD_OUT_SEED)
    size = {"max_side": 200, "max_seconds": 2.5}
    folder = build_once(
        tmp_path_factory,
        "motion_calibration",
        lambda root: generate(root, CALIBRATION_PER_CLASS, CALIBRATION_SEED, **size),
    )
    return [folder / spec.label / spec.name for spec in plan_dataset(CALIBRATION_PER_CLASS, CALIBRATION_SEED, **size)]


def test_int8_top1_within_one_point_of_fp32(motion_onnx_fp32, motion_clips, calibration_videos, tmp_path):
    from runtime import open_model

    held_out = motion_clips.paths
    assert not set(calibration_videos) & set(held_out)
    with open_model(motion_onnx_fp32) as model:
        frames, labels = model.frames_trained, folder_labels(held_out, model.labels)
    assert labels is not None, "held-out videos must sit in folders named after the model's labels"
    int8 = calibrate(
        motion_onnx_fp32, iter_clips(calibration_videos, frames), tmp_path / "motion.int8.onnx", method="entropy"
    ).path
    report = compare_models(motion_onnx_fp32, int8, motion_clips.frames(frames), labels)
    print(f"\n{report.table('int8')}")
    assert report.fp32_top1 >= 0.9, "the shipped motion model should solve its own task"
    assert report.quantized_top1 >= report.fp32_top1 - MAX_TOP1_DROP
    assert report.top1_agreement >= 0.95
