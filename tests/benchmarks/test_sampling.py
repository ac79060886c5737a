"""benchmarks.sampling: repeated segments make one valid stream that seeks exactly; the table; bad arguments."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from benchmarks.sampling import _options, _repeat, parse_args, render_table
from runtime.decode import probe, read_clip, read_clip_without_seeking
from runtime.errors import StamError
from tests.videos import decoded_codes, write_video, x264_gop


def test_repeated_segment_is_one_stream_that_seeks_exactly(tmp_path):
    segment = write_video(tmp_path / "segment.mp4", 20, 64, 48, codec_options=x264_gop(10))
    path = _repeat(segment, tmp_path / "long.mp4", 3)
    assert probe(path).num_frames == 60
    seek, full = read_clip(path, 7), read_clip_without_seeking(path, 7)
    assert seek.notes == [] and np.array_equal(seek.frames, full.frames)
    assert decoded_codes(seek.frames) == [index % 20 for index in seek.indices]  # copy k shows frames 0..19 again


def test_table_has_speed_up_and_ratio_to_the_clip():
    result = {
        "gop_seconds": 2,
        "length": "5m",
        "identical": True,
        "ms": {"seek": 200.0, "from start": 2000.0, "10 s clip": 100.0},
        "cpu_ms": {"seek": 150.0, "from start": 1900.0, "10 s clip": 90.0},
    }
    table = render_table({"results": [result], "settings": {"decoders": 1}})
    assert table.splitlines()[0].startswith("| GOP | video | seek ms (CPU), 1 decoder | from start")
    assert table.splitlines()[2] == "| 2 s | 5m | 200 (150) | 2000 (1900) | 10.0x | 2.0x | yes |"


def test_table_shows_one_decoder_beside_several():
    result = {
        "gop_seconds": 10,
        "length": "60m",
        "identical": False,
        "ms": {"seek": 400.0, "from start": 4000.0, "10 s clip": 100.0, "seek, 1 decoder": 700.0},
        "cpu_ms": {"seek": 600.0, "from start": 3900.0, "10 s clip": 90.0, "seek, 1 decoder": 650.0},
    }
    lines = render_table({"results": [result], "settings": {"decoders": 2}}).splitlines()
    assert "seek ms (CPU), 2 decoders" in lines[0] and "| 1 decoder ms (CPU) | 1 decoder / 10 s clip |" in lines[0]
    assert lines[2] == "| 10 s | 60m | 400 (600) | 4000 (3900) | 10.0x | 4.0x | 700 (650) | 7.0x | NO |"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--lengths", "2h"], "--lengths takes names"),
        (["--gops", "7"], "whole GOPs"),
        (["--gops", "two"], "whole seconds"),
        (["--decoders", "0"], "--decoders and --gops must be positive"),
    ],
)
def test_bad_lengths_and_gops_are_refused(argv, message):
    with pytest.raises(StamError, match=message):
        _options(parse_args(argv))


def test_a_bad_argument_is_one_error_line_before_any_work():
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.sampling", "--gops", "7"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
