"""runtime.video: sampled indices match the formulas, decoding returns exactly those frames, bad files fail cleanly."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest

from runtime import seek, video
from runtime.errors import VideoError
from runtime.seek import SampleIndex, SeekUnreliable, decode_ranks, non_reference_test, plan_stretches
from runtime.video import (
    SamplingWarning,
    StreamInfo,
    _frame_rate,
    _plan_after_short_decode,
    _scan,
    list_videos,
    probe,
    read_clip,
    read_clip_without_seeking,
    read_frames,
    sample_indices,
)
from tests.videos import (
    decoded_codes,
    read_index_code,
    write_elementary_h264,
    write_random_bytes,
    write_remuxed,
    write_truncated,
    write_video,
    x264_gop,
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
    assert _frame_rate(no_rate, 11, 0, 400) == 25.0
    assert _frame_rate(no_rate, 1, 0, 0) is None


# --- seeking: the same indices and pixels as decoding everything ---------------------------------

VFR_TIMES = np.cumsum(np.random.default_rng(0).uniform(0.01, 0.2, 60)).tolist()


def _seek_videos(root: Path) -> dict[str, Path]:
    """Small files, several GOPs each, covering what seeking must get right."""
    short_gop = write_video(root / "short_gop.mp4", 60, 64, 48, codec_options=x264_gop(10))
    return {
        "h264_short_gop": short_gop,  # 3 B-frames, closed GOPs of 10
        "h264_long_gop": write_video(root / "long_gop.mp4", 120, 64, 48, codec_options=x264_gop(40)),
        "h264_open_gop": write_video(root / "open_gop.mp4", 60, 64, 48, codec_options=x264_gop(10, open_gop=True)),
        "vp9": write_video(root / "vp9.webm", 60, 64, 48, codec="vp9", codec_options={"g": "10"}),
        "mjpeg": write_video(root / "mjpeg.avi", 60, 64, 48, codec="mjpeg"),  # every frame a keyframe
        "vfr": write_video(root / "vfr.mp4", 60, 64, 48, timestamps=VFR_TIMES, codec_options=x264_gop(10)),
        "rotated": write_video(root / "rotated.mp4", 60, 64, 48, rotate=90, codec_options=x264_gop(10)),
        "mkv": write_video(root / "gop.mkv", 60, 64, 48, codec_options=x264_gop(10)),
        "mpegts": write_remuxed(root / "no_index.ts", short_gop),  # no index: seeks search timestamps
        "fragmented_mp4": write_remuxed(
            root / "fragmented.mp4", short_gop, options={"movflags": "frag_keyframe+empty_moov"}
        ),
    }


@pytest.fixture(scope="module")
def seek_videos(tmp_path_factory) -> dict[str, Path]:
    return _seek_videos(tmp_path_factory.mktemp("seek"))


SEEK_VIDEOS = [
    "h264_short_gop",
    "h264_long_gop",
    "h264_open_gop",
    "vp9",
    "mjpeg",
    "vfr",
    "rotated",
    "mkv",
    "mpegts",
    "fragmented_mp4",
]


@pytest.mark.parametrize("name", SEEK_VIDEOS)
@pytest.mark.parametrize("num_frames", [4, 7, 16])
def test_seeking_gives_the_pixels_of_decoding_everything(seek_videos, name, num_frames):
    path = seek_videos[name]
    seek, full = read_clip(path, num_frames), read_clip_without_seeking(path, num_frames)
    assert seek.notes == [] and full.notes == []  # seeking was trusted: no fallback note
    assert seek.indices == full.indices == sample_indices(60 if name != "h264_long_gop" else 120, num_frames)
    assert np.array_equal(seek.frames, full.frames)
    if name != "rotated":
        assert decoded_codes(seek.frames) == seek.indices


@pytest.fixture(scope="module")
def many_gops(tmp_path_factory) -> dict[str, Path]:
    """Twenty GOPs: 4 targets are far enough apart to make separate index windows, 16 one window."""
    root = tmp_path_factory.mktemp("many_gops")
    mp4 = write_video(root / "many.mp4", 600, 64, 48, codec_options=x264_gop(30))
    return {
        "mp4": mp4,
        "mkv": write_remuxed(root / "many.mkv", mp4),
        "mpegts": write_remuxed(root / "many.ts", mp4),
        "vp9": write_video(root / "many.webm", 600, 64, 48, codec="vp9", codec_options={"g": "30"}),
    }


@pytest.mark.parametrize("name", ["mp4", "mkv", "mpegts", "vp9"])
@pytest.mark.parametrize("decoders", [1, 3, 16])
@pytest.mark.parametrize("num_frames", [4, 16])
def test_decoders_side_by_side_give_the_pixels_of_decoding_everything(
    many_gops, name, decoders, num_frames, monkeypatch
):
    """Stretches on several containers at once: the mp4 through its index (4 targets: a window each,
    side by side; 16: one window whose stretches go side by side), the rest through demuxing."""
    opened = []
    reopen = video._opened
    monkeypatch.setattr(video, "_opened", lambda *args: opened.append(args) or reopen(*args))
    path = many_gops[name]
    seek, full = read_clip(path, num_frames, decoders=decoders), read_clip_without_seeking(path, num_frames)
    assert seek.notes == [] and seek.indices == full.indices and np.array_equal(seek.frames, full.frames)
    assert decoded_codes(seek.frames) == seek.indices
    assert (len(opened) >= 2) == (decoders > 1)  # more than one decoder did work


def test_decoders_below_one_are_refused(many_gops):
    with pytest.raises(ValueError, match="decoders must be at least 1, got 0"):
        read_clip(many_gops["mkv"], 4, decoders=0)


@pytest.mark.parametrize("name", SEEK_VIDEOS)
def test_far_apart_frames_are_decoded_in_separate_passes(seek_videos, name):
    """Four frames of a multi-GOP file: more than one pass, so the test above did exercise seeks."""
    table = _scan(str(seek_videos[name])).table
    indices = sample_indices(len(table), 4)
    assert len(plan_stretches(table, indices)) > 1


def test_reference_mode_seeks_to_the_same_frames(videos):
    seek = read_clip(videos["long"], 16, mode="reference")
    full = read_clip_without_seeking(videos["long"], 16, mode="reference")
    assert seek.indices == full.indices == REFERENCE[0][3] and np.array_equal(seek.frames, full.frames)


def test_open_gop_frames_around_each_keyframe_match(seek_videos):
    """An open GOP's I-frame is a keyframe whose leading B-frames (shown just before it) reference the
    GOP before: each must come from the earlier keyframe, pixel for pixel as decoding everything."""
    path = seek_videos["h264_open_gop"]
    table = _scan(str(path)).table
    keyframes = [int(p) for p in np.flatnonzero(table.keyframe)[1:]]
    leading = [p for k in keyframes for p in range(k + 1, min(k + 5, len(table))) if table.pts[p] < table.pts[k]]
    assert leading  # x264 did write open GOPs: pictures decoded after a keyframe and shown before it
    keyframe_ranks = [table.rank_of(k) for k in keyframes]
    ranks = sorted({r + d for r in keyframe_ranks for d in (-2, -1, 0, 1)})
    full = read_clip_without_seeking(path, 60).frames
    with av.open(str(path)) as container:
        images = decode_ranks(container, container.streams.video[0], table, ranks, video._upright_rgb)
    assert sorted(images) == ranks
    assert all(np.array_equal(images[rank], full[rank]) for rank in ranks)


@pytest.mark.parametrize("name", ["h264_short_gop", "h264_open_gop", "vp9", "mpegts"])
def test_every_frame_alone_matches(seek_videos, name):
    """Each frame sought on its own (keyframes, reference and non-reference B-frames, leading
    pictures): the hardest case for skipping non-reference packets and for landing."""
    path = seek_videos[name]
    table = _scan(str(path)).table
    full = read_clip_without_seeking(path, 60).frames
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for rank in range(60):
            image = decode_ranks(container, stream, table, [rank], video._upright_rgb)[rank]
            assert np.array_equal(image, full[rank]), f"frame {rank}"


@pytest.mark.parametrize("name", ["h264_short_gop", "h264_open_gop", "vfr"])
def test_every_frame_alone_matches_through_the_sample_index(seek_videos, name):
    path = seek_videos[name]
    full = read_clip_without_seeking(path, 60).frames
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        index = SampleIndex.load(container, stream, path.stat().st_size)
        for rank in range(60):
            image = index.decode_ranks(container, stream, [rank], video._upright_rgb)[rank]
            assert np.array_equal(image, full[rank]), f"frame {rank}"


@pytest.mark.parametrize("name", ["h264_short_gop", "h264_open_gop", "vp9", "mpegts"])
def test_feeding_stops_at_the_wanted_frames_packet(seek_videos, name, monkeypatch):
    """The decoder is drained after the last wanted packet instead of being fed the packets after it."""
    fed: list[int] = []
    decode = seek._decode

    def spy(stream, packets):
        return decode(stream, (fed.append(item.position) or item for item in packets))

    monkeypatch.setattr(seek, "_decode", spy)
    path = seek_videos[name]
    table = _scan(str(path)).table
    full = read_clip_without_seeking(path, 60).frames
    with av.open(str(path)) as container:
        for rank in (13, 27, 44):
            fed.clear()
            image = decode_ranks(container, container.streams.video[0], table, [rank], video._upright_rgb)[rank]
            assert np.array_equal(image, full[rank]) and max(fed) == table.order[rank]


def test_a_picture_that_gives_no_frame_is_a_surprise(seek_videos, monkeypatch):
    """As a field whose other half was never fed would be: fewer frames out than pictures decoded."""
    decode = seek._decode
    monkeypatch.setattr(seek, "_decode", lambda stream, packets: iter(list(decode(stream, packets))[:-1]))
    path = seek_videos["mkv"]
    with av.open(str(path)) as container:
        with pytest.raises(SeekUnreliable, match=r"^\d+ pictures were decoded after seeking and \d+ frames came out$"):
            decode_ranks(container, container.streams.video[0], _scan(str(path)).table, [25], video._upright_rgb)


# Codecs beyond H.264/VP9/MJPEG, each with B-frames (or AV1's hidden frames) and a GOP of 10, in the
# containers they usually come in. MPEG-PS lists decoding timestamps out of order: it is decoded
# from the start, with a note, and must still give the same pixels.
X265_GOP_10 = {"x265-params": "keyint=10:min-keyint=10:scenecut=0:bframes=3:log-level=error"}
OTHER_CODECS = {
    "hevc_mp4": ("hevc.mp4", "hevc", X265_GOP_10),
    "hevc_mkv": ("hevc.mkv", "hevc", X265_GOP_10),
    "av1_mp4": ("av1.mp4", "av1", {"g": "10"}),
    "av1_webm": ("av1.webm", "av1", {"g": "10"}),
    "mpeg2_ts": ("mpeg2.ts", "mpeg2", {"g": "10"}),
    "mpeg2_ps": ("mpeg2.mpg", "mpeg2", {"g": "10"}),
    "mpeg4_avi": ("mpeg4.avi", "mpeg4", {"g": "10"}),
    "mpeg4_mp4": ("mpeg4.mp4", "mpeg4", {"g": "10"}),
}


@pytest.fixture(scope="module")
def other_codecs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("codecs")
    return {
        name: write_video(root / file, 60, 64, 48, codec=codec, codec_options=options)
        for name, (file, codec, options) in OTHER_CODECS.items()
    }


@pytest.mark.parametrize("name", list(OTHER_CODECS))
def test_other_codecs_seek_to_the_pixels_of_decoding_everything(other_codecs, name):
    path = other_codecs[name]
    full = read_clip_without_seeking(path, 60).frames
    for num_frames in (4, 16):
        seek = read_clip(path, num_frames)
        assert seek.indices == sample_indices(60, num_frames) and np.array_equal(seek.frames, full[seek.indices])
        expected = (
            ["cannot seek (decoding timestamps out of order): decoded from the start"] if name == "mpeg2_ps" else []
        )
        assert seek.notes == expected
    table = _scan(str(path)).table
    if table is None:
        return
    assert table.keyframe.sum() >= 6  # several GOPs: the seeks below land on different keyframes
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for rank in range(60):
            image = decode_ranks(container, stream, table, [rank], video._upright_rgb)[rank]
            assert np.array_equal(image, full[rank]), f"frame {rank}"


def test_non_reference_packets_are_found_in_length_prefixed_h264(seek_videos):
    """x264's B-frames that no other frame uses are skipped while seeking; other layouts decode all."""
    for name, expected in [("h264_short_gop", True), ("mkv", True), ("mpegts", False), ("vp9", False)]:
        with av.open(str(seek_videos[name])) as container:
            stream = container.streams.video[0]
            test = non_reference_test(stream)
            assert (test is not None) == expected, name
            if test is not None:
                flags = [test(packet) for packet in container.demux(stream) if packet.size]
                assert 0 < sum(flags) < len(flags) and not flags[0]  # some B-frames; never the IDR


MP4_VIDEOS = ["h264_short_gop", "h264_long_gop", "h264_open_gop", "vfr", "rotated"]


@pytest.mark.parametrize("name", MP4_VIDEOS)
def test_demuxing_path_matches_too_on_mp4(seek_videos, name, monkeypatch):
    """mp4s take the sample-index path; the demux-everything table, used where the index is not
    trusted, gives the same frames on them."""
    monkeypatch.setattr(video, "_read_by_index", lambda *args: None)
    path = seek_videos[name]
    seek, full = read_clip(path, 4), read_clip_without_seeking(path, 4)
    assert seek.notes == [] and seek.indices == full.indices and np.array_equal(seek.frames, full.frames)


@pytest.mark.parametrize("name", SEEK_VIDEOS)
def test_which_files_the_sample_index_serves(seek_videos, name):
    """Only an mp4 with a complete index skips the demuxing pass (a fragmented mp4 learns its index
    fragment by fragment, so its first index is partial)."""
    path = seek_videos[name]
    with av.open(str(path)) as container:
        index = SampleIndex.load(container, container.streams.video[0], path.stat().st_size)
    assert (index is not None) == (name in MP4_VIDEOS)
    if index is not None:
        assert index.num_frames == probe(path).num_frames


def test_truncated_mp4_is_not_served_by_its_index(tmp_path):
    source = write_video(tmp_path / "fast.mp4", 60, 96, 64, faststart=True)
    path = write_truncated(tmp_path / "cut.mp4", source, 0.95)
    with av.open(str(path)) as container:
        assert SampleIndex.load(container, container.streams.video[0], path.stat().st_size) is None


def test_a_window_breaking_the_reorder_bound_falls_back_to_demuxing(seek_videos, monkeypatch):
    """B-frames are shown 1-2 places from where they are decoded: with the bound set to 0 the index
    path must give up, and the demuxing path (exact) serves the same frames without a note."""
    monkeypatch.setattr(seek, "MAX_REORDER", 0)
    path = seek_videos["h264_short_gop"]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        index = SampleIndex.load(container, stream, path.stat().st_size)
        with pytest.raises(SeekUnreliable, match="shown more than 0 places"):
            index.decode_ranks(container, stream, [15, 45], video._upright_rgb)
    clip = read_clip(path, 4)
    assert clip.notes == [] and decoded_codes(clip.frames) == sample_indices(60, 4)


def test_a_seek_that_lands_elsewhere_falls_back_with_a_note(seek_videos, monkeypatch):
    """A frame table that does not match the file (as if the index lied): decode from the start, say so."""
    wrong = _scan(str(seek_videos["vfr"]))  # 60 frames too, other timestamps
    monkeypatch.setattr(video, "_read_by_index", lambda *args: None)
    monkeypatch.setattr(video, "_scan", lambda path: wrong)
    clip = read_clip(seek_videos["h264_short_gop"], 4)
    assert len(clip.notes) == 1 and clip.notes[0].startswith("seeking is unreliable (")
    assert clip.notes[0].endswith("): decoded from the start")
    assert decoded_codes(clip.frames) == sample_indices(60, 4)


# --- notes: repeated and missing frames -----------------------------------------------------------


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
