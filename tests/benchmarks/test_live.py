"""benchmarks.live's INT8 path on stam_tiny: the calibrated frames part beside its partner and its reuse,
the agreement with fp32, and the Live page's rows for both precisions (the timing is the benchmark's job)."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from benchmarks import live
from benchmarks.docs_tables import RESULTS, render_live
from benchmarks.motion import HELD_OUT_SEED
from calibration.quantize import META_CALIBRATION
from runtime import contract
from runtime.artifact import describe


@pytest.fixture
def tiny_pair(tiny_split, tmp_path) -> Path:
    """A private copy of the tiny split pair (the INT8 part is written beside it); its frames part."""
    folder = tmp_path / "pair"
    folder.mkdir()
    for part in tiny_split:
        shutil.copy(part, folder / part.name)
    return folder / tiny_split[0].name


def test_the_int8_frames_part_is_calibrated_beside_its_partner_then_reused(tiny_pair, tmp_path, monkeypatch):
    quantized, seconds = live.int8_part(tiny_pair, tmp_path / "work", clips=2, frames=8)
    assert quantized == tiny_pair.with_name("stam_tiny.frames.int8.onnx") and seconds is not None
    info = describe(quantized)
    assert info.precision == "int8" and info.part == contract.PART_FRAMES
    assert info.partner == tiny_pair.with_name("stam_tiny.temporal.onnx")
    assert info.metadata[META_CALIBRATION] == "int8 minmax, 2 clips of 8 frames"
    assert sorted(p.name for p in tiny_pair.parent.iterdir()) == sorted(
        [tiny_pair.name, quantized.name, "stam_tiny.temporal.onnx"]
    )  # no partial file left

    def refuse(*args, **kwargs):
        raise AssertionError("calibrated again")

    monkeypatch.setattr("calibration.quantize.calibrate", refuse)
    assert live.int8_part(tiny_pair, tmp_path / "again", clips=2, frames=8) == (quantized, None)
    assert not (tmp_path / "again").exists()  # no videos generated for a reused part


def test_a_pair_agrees_with_itself_exactly_and_int8_moves_logits_within_tolerance(tiny_pair, tmp_path):
    quantized, _ = live.int8_part(tiny_pair, tmp_path / "work", clips=2, frames=8)
    clips = list(live.generated_clips(tmp_path / "held_out", HELD_OUT_SEED, 3, 8))
    same = live.int8_agreement(tiny_pair, tiny_pair, clips)
    assert same["windows"] == 3 and same["top1_agreement"] == 1.0 and same["max_abs_logit_diff"] == 0.0
    assert same["min_embedding_cosine"] == pytest.approx(1.0, abs=1e-5)
    moved = live.int8_agreement(tiny_pair, quantized, clips)
    assert 0.0 < moved["max_abs_logit_diff"] <= contract.tolerance("int8", moved["fp32_max_abs_logit"])
    assert 0.0 < moved["fp32_median_top1_margin"] <= 2 * moved["fp32_max_abs_logit"]
    assert 0.9 < moved["min_embedding_cosine"] < 1.0


def test_both_precisions_reach_the_live_page(tiny_pair, tmp_path):
    args = argparse.Namespace(batch_size=2, iters=1, calibration_clips=2, agreement_clips=2)
    cost, details = live.stam16_int8(tiny_pair, tmp_path / "work", args)
    assert cost["precision"] == "int8" and cost["frame_s"] > 0 and cost["window_s"] > 0
    assert details["kernels"] == cost["kernels"] and details["agreement"]["windows"] == 2
    document = json.loads((RESULTS / "live_cpu.json").read_text())
    fp32 = {"model": "stam_16", "precision": "fp32", **live.per_frame_cost(tiny_pair, args)}
    document["per_frame"] = {"stam_16": fp32, "stam_16_int8": cost}
    for entry in document["per_frame"].values():
        entry.update(fps=live.REFERENCE_FPS, cameras_per_core=live.cameras(entry, 2, live.REFERENCE_FPS, 4))
    document["int8"] = {**details, "kernels": "simulated"}
    cost["kernels"] = "simulated"
    page = render_live(document)
    assert f"| stam_16 | fp32 | {fp32['frame_s'] * 1000:.1f} |" in page
    assert f"| stam_16 | int8 (simulated) | {cost['frame_s'] * 1000:.1f} |" in page
    assert "calibrated by `calibration.quantize` (int8 minmax, 2 clips of 16 frames;" in page
    assert "this CPU has no VNNI" in page
    document["int8"]["kernels"] = cost["kernels"] = "integer"
    page = render_live(document)
    assert "| stam_16 | int8 |" in page and "integer kernels" in page


def test_a_count_below_one_is_one_error_line(capsys, tmp_path):
    assert live.main(["--calibration-clips", "0", "--work", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --calibration-clips and --agreement-clips must be at least 1"]
    assert not any(tmp_path.iterdir())  # refused before any video is written
