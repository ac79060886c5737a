"""runtime.decode seeking: the frame table's order and lookups, how targets are grouped into decoding
passes, and decoding through seeks (the demuxed table, the mp4 sample index, decoders side by side) on
real files of every kind, against decoding everything.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from runtime.decode import index as index_module
from runtime.decode import probe, read, read_clip, read_clip_without_seeking, sample_indices, seek, upright_rgb
from runtime.decode.h264 import non_reference_test
from runtime.decode.index import SampleIndex
from runtime.decode.loop import Guard
from runtime.decode.scan import scan
from runtime.decode.seek import decode_ranks
from runtime.decode.table import SEEK_GAIN_PACKETS, FrameTable, SeekUnreliable, plan_stretches
from tests.videos import decoded_codes, write_remuxed, write_truncated, write_video, x264_gop


def _table(path: Path) -> FrameTable | None:
    """The frame table of demuxing every packet of `path` (None where seeking cannot be trusted)."""
    return scan(Guard(str(path))).table


def test_frame_table_orders_by_timestamp_and_refuses_repeats():
    table = FrameTable.from_packets([0, 3, 1, 2, 4], [-1, 0, 1, 2, 3], [True, False, False, False, True])
    assert table.order.tolist() == [0, 2, 3, 1, 4] and table.rank_of(1) == 3
    assert table.keyframe_before(3) == 0 and table.keyframe_before(4) == 4
    with pytest.raises(SeekUnreliable, match="share a timestamp"):
        FrameTable.from_packets([0, 1, 1], [0, 1, 2], [True, False, False])


def test_nearby_targets_share_one_pass():
    keyframe = [i % 10 == 0 for i in range(100)]
    table = FrameTable.from_packets(list(range(100)), list(range(100)), keyframe)
    stretches = plan_stretches(table, [5, 8, 12, 55, 57, 99])
    assert [(s.start, s.ranks) for s in stretches] == [(0, [5, 8, 12]), (50, [55, 57]), (90, [99])]


def test_a_target_past_the_gain_starts_a_new_pass():
    table = FrameTable.from_packets(list(range(40)), list(range(40)), [i % 10 == 0 for i in range(40)])
    assert SEEK_GAIN_PACKETS < 10  # a keyframe 10 packets past the last target is worth a seek
    assert [s.start for s in plan_stretches(table, [1, 11])] == [0, 10]
    assert [s.start for s in plan_stretches(table, [8, 11])] == [0]  # keyframe 10 is 2 packets past 8


def test_a_frame_shown_before_its_keyframe_starts_from_the_one_before():
    """Open GOP: decode position 5 is a keyframe shown at 7; packet 6 is a leading picture shown at 5."""
    pts = [0, 2, 1, 4, 3, 7, 5, 6, 8]
    keyframe = [True, False, False, False, False, True, False, False, False]
    table = FrameTable.from_packets(pts, pts, keyframe)
    assert table.keyframe_before(6) == 0 and table.keyframe_before(7) == 0 and table.keyframe_before(8) == 5
    assert table.position_of_pts(5) == 6 and table.rank_of_pts(9) is None


def test_a_demuxer_that_cannot_seek_is_a_surprise_not_a_crash():
    class Unseekable:
        def seek(self, *args, **kwargs):
            raise av.error.FFmpegError(38, "Function not implemented")

    with pytest.raises(SeekUnreliable, match=r"cannot seek \("):
        seek.seek_to(Unseekable(), None, 0)


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
    reopen = read._reopen
    monkeypatch.setattr(read, "_reopen", lambda *args: opened.append(args) or reopen(*args))
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
    table = _table(seek_videos[name])
    indices = sample_indices(len(table), 4)
    assert len(plan_stretches(table, indices)) > 1


def test_open_gop_frames_around_each_keyframe_match(seek_videos):
    """An open GOP's I-frame is a keyframe whose leading B-frames (shown just before it) reference the
    GOP before: each must come from the earlier keyframe, pixel for pixel as decoding everything."""
    path = seek_videos["h264_open_gop"]
    table = _table(path)
    keyframes = [int(p) for p in np.flatnonzero(table.keyframe)[1:]]
    leading = [p for k in keyframes for p in range(k + 1, min(k + 5, len(table))) if table.pts[p] < table.pts[k]]
    assert leading  # x264 did write open GOPs: pictures decoded after a keyframe and shown before it
    keyframe_ranks = [table.rank_of(k) for k in keyframes]
    ranks = sorted({r + d for r in keyframe_ranks for d in (-2, -1, 0, 1)})
    full = read_clip_without_seeking(path, 60).frames
    with av.open(str(path)) as container:
        images = decode_ranks(container, container.streams.video[0], table, ranks, upright_rgb)
    assert sorted(images) == ranks
    assert all(np.array_equal(images[rank], full[rank]) for rank in ranks)


@pytest.mark.parametrize("name", ["h264_short_gop", "h264_open_gop", "vp9", "mpegts"])
def test_every_frame_alone_matches(seek_videos, name):
    """Each frame sought on its own (keyframes, reference and non-reference B-frames, leading
    pictures): the hardest case for skipping non-reference packets and for landing."""
    path = seek_videos[name]
    table = _table(path)
    full = read_clip_without_seeking(path, 60).frames
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for rank in range(60):
            image = decode_ranks(container, stream, table, [rank], upright_rgb)[rank]
            assert np.array_equal(image, full[rank]), f"frame {rank}"


@pytest.mark.parametrize("name", ["h264_short_gop", "h264_open_gop", "vfr"])
def test_every_frame_alone_matches_through_the_sample_index(seek_videos, name):
    path = seek_videos[name]
    full = read_clip_without_seeking(path, 60).frames
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        index = SampleIndex.load(container, stream, path.stat().st_size)
        for rank in range(60):
            image = index.decode_ranks(container, stream, [rank], upright_rgb)[rank]
            assert np.array_equal(image, full[rank]), f"frame {rank}"


@pytest.mark.parametrize("name", ["h264_short_gop", "h264_open_gop", "vp9", "mpegts"])
def test_feeding_stops_at_the_wanted_frames_packet(seek_videos, name, monkeypatch):
    """The decoder is drained after the last wanted packet instead of being fed the packets after it."""
    fed: list[int] = []
    decode = seek._decode

    def spy(stream, packets, guard):
        return decode(stream, (fed.append(item.position) or item for item in packets), guard)

    monkeypatch.setattr(seek, "_decode", spy)
    path = seek_videos[name]
    table = _table(path)
    full = read_clip_without_seeking(path, 60).frames
    with av.open(str(path)) as container:
        for rank in (13, 27, 44):
            fed.clear()
            image = decode_ranks(container, container.streams.video[0], table, [rank], upright_rgb)[rank]
            assert np.array_equal(image, full[rank]) and max(fed) == table.order[rank]


def test_a_picture_that_gives_no_frame_is_a_surprise(seek_videos, monkeypatch):
    """As a field whose other half was never fed would be: fewer frames out than pictures decoded."""
    decode = seek._decode
    monkeypatch.setattr(seek, "_decode", lambda *args: iter(list(decode(*args))[:-1]))
    path = seek_videos["mkv"]
    with av.open(str(path)) as container:
        with pytest.raises(SeekUnreliable, match=r"^\d+ pictures were decoded after seeking and \d+ frames came out$"):
            decode_ranks(container, container.streams.video[0], _table(path), [25], upright_rgb)


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
    table = _table(path)
    if table is None:
        return
    assert table.keyframe.sum() >= 6  # several GOPs: the seeks below land on different keyframes
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for rank in range(60):
            image = decode_ranks(container, stream, table, [rank], upright_rgb)[rank]
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
    monkeypatch.setattr(read, "_read_by_index", lambda *args: None)
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
    monkeypatch.setattr(index_module, "MAX_REORDER", 0)
    path = seek_videos["h264_short_gop"]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        index = SampleIndex.load(container, stream, path.stat().st_size)
        with pytest.raises(SeekUnreliable, match="shown more than 0 places"):
            index.decode_ranks(container, stream, [15, 45], upright_rgb)
    clip = read_clip(path, 4)
    assert clip.notes == [] and decoded_codes(clip.frames) == sample_indices(60, 4)


def test_a_seek_that_lands_elsewhere_falls_back_with_a_note(seek_videos, monkeypatch):
    """A frame table that does not match the file (as if the index lied): decode from the start, say so."""
    wrong = scan(Guard(str(seek_videos["vfr"])))  # 60 frames too, other timestamps
    monkeypatch.setattr(read, "_read_by_index", lambda *args: None)
    monkeypatch.setattr(read, "scan", lambda guard: wrong)
    clip = read_clip(seek_videos["h264_short_gop"], 4)
    assert len(clip.notes) == 1 and clip.notes[0].startswith("seeking is unreliable (")
    assert clip.notes[0].endswith("): decoded from the start")
    assert decoded_codes(clip.frames) == sample_indices(60, 4)
