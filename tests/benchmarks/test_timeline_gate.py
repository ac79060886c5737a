"""The timeline's accuracy gate: the shipped motion model labels the shots of a long video.

A long motion video (shots of different classes, known boundaries) goes through
`python -m runtime.infer NAME.frames.onnx VIDEO --timeline` at T=8 (the trained length), F=3;
windows that lie inside one shot must get that shot's class.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks.motion import HELD_OUT_SEED
from benchmarks.motion.generate import CLASSES, plan_long_video, read_segments, segments_of, write_long_video
from tests.conftest import build_once

MIN_INSIDE_TOP1 = 0.90
SEGMENTS = 27  # three rounds of the nine classes, ~90 s


def test_long_plan_is_pure_and_changes_class_at_every_boundary():
    specs = plan_long_video(SEGMENTS, HELD_OUT_SEED)
    assert specs == plan_long_video(SEGMENTS, HELD_OUT_SEED) != plan_long_video(SEGMENTS, HELD_OUT_SEED + 1)
    labels = [spec.label for spec in specs]
    assert all(a != b for a, b in zip(labels, labels[1:]))
    assert sorted(labels[:9]) == sorted(CLASSES)  # shuffled rounds of every class
    assert len({spec.index for spec in specs}) == SEGMENTS  # each shot its own content
    segments = segments_of(specs)
    assert segments[0].start == 0 and all(a.end == b.start for a, b in zip(segments, segments[1:]))
    assert all(2.8 - 1 / 15 <= s.end - s.start <= 3.6 + 1 / 15 for s in segments)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    """Built once per test run, whatever the number of workers."""
    folder = build_once(
        tmp_path_factory,
        "motion_long",
        lambda root: write_long_video(plan_long_video(SEGMENTS, HELD_OUT_SEED), root / "long.mp4"),
    )
    return folder / "long.mp4"


@pytest.fixture(scope="module")
def motion_split(motion_model, tmp_path_factory):
    from export.onnx import export_split

    return export_split(
        motion_model, tmp_path_factory.mktemp("motion_split") / "stam_motion.onnx", labels=list(CLASSES)
    )


def test_windows_inside_one_shot_get_its_class(motion_split, long_video):
    segments = read_segments(long_video)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "runtime.infer",
            str(motion_split[0]),
            str(long_video),
            "--timeline",
            "--window",
            "8",
            "--fps",
            "3",
            "--stride",
            "1",
            "--topk",
            "1",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    windows = [json.loads(line) for line in done.stdout.splitlines()][:-1]
    inside = []
    for window in windows:
        # sample times are start + i/F, i < 8; the window lies in a shot when all eight do
        last_sample = window["end"] - 1 / 3
        shot = next((s for s in segments if s.start - 1e-6 <= window["start"] and last_sample < s.end), None)
        if shot is not None:
            inside.append(window["topk"][0]["label"] == shot.label)
    assert len(inside) >= 40  # enough windows for the rate to mean something
    accuracy = sum(inside) / len(inside)
    print(f"timeline: {sum(inside)} of {len(inside)} windows inside one shot correct ({accuracy:.1%})")
    assert accuracy >= MIN_INSIDE_TOP1


def test_long_mode_command_line(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.motion.generate",
            "--out",
            str(tmp_path),
            "--long",
            "2",
            "--segment-seconds",
            "1",
            "1",
            "--size",
            "64",
            "48",
            "--fps",
            "10",
            "--seed",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    segments = read_segments(tmp_path / "long_s5.mp4")
    assert [(s.first_frame, s.num_frames) for s in segments] == [(0, 10), (10, 10)]
    assert segments[0].label != segments[1].label
    from runtime.decode import probe

    assert probe(tmp_path / "long_s5.mp4").num_frames == 20


def test_long_mode_bad_input_is_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.motion.generate", "--out", str(tmp_path), "--long", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stderr.strip() == "error: --long must be at least 1 segment, got 0"
