"""runtime.decode reading: sampled indices match the formulas, decoding returns exactly those frames, bad files fail cleanly.

Seeking (the frame table, the sample index, passes side by side) is tested in test_seek.py.
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest

from runtime.decode import (
    SamplingWarning,
    StreamInfo,
    list_videos,
    probe,
    read_clip,
    read_clip_without_seeking,
    read_frames,
    sample_indices,
)
from runtime.decode.read import _plan_after_short_decode
from runtime.decode.scan import frame_rate
from runtime.errors import VideoError
from tests.videos import (
    decoded_codes,
    read_index_code,
    write_elementary_h264,
    write_random_bytes,
    write_truncated,
    write_video,
)

# name -> (file name, codec, width, height, frames)
VIDEOS = {
    "mp4": ("clip.mp4", "h264", 64, 48, 30),
    "mp4_odd": ("odd.mp4", "h264", 65, 49, 30),
    "webm": ("clip.webm", "vp9", 65, 49, 30),
    "avi": ("clip.avi", "mjpeg", 63, 47, 30),
    "mkv": ("clip.mkv", "h264", 96, 64, 30),
    "short": ("short.mp4", "h264", 64, 48, 5),
    "long": ("long.mp4", "h264", 64, 48, 300),
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    return {
        name: write_video(root / file, frames, width, height, codec=codec)
        for name, (file, codec, width, height, frames) in VIDEOS.items()
    }


# --- sample_indices: uniform -------------------------------------------------------------------


@pytest.mark.parametrize("num_video_frames, num_frames", [(300, 16), (301, 16), (30, 8), (16, 16), (7, 64), (1, 3)])
def test_uniform_is_floor_i_n_over_t(num_video_frames, num_frames):
    expected = [int(np.floor(i * num_video_frames / num_frames)) for i in range(num_frames)]
    assert sample_indices(num_video_frames, num_frames) == expected


def test_uniform_repeats_frames_of_short_videos():
    assert sample_indices(5, 16) == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError, match="sampling mode"):
        sample_indices(10, 4, mode="random")
    with pytest.raises(ValueError, match="frame rate"):
        sample_indices(300, 16, mode="reference")
    with pytest.raises(ValueError, match="at least one frame"):
        sample_indices(0, 4)


# --- sample_indices: reference (torchvision VideoClips, frame_rate = T / 10) -------------------
# Values worked out by hand from torchvision's rule: step = fps / (T / 10), floor(float32(i) * step).

NTSC = 30000 / 1001  # 29.97 fps as PyAV's average_rate gives it
REFERENCE = [
    (300, 16, 30.0, [0, 18, 37, 56, 75, 93, 112, 131, 150, 168, 187, 206, 225, 243, 262, 281]),
    (250, 16, 25.0, [0, 15, 31, 46, 62, 78, 93, 109, 125, 140, 156, 171, 187, 203, 218, 234]),
    (300, 16, NTSC, [0, 18, 37, 56, 74, 93, 112, 131, 149, 168, 187, 206, 224, 243, 262, 280]),
    (
        300,
        32,
        30.0,
        [
            0,
            9,
            18,
            28,
            37,
            46,
            56,
            65,
            75,
            84,
            93,
            103,
            112,
            121,
            131,
            140,
            150,
            159,
            168,
            178,
            187,
            196,
            206,
            215,
            225,
            234,
            243,
            253,
            262,
            271,
            281,
            290,
        ],
    ),
    (
        300,
        32,
        NTSC,
        [
            0,
            9,
            18,
            28,
            37,
            46,
            56,
            65,
            74,
            84,
            93,
            103,
            112,
            121,
            131,
            140,
            149,
            159,
            168,
            177,
            187,
            196,
            206,
            215,
            224,
            234,
            243,
            252,
            262,
            271,
            280,
            290,
        ],
    ),
    (
        250,
        64,
        25.0,
        [
            0,
            3,
            7,
            11,
            15,
            19,
            23,
            27,
            31,
            35,
            39,
            42,
            46,
            50,
            54,
            58,
            62,
            66,
            70,
            74,
            78,
            82,
            85,
            89,
            93,
            97,
            101,
            105,
            109,
            113,
            117,
            121,
            125,
            128,
            132,
            136,
            140,
            144,
            148,
            152,
            156,
            160,
            164,
            167,
            171,
            175,
            179,
            183,
            187,
            191,
            195,
            199,
            203,
            207,
            210,
            214,
            218,
            222,
            226,
            230,
            234,
            238,
            242,
            246,
        ],
    ),
    (1000, 64, 30.0, [int(np.floor(i * 4.6875)) for i in range(64)]),  # 4.6875 is exact in float32
    # float32 matters: in float64, 9 * 6.666... floors to 59 and 15 * 6.666... to 99
    (107, 16, 32 / 3, [0, 6, 13, 20, 26, 33, 40, 46, 53, 60, 66, 73, 80, 86, 93, 100]),
    # integer step: torchvision slices every step-th frame, and a clip exists once ceil(N / step) >= T
    (271, 10, 30.0, [0, 30, 60, 90, 120, 150, 180, 210, 240, 270]),
    (300, 50, 30.0, list(range(0, 300, 6))),
]


@pytest.mark.parametrize("num_video_frames, num_frames, fps, expected", REFERENCE)
def test_reference_matches_torchvision(num_video_frames, num_frames, fps, expected):
    assert sample_indices(num_video_frames, num_frames, mode="reference", fps=fps) == expected


@pytest.mark.parametrize("fps", [32 / 3, NTSC, 23.976, 29.97, 59.94])
def test_reference_rounds_in_float32_as_torchvision_does(fps):
    """torchvision floors float32(i) * step; a float64 implementation picks other frames for some rates."""
    step = np.float32(fps / 1.6)
    float32_rule = np.floor(np.arange(16, dtype=np.float32) * step).astype(int).tolist()
    assert sample_indices(1000, 16, "reference", fps) == float32_rule


def test_float32_rounding_changes_frames_at_32_3_fps():
    ours = sample_indices(107, 16, "reference", 32 / 3)
    assert [ours[i] for i in (9, 15)] == [60, 100]  # float64 arithmetic would give 59 and 99


@pytest.mark.parametrize(
    "num_video_frames, num_frames, fps",
    [(299, 16, 30.0), (280, 16, 30.0), (269, 10, 30.0), (5, 16, 25.0), (100, 64, NTSC)],
)
def test_reference_falls_back_to_uniform_below_ten_seconds(num_video_frames, num_frames, fps):
    with pytest.warns(SamplingWarning, match="shorter than the reference's 10 s"):
        indices = sample_indices(num_video_frames, num_frames, mode="reference", fps=fps)
    assert indices == sample_indices(num_video_frames, num_frames)


# --- probe and read_frames on real files -------------------------------------------------------


@pytest.mark.parametrize("name", ["mp4", "mp4_odd", "webm", "avi", "mkv", "long"])
def test_probe_counts_frames_and_rate(videos, name):
    assert probe(videos[name]) == StreamInfo(VIDEOS[name][4], 30.0)


@pytest.mark.parametrize("name", ["mp4", "mp4_odd", "webm", "avi", "mkv"])
@pytest.mark.parametrize("num_frames", [8, 16])
def test_decoded_frames_are_the_sampled_ones(videos, name, num_frames):
    _, _, width, height, count = VIDEOS[name]
    frames = read_frames(videos[name], num_frames)
    assert frames.shape == (num_frames, height, width, 3) and frames.dtype == np.uint8
    assert decoded_codes(frames) == sample_indices(count, num_frames)


@pytest.mark.parametrize("threads", ["SLICE", "FRAME", "NONE"])
def test_thread_types_decode_the_same_pixels(videos, threads):
    expected = read_frames(videos["mkv"], 8)
    assert np.array_equal(read_frames(videos["mkv"], 8, threads=threads), expected)


def test_unknown_thread_type_raises(videos):
    with pytest.raises(ValueError, match="threads must be one of"):
        read_frames(videos["mp4"], 4, threads="MANY")


def test_short_video_repeats_frames(videos):
    with pytest.warns(SamplingWarning, match=r"short.mp4: frames repeated: 5 distinct of 16 frames$"):
        frames = read_frames(videos["short"], 16)
    assert decoded_codes(frames) == sample_indices(5, 16)
    assert np.array_equal(frames[0], frames[1])  # a repeated index is the same pixels


def test_long_video_uniform_and_reference(videos):
    assert decoded_codes(read_frames(videos["long"], 16)) == [i * 300 // 16 for i in range(16)]
    assert decoded_codes(read_frames(videos["long"], 16, mode="reference")) == REFERENCE[0][3]


def test_reference_on_a_short_file_warns_with_the_file_name(videos):
    with pytest.warns(SamplingWarning) as caught:
        frames = read_frames(videos["short"], 16, mode="reference")
    messages = [str(warning.message) for warning in caught]
    assert messages[0].startswith(f"{videos['short']}: shorter than the reference's 10 s")
    assert messages[1:] == [f"{videos['short']}: frames repeated: 5 distinct of 16 frames"]
    assert decoded_codes(frames) == sample_indices(5, 16)


def test_stream_without_timestamps_counts_its_packets(videos, tmp_path):
    path = write_elementary_h264(tmp_path / "raw.h264", videos["mkv"])
    assert probe(path).num_frames == 30
    clip = read_clip(path, 7)
    assert decoded_codes(clip.frames) == sample_indices(30, 7)
    assert clip.notes == ["cannot seek (packets without timestamps): decoded from the start"]


def test_read_clip_returns_notes_instead_of_warning(videos, recwarn):
    clip = read_clip(videos["short"], 16, mode="reference")
    assert len(recwarn) == 0
    assert clip.indices == sample_indices(5, 16) == decoded_codes(clip.frames)
    assert clip.notes[0].startswith("shorter than the reference's 10 s")
    assert clip.notes[1:] == ["frames repeated: 5 distinct of 16 frames"]
    assert read_clip(videos["long"], 16, mode="reference").notes == []


def test_variable_frame_rate_samples_by_frame(tmp_path):
    times = [0.0, 0.03, 0.1, 0.12, 0.5, 0.51, 0.6, 0.9, 1.0, 1.5, 1.52, 2.4]
    path = write_video(tmp_path / "vfr.mp4", len(times), 64, 48, timestamps=times)
    assert probe(path).num_frames == len(times)
    assert decoded_codes(read_frames(path, 5)) == sample_indices(len(times), 5)


@pytest.mark.parametrize("rotate, turns_back", [(-90, 1), (90, -1), (180, 2)])
def test_rotation_metadata_is_applied(tmp_path, rotate, turns_back):
    path = write_video(tmp_path / f"rot{rotate}.mp4", 6, 96, 64, rotate=rotate)
    frames = read_frames(path, 3)
    expected_shape = (64, 96) if rotate == 180 else (96, 64)
    assert frames.shape == (3, *expected_shape, 3)
    with pytest.raises(ValueError, match="corner marks"):
        read_index_code(frames[0])  # displayed frames are turned, not the stored pixels
    assert [read_index_code(np.rot90(frame, turns_back)) for frame in frames] == [0, 2, 4]


def test_portrait_phone_video_comes_out_upright(tmp_path):
    """A phone held upright stores landscape pixels and rotate=-90; the display turns them clockwise."""
    path = write_video(tmp_path / "phone.mp4", 4, 96, 64, rotate=-90)
    frame = read_frames(path, 1)[0]
    stored = read_frames(write_video(tmp_path / "plain.mp4", 4, 96, 64), 1)[0]
    assert frame.shape == (96, 64, 3)
    assert np.abs(frame.astype(int) - np.rot90(stored, -1)).mean() < 2  # clockwise turn of the stored pixels


# --- damaged and fake files ----------------------------------------------------------------------


def _bad_files(root: Path, good: Path) -> dict[str, Path]:
    faststart = write_video(root / "fast.mp4", 20, 96, 64, faststart=True)
    mdat = faststart.read_bytes().find(b"mdat")
    (root / "text.mp4").write_text("not a video\n")
    (root / "empty.mp4").write_bytes(b"")
    return {
        "missing": root / "missing.mp4",
        "directory": root,
        "random": write_random_bytes(root / "random.mp4"),
        "text": root / "text.mp4",
        "empty": root / "empty.mp4",
        "truncated": write_truncated(root / "truncated.mp4", good, 1 / 3),  # index (moov) lost
        "no_frame_decodes": write_truncated(root / "cut.mp4", faststart, (mdat + 24) / faststart.stat().st_size),
        "audio_only": _write_audio_only(root / "audio.mp4"),
    }


def _write_audio_only(path: Path) -> Path:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


BAD_MESSAGES = {
    "missing": "no such file",
    "directory": "no such file",
    "random": "not a readable video",
    "text": "not a readable video",
    "empty": "not a readable video",
    "truncated": "not a readable video",
    "no_frame_decodes": "no frame decodes",
    "audio_only": "no video stream",
}


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, videos) -> dict[str, Path]:
    return _bad_files(tmp_path_factory.mktemp("bad"), videos["mp4"])


@pytest.mark.parametrize("kind", list(BAD_MESSAGES))
@pytest.mark.parametrize("mode", ["uniform", "reference"])
def test_bad_files_raise_one_line_video_error(bad_files, kind, mode):
    path = bad_files[kind]
    with pytest.raises(VideoError) as caught:
        read_frames(path, 8, mode=mode)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and BAD_MESSAGES[kind] in message and "\n" not in message


def test_truncated_stream_is_sampled_over_what_decodes(tmp_path):
    """An mp4 with its index first, cut short: the last demuxed frame does not decode."""
    source = write_video(tmp_path / "fast.mp4", 60, 96, 64, faststart=True)
    path = write_truncated(tmp_path / "cut.mp4", source, 0.95)
    counted = probe(path).num_frames
    with pytest.warns(SamplingWarning) as caught:
        frames = read_frames(path, counted)
    messages = [str(warning.message) for warning in caught]
    decodable = int(re.match(rf"{path}: decoded (\d+) of {counted} frames", messages[0]).group(1))
    assert counted / 2 <= decodable < counted
    assert messages[1:] == [f"{path}: frames repeated: {decodable} distinct of {counted} frames"]
    assert decoded_codes(frames) == sample_indices(decodable, counted)  # frames 0..D-1, none garbled


def test_too_few_decodable_frames_is_an_error():
    info = StreamInfo(num_frames=100, fps=30.0)
    with pytest.raises(VideoError, match="v.mp4: only 49 of 100 frames decode"):
        _plan_after_short_decode("v.mp4", info, 49, 16, "uniform")
    kept = _plan_after_short_decode("v.mp4", info, 50, 16, "uniform")
    assert kept.indices == sample_indices(50, 16) and kept.notes[0].startswith("decoded 50 of 100 frames")


# --- list_videos ---------------------------------------------------------------------------------


def test_list_videos_is_recursive_sorted_and_filters_suffixes(tmp_path):
    names = ["b.mp4", "a.AVI", "sub/c.mkv", "sub/deep/d.webm", "e.mov", "f.m4v", "notes.txt", "g.mp3"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "folder.mp4").mkdir()
    found = [p.relative_to(tmp_path).as_posix() for p in list_videos(tmp_path)]
    assert found == ["a.AVI", "b.mp4", "e.mov", "f.m4v", "sub/c.mkv", "sub/deep/d.webm"]
    assert list_videos(tmp_path / "sub" / "deep" / "nothing") == []


def test_fps_comes_from_timestamps_when_the_stream_has_no_rate(tmp_path):
    path = write_video(tmp_path / "rate.mkv", 12, 64, 48, fps=Fraction(25))
    assert probe(path).fps == 25.0
    no_rate = SimpleNamespace(average_rate=None, time_base=Fraction(1, 1000))
    assert frame_rate(no_rate, 11, 0, 400) == 25.0
    assert frame_rate(no_rate, 1, 0, 0) is None


# --- notes: repeated and missing frames ------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 3, 10])
def test_short_videos_say_how_many_distinct_frames(tmp_path, count):
    path = write_video(tmp_path / f"{count}.mp4", count, 64, 48)
    clip = read_clip(path, 16)
    assert decoded_codes(clip.frames) == sample_indices(count, 16)
    assert clip.notes == [f"frames repeated: {count} distinct of 16 frames"]


def test_truncated_file_says_decoded_n_of_m(tmp_path):
    source = write_video(tmp_path / "fast.mp4", 60, 96, 64, faststart=True)
    path = write_truncated(tmp_path / "cut.mp4", source, 0.95)
    counted = probe(path).num_frames
    clip = read_clip(path, 8)
    decodable = int(re.match(r"decoded (\d+) of (\d+) frames", clip.notes[0]).group(1))
    assert clip.notes[0].startswith(f"decoded {decodable} of {counted} frames") and decodable < counted
    assert decoded_codes(clip.frames) == sample_indices(decodable, 8)


def test_reference_mode_seeks_to_the_same_frames(videos):
    seek = read_clip(videos["long"], 16, mode="reference")
    full = read_clip_without_seeking(videos["long"], 16, mode="reference")
    assert seek.indices == full.indices == REFERENCE[0][3] and np.array_equal(seek.frames, full.frames)
