"""The motion dataset generator and the training augmentations: determinism, layout, label maps."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest

from benchmarks.motion.generate import (
    CLASSES,
    MIRRORED_X,
    MIRRORED_Y,
    REVERSED,
    draw_motion,
    main,
    plan_dataset,
    render,
    write_video,
)


def test_label_maps_are_involutions_over_the_classes():
    for mapping in (REVERSED, MIRRORED_X, MIRRORED_Y):
        assert set(mapping) == set(CLASSES)
        assert all(mapping[mapping[name]] == name for name in CLASSES)
    assert list(CLASSES) == sorted(CLASSES)  # sorted folder order is the label order
    assert sum(REVERSED[name] != name for name in CLASSES) == 8  # only "still" survives reversal


def test_plan_is_a_pure_function_of_its_arguments():
    first, second = plan_dataset(3, 7), plan_dataset(3, 7)
    assert first == second and len(first) == 3 * len(CLASSES)
    assert plan_dataset(3, 8) != first
    for spec in plan_dataset(20, 0):
        assert 15 <= spec.fps <= 30 and 1.5 * spec.fps - 1 <= spec.num_frames <= 4 * spec.fps + 1
        assert 90 <= min(spec.width, spec.height) and max(spec.width, spec.height) <= 321


def test_sizes_include_portrait_and_odd_frames():
    specs = plan_dataset(20, 0)
    assert any(s.height > s.width for s in specs)
    assert any(s.width % 2 or s.height % 2 for s in specs)


def test_every_class_draws_object_state_from_shared_ranges():
    """One frame cannot tell the class: mid-clip sizes overlap across all classes."""
    rng = np.random.default_rng(0)
    radii = {name: [draw_motion(name, 240, 180, rng).at(0.5)[2] / 180 for _ in range(200)] for name in CLASSES}
    low, high = max(min(r) for r in radii.values()), min(max(r) for r in radii.values())
    assert low < high


def test_motion_moves_the_way_its_label_says():
    rng = np.random.default_rng(1)
    left, grow = draw_motion("move_left", 240, 180, rng), draw_motion("grow", 240, 180, rng)
    assert left.end[0] < left.start[0] and left.end[1] == left.start[1]
    assert grow.radius[1] > 1.7 * grow.radius[0]
    still = draw_motion("still", 240, 180, rng)
    assert still.start == still.end and still.angle[0] == still.angle[1]


def test_rendering_and_encoding_are_deterministic(tmp_path):
    spec = replace(plan_dataset(1, 3)[6], num_frames=12)
    frames = render(spec)
    assert frames.shape == (12, spec.height, spec.width, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(render(spec), frames)
    digests = {
        hashlib.sha256(write_video(frames, tmp_path / f"{i}.mp4", spec.fps).read_bytes()).hexdigest() for i in range(3)
    }
    assert len(digests) == 1


def test_written_video_reads_back_through_the_runtime(tmp_path):
    from runtime.decode import read_frames

    spec = replace(plan_dataset(1, 0)[0], width=161, height=121, num_frames=20)  # odd sides: yuv444p
    frames = render(spec)
    path = write_video(frames, tmp_path / "odd.mp4", spec.fps)
    decoded = read_frames(path, 20)
    assert decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames).mean() < 8  # lossy, but the same picture


def test_command_line_writes_the_kinetics_layout(tmp_path, capsys):
    assert (
        main(["--out", str(tmp_path), "--per-class", "1", "--seed", "5", "--max-side", "160", "--max-seconds", "1.5"])
        == 0
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(CLASSES)
    assert all(len(list((tmp_path / name).glob("*.mp4"))) == 1 for name in CLASSES)
    assert "wrote 9 videos" in capsys.readouterr().out


def test_command_line_rejects_bad_counts(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--per-class", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: --per-class must be at least 1")


def test_augment_maps_labels_and_states_with_the_transform():
    torch = pytest.importorskip("torch")
    from benchmarks.motion.train import augment

    frames, width = 4, 8
    clips = torch.arange(frames * width, dtype=torch.uint8).reshape(1, frames, 1, 1, width).repeat(64, 1, 3, 2, 1)
    states = torch.arange(frames, dtype=torch.float32)[None, :, None].repeat(64, 1, 5) + 1
    labels = torch.full((64,), CLASSES.index("move_left"))
    out_clips, out_states, out_labels = augment(clips, states, labels, torch.Generator().manual_seed(0))
    reversed_ = out_clips[:, 0, 0, 0, 0] >= width * (frames - 1)  # first frame now holds the last one's pixels
    flipped = (out_clips[:, 0, 0, 0, 0] % width) == width - 1
    assert reversed_.any() and (~reversed_).any() and flipped.any() and (~flipped).any()
    expected = [("move_right" if rev != flip else "move_left") for rev, flip in zip(reversed_, flipped)]
    assert [CLASSES[i] for i in out_labels.tolist()] == expected  # each swaps left and right
    assert torch.equal(out_states[reversed_, 0, 1], torch.full((int(reversed_.sum()),), float(frames)))
    assert (out_states[flipped, :, 0] < 0).all() and (out_states[~flipped, :, 0] > 0).all()  # x mirrors
    assert torch.equal(
        clips, torch.arange(frames * width, dtype=torch.uint8).reshape(1, frames, 1, 1, width).repeat(64, 1, 3, 2, 1)
    )  # inputs untouched
