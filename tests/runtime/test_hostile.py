"""Hostile files through `load_clip`: a one-line refusal or a correct result, never a crash, hang or blow-up.

Every case of `benchmarks.hostile_video` is written small (a 1024x1024 "huge" frame, a 16x2048
strip) and decoded under limits scaled down to match (76,800 pixels, one hour), each in a child
process with a timeout, whose peak memory the kernel reports. The same paths then guard the
full-size files under the real defaults (`python -m benchmarks.hostile` measures those).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.decode_probe import Probe, probe_in_child
from benchmarks.hostile_video import CASES, Sizes
from benchmarks.synthetic_video import textured_frame
from runtime.decode import sample_indices
from runtime.preprocess import preprocess

SMALL = Sizes(huge_side=1024, huge_frames=4, small=(64, 48), tall=(16, 2048), gop_frames=1000, good=(64, 48))
LIMITS = {"max_pixels": 320 * 240, "max_duration": 3600.0, "max_video_bytes": 1 << 20, "decode_timeout": 20.0}
FRAMES = 8
TIMEOUT_S = 120  # a hang, not a slow machine: the slowest case decodes in about a second here
PEAK_RSS_MB = 600  # the interpreter, PyAV and numpy take ~150 MB; a decode of 1024x1024 frames stays far below

# What each case must come to under LIMITS: a limit (naming its flag), another one-line error, or pixels.
REFUSED_BY = {
    "huge_declared": "--max-pixels",
    "size_switch": "--max-pixels",
    "ten_hours": "--max-duration",
    "ten_hours_mkv": "--max-duration",
}
BROKEN = {
    "truncated_half",
    "truncated_half_faststart",
    "truncated_tenth_faststart",
    "noise",
    "empty",
    "header_then_noise",
}
DECODED = {case.name for case in CASES} - set(REFUSED_BY) - BROKEN


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hostile")
    return {case.name: case.write(folder, SMALL) for case in CASES}


def probe(path: Path, **limits) -> Probe:
    result = probe_in_child(path, FRAMES, {**LIMITS, **limits}, TIMEOUT_S)
    assert result.outcome not in ("crash", "hang"), (path.name, result.message)
    assert "\n" not in result.message and "Traceback" not in result.message, result.message
    assert result.peak_rss_mb < PEAK_RSS_MB, (path.name, result.peak_rss_mb)
    return result


def test_every_case_is_covered():
    assert DECODED | set(REFUSED_BY) | BROKEN == {case.name for case in CASES}
    assert {"tall", "wide_ffv1", "h264_yuv420p10le", "png_rgb24", "long_gop"} <= DECODED


@pytest.mark.parametrize("name", sorted(REFUSED_BY))
def test_over_a_limit_is_refused_in_one_line(hostile, name):
    result = probe(hostile[name])
    assert result.outcome == "limit", (name, result)
    assert REFUSED_BY[name] in result.message and hostile[name].name in result.message


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_files_are_one_line_errors(hostile, name):
    result = probe(hostile[name])
    assert result.outcome == "error", (name, result)
    assert result.message.startswith(str(hostile[name])), result.message


@pytest.mark.parametrize("name", sorted(DECODED))
def test_admitted_files_decode_to_valid_pixels(hostile, name):
    result = probe(hostile[name])
    assert result.outcome == "ok", (name, result)
    assert result.shape == [FRAMES, 3, 224, 224]
    low, high = result.pixel_range
    assert 0.0 <= low <= high <= 1.0


def test_lossless_rgb_decodes_to_the_exact_frames(hostile):
    """png in rgb24 is lossless: the pixels equal preprocessing the frames that were encoded."""
    from runtime.clips import load_clip

    pixels, _ = load_clip(hostile["png_rgb24"], FRAMES)
    width, height = SMALL.good
    indices = sample_indices(8, FRAMES)  # the case encodes 8 frames
    source = np.stack([textured_frame(index, width, height) for index in indices])
    np.testing.assert_array_equal(pixels, preprocess(source))


def test_gray_decodes_to_equal_channels(hostile):
    from runtime.clips import load_clip

    pixels, _ = load_clip(hostile["h264_gray"], FRAMES)
    np.testing.assert_array_equal(pixels[:, 0], pixels[:, 1])
    np.testing.assert_array_equal(pixels[:, 1], pixels[:, 2])


def test_the_pixel_limit_admits_what_it_is_raised_to(hostile):
    """--max-pixels is a limit, not a ban: raised past the frame size, the huge file decodes."""
    result = probe(hostile["huge_declared"], max_pixels=SMALL.huge_side**2)
    assert result.outcome == "ok" and result.shape == [FRAMES, 3, 224, 224], result


def test_the_byte_limit_refuses_before_decoding(hostile):
    result = probe(hostile["noise"], max_video_bytes=1000)
    assert result.outcome == "limit" and "--max-video-bytes" in result.message, result


def test_the_decode_timeout_stops_a_long_decode(hostile):
    """A decode that cannot finish in its time is stopped by the decode loop, not left running."""
    result = probe(hostile["long_gop"], decode_timeout=1e-6)
    assert result.outcome == "limit" and "--decode-timeout" in result.message, result
