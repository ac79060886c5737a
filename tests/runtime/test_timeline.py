"""runtime.timeline: windows over a streamed video, the embedding cache, the notes, and `--timeline`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tracemalloc

import numpy as np
import onnx
import pytest

from runtime.results import Prediction
from runtime.split import open_window_model
from runtime.timeline import Ring, Timeline, TimelineOptions, WindowResult, longest_runs
from tests.videos import write_random_bytes, write_video


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """20 s at 10 fps, 64x48: 40 samples at F = 2."""
    return write_video(tmp_path_factory.mktemp("timeline") / "v.mp4", 200, 64, 48, fps=10)


@pytest.fixture(scope="module")
def pair(tiny_split):
    with open_window_model(tiny_split[0]) as model:
        yield model


def timeline(model, path, **options) -> tuple[list[WindowResult], Timeline]:
    runner = Timeline(model, str(path), TimelineOptions.resolve(**{"window": 8, "fps": 2.0, **options}))
    return list(runner), runner


def test_defaults_are_a_quarter_window_stride_at_the_reference_rate():
    options = TimelineOptions.resolve(16)
    assert (options.stride, options.fps) == (4, 1.6)
    assert TimelineOptions.resolve(2).stride == 1


def test_windows_and_gaps_by_sample_index():
    options = TimelineOptions.resolve(4, stride=6, fps=1.0)
    assert [k for k in range(14) if options.wanted(k)] == [0, 1, 2, 3, 6, 7, 8, 9, 12, 13]
    assert [k for k in range(14) if options.closes_window(k)] == [3, 9]


def test_ring_keeps_the_newest_in_time_order():
    ring = Ring(3)
    for value in range(5):
        ring.push(np.array([value]))
    assert ring.last(3).ravel().tolist() == [2, 3, 4] and ring.last(2).ravel().tolist() == [3, 4]


def test_longest_run_of_each_top1_label():
    labels = ["a", "a", "b", "a", "a", "a", "b"]
    results = [WindowResult("v", i, i + 2, [Prediction(label, 0, 1.0)]) for i, label in enumerate(labels)]
    runs = {run.label: (run.start, run.end, run.windows) for run in longest_runs(results)}
    assert runs == {"a": (3, 7, 3), "b": (2, 4, 1)}


def test_each_frame_is_embedded_once(pair, video):
    results, runner = timeline(pair, video, stride=2)
    starts = [r.start for r in results]
    assert starts == [k / 2 for k in range(0, 33, 2)]  # 40 samples, windows of 8 every 2
    assert all(r.end - r.start == 4.0 for r in results)
    stats = runner.stats
    assert (stats.samples, stats.embedded, stats.windows) == (40, 40, 17)
    assert stats.hit_rate == pytest.approx(1 - 40 / (17 * 8))
    assert runner.notes == []


def test_split_pair_and_whole_model_give_the_same_timeline(pair, tiny_onnx, video):
    split_results, _ = timeline(pair, video, stride=4, topk=3)
    with open_window_model(tiny_onnx) as whole:
        whole_results, whole_runner = timeline(whole, video, stride=4, topk=3)
    assert whole_runner.stats.hit_rate == 0.0
    assert [(r.start, r.end) for r in split_results] == [(r.start, r.end) for r in whole_results]
    for a, b in zip(split_results, whole_results):
        assert [p.index for p in a.predictions] == [p.index for p in b.predictions]
        np.testing.assert_allclose(
            [p.probability for p in a.predictions], [p.probability for p in b.predictions], atol=1e-5
        )


def test_a_tail_shorter_than_a_stride_gets_a_window_ending_at_the_last_sample(pair, video):
    results, runner = timeline(pair, video, stride=5)  # regular windows start at 0, 5, ..., 30; 40 samples
    assert [r.start * 2 for r in results] == [0, 5, 10, 15, 20, 25, 30, 32]
    assert results[-1].end == 20.0


def test_stride_above_the_window_leaves_gaps_and_says_so(pair, video):
    results, runner = timeline(pair, video, stride=12)
    assert [r.start * 2 for r in results] == [0, 12, 24]  # 36 would end at sample 44 > 40
    assert runner.stats.embedded == 8 * 3 + 4  # samples in gaps are never embedded (36..39 are, awaiting a window)
    assert runner.notes == ["stride 12 exceeds the window 8: 4 samples between windows are skipped"]


def test_a_video_shorter_than_one_window_gives_one_window_with_a_note(pair, tmp_path):
    short = write_video(tmp_path / "short.mp4", 25, 64, 48, fps=10)  # 2.5 s: 5 samples at F = 2
    results, runner = timeline(pair, short)
    assert [(r.start, r.end) for r in results] == [(0.0, 2.5)]
    assert len(runner.notes) == 1 and "shorter than one window (5 of 8 samples" in runner.notes[0]


def test_corrupt_middle_keeps_the_windows_before_it(pair, tmp_path):
    path = write_video(tmp_path / "damaged.mp4", 600, 64, 48, fps=30)
    data = bytearray(path.read_bytes())
    start, stop = len(data) * 45 // 100, len(data) * 55 // 100
    data[start:stop] = np.random.default_rng(0).integers(0, 256, stop - start, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    intact, _ = timeline(pair, write_video(tmp_path / "intact.mp4", 600, 64, 48, fps=30), stride=2)
    results, runner = timeline(pair, path, stride=2)
    assert 3 <= len(results) < len(intact) and results[-1].end < 20
    # the regular windows before the damage are those of the intact file; the last one ends at the last good frame
    assert [(r.start, r.top1.index) for r in results[:-1]] == [
        (r.start, r.top1.index) for r in intact[: len(results) - 1]
    ]
    assert any("the timeline ends at the last good frame" in note for note in runner.notes)


def infer(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "runtime.infer", *map(str, args)], capture_output=True, text=True, timeout=300
    )


def test_cli_json_lines_then_runs(tiny_split, tiny_labels, video):
    done = infer(tiny_split[0], video, "--timeline", "--fps", "2", "--stride", "4", "--topk", "2", "--json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    windows, summary = lines[:-1], lines[-1]
    assert len(windows) == 9 and set(windows[0]) == {"path", "start", "end", "topk"}
    assert windows[1]["start"] == 2.0 and windows[1]["end"] == 6.0
    assert set(windows[0]["topk"][0]) == {"label", "index", "probability"} and len(windows[0]["topk"]) == 2
    assert windows[0]["topk"][0]["label"] in tiny_labels
    assert set(summary) == {"path", "runs"} and sum(run["windows"] for run in summary["runs"]) <= 9


def test_cli_table_and_a_bad_video_alone(tiny_split, video, tmp_path):
    noise = write_random_bytes(tmp_path / "noise.mp4")
    done = infer(tiny_split[1], video, noise, "--timeline", "--fps", "2")
    assert done.returncode == 1
    assert "start s" in done.stdout and "longest run of each top-1 label:" in done.stdout
    assert done.stderr.strip().splitlines()[-2:] == [
        f"error: {noise}: not a readable video (Invalid data found when processing input)",
        "1 of 2 videos failed",
    ]


def test_cli_refuses_a_window_the_temporal_part_cannot_hold(tiny_split, video, tmp_path):
    frames_path = shutil.copy(tiny_split[0], tmp_path / tiny_split[0].name)
    temporal = onnx.load(str(tiny_split[1]))
    temporal.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 8
    onnx.save(temporal, str(tmp_path / tiny_split[1].name))
    done = infer(frames_path, video, "--timeline", "--window", "16")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"error: {frames_path}: --window 16 does not fit: frames=16 is outside the model's range 8..8"
    ]


def test_cli_timeline_options_need_timeline(tiny_onnx, video):
    done = infer(tiny_onnx, video, "--stride", "3")
    assert (
        done.returncode == 2 and done.stderr.strip() == "error: --window, --stride and --fps apply to --timeline only"
    )


def peak_traced_mib(model, path) -> float:
    """Peak of the memory Python and NumPy allocate (tracemalloc) while a timeline runs: what a
    per-frame leak would grow, counted by allocation, so the machine's load does not move it."""
    tracemalloc.start()
    try:
        results, _ = timeline(model, path, fps=2.0)
        assert results
        return tracemalloc.get_traced_memory()[1] / (1 << 20)
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_video(pair, tmp_path):
    """The peak over 5 minutes equals that over 30 s: nothing per frame is kept (600 samples, 360 MB
    of preprocessed frames if they were; the queue between decoding and the model is bounded)."""
    short = write_video(tmp_path / "short.mp4", 60, 32, 32, fps=2)
    long = write_video(tmp_path / "long.mp4", 600, 32, 32, fps=2)
    short_mib, long_mib = peak_traced_mib(pair, short), peak_traced_mib(pair, long)
    assert long_mib - short_mib < 40, (short_mib, long_mib)
