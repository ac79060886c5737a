"""runtime.decode.stream: the frame on screen at each time k/F, streamed, and where a damaged file stops."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.decode import FrameStream
from runtime.errors import VideoError
from tests.videos import read_index_code, write_random_bytes, write_video


def sampled(path, fps, **kwargs) -> tuple[list[tuple[int, float, int]], FrameStream]:
    stream = FrameStream(str(path), fps, **kwargs)
    return [(f.index, round(f.time, 6), read_index_code(f.image)) for f in stream], stream


def test_frames_at_k_over_f_are_those_on_screen(tmp_path):
    """30 fps sampled at 4 per second: sample k shows frame floor(k * 30 / 4)."""
    path = write_video(tmp_path / "v.mp4", 75, 64, 48, fps=30)  # 2.5 s
    frames, stream = sampled(path, 4.0)
    assert [code for _, _, code in frames] == [k * 30 // 4 for k in range(10)]
    assert [t for _, t, _ in frames] == [k / 4 for k in range(10)]
    assert stream.count == 10 and stream.notes == []


def test_a_rate_above_the_video_rate_repeats_frames(tmp_path):
    path = write_video(tmp_path / "v.mp4", 10, 64, 48, fps=5)  # 2 s
    frames, _ = sampled(path, 10.0)
    assert [code for _, _, code in frames] == [k // 2 for k in range(20)]


def test_variable_frame_rate_is_sampled_by_time(tmp_path):
    times = [0.0, 0.1, 0.2, 1.0, 1.05, 1.9, 2.0, 2.6]  # a stall, then a burst
    path = write_video(tmp_path / "vfr.mkv", len(times), 64, 48, timestamps=times)
    frames, _ = sampled(path, 2.0)  # t = 0, 0.5, 1.0, 1.5, 2.0, 2.5
    assert [code for _, _, code in frames] == [0, 2, 3, 4, 6, 6]


def test_unwanted_samples_are_counted_not_yielded(tmp_path):
    path = write_video(tmp_path / "v.mp4", 60, 64, 48, fps=30)
    frames, stream = sampled(path, 10.0, wanted=lambda k: k % 5 < 2)
    assert [index for index, _, _ in frames] == [0, 1, 5, 6, 10, 11, 15, 16]
    assert stream.count == 20


def test_corrupt_middle_ends_at_the_last_good_frame(tmp_path):
    """Random bytes over the middle of the data: frames before the damage are kept, exactly."""
    path = write_video(tmp_path / "v.mp4", 600, 64, 48, fps=30)  # 20 s, moov at the end
    data = bytearray(path.read_bytes())
    start, stop = len(data) * 45 // 100, len(data) * 55 // 100
    data[start:stop] = np.random.default_rng(0).integers(0, 256, stop - start, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    frames, stream = sampled(path, 3.0)
    assert 10 < len(frames) < 55
    assert [code for _, _, code in frames] == [k * 10 for k in range(len(frames))]  # none is garbage
    assert len(stream.notes) == 1 and "the timeline ends at the last good frame" in stream.notes[0]


def test_unreadable_file_is_a_video_error(tmp_path):
    with pytest.raises(VideoError, match="not a readable video"):
        list(FrameStream(str(write_random_bytes(tmp_path / "noise.mp4")), 1.0))
    with pytest.raises(VideoError, match="no such file"):
        list(FrameStream(str(tmp_path / "missing.mp4"), 1.0))


def test_duration_for_the_progress_bar(tmp_path):
    path = write_video(tmp_path / "v.mp4", 90, 64, 48, fps=30)
    assert FrameStream(str(path), 1.0).duration() == pytest.approx(3.0, abs=0.05)
