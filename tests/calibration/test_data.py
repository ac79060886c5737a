"""calibration.data: listing videos, choosing them across classes, and the preprocessed-clip cache."""

from __future__ import annotations

import os

import numpy as np
import pytest

from calibration.data import cache_key, choose_videos, iter_clips, list_videos
from runtime.errors import StamError, VideoError
from tests.calibration.conftest import fake_clip, make_video_tree


def test_lists_flat_and_class_folders(tmp_path):
    make_video_tree(tmp_path / "classes", {"wave": 2, "jump": 1})
    (tmp_path / "classes" / "notes.txt").write_text("not a video")
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.MP4").write_bytes(b"")
    (tmp_path / "flat" / "b.avi").write_bytes(b"")
    assert [p.name for p in list_videos(tmp_path / "classes")] == ["jump_0.mp4", "wave_0.mp4", "wave_1.mp4"]
    assert [p.name for p in list_videos(tmp_path / "flat")] == ["a.MP4", "b.avi"]


def test_no_videos_and_missing_directory_are_errors(tmp_path):
    with pytest.raises(VideoError, match="no videos found"):
        list_videos(tmp_path)
    with pytest.raises(VideoError, match="not a directory"):
        list_videos(tmp_path / "missing")


def test_choice_covers_every_class_before_repeating_one(tmp_path):
    videos = list_videos(make_video_tree(tmp_path, {"a": 5, "b": 5, "c": 1}))
    chosen = choose_videos(videos, 3, seed=0)
    assert sorted(p.parent.name for p in chosen) == ["a", "b", "c"]
    assert choose_videos(videos, 3, seed=0) == chosen  # deterministic for a seed


def test_fewer_videos_than_asked_gives_them_all(tmp_path):
    videos = list_videos(make_video_tree(tmp_path, {"a": 2, "b": 1}))
    assert sorted(choose_videos(videos, 10)) == videos
    with pytest.raises(StamError, match="at least 1"):
        choose_videos(videos, 0)


def test_cache_avoids_decoding_again(tmp_path, fake_decode):
    videos = list_videos(make_video_tree(tmp_path / "videos", {"a": 2, "b": 1}))
    cache = tmp_path / "cache"
    first = list(iter_clips(videos, 8, cache_dir=cache))
    assert len(fake_decode) == 3 and len(list(cache.glob("*.npy"))) == 3
    second = list(iter_clips(videos, 8, cache_dir=cache))
    assert len(fake_decode) == 3  # nothing decoded the second time
    assert all(np.array_equal(x, y) for x, y in zip(first, second))
    assert np.array_equal(first[0], fake_clip(videos[0], 8))
    assert not list(cache.glob("*.partial"))


def test_cache_key_follows_file_frames_and_sampling(tmp_path):
    video = make_video_tree(tmp_path, {"a": 1}) / "a" / "a_0.mp4"
    key = cache_key(video, 8, "uniform")
    assert cache_key(video, 16, "uniform") != key and cache_key(video, 8, "reference") != key
    video.write_bytes(b"re-encoded")
    os.utime(video, ns=(1, 1))
    assert cache_key(video, 8, "uniform") != key


def test_without_cache_every_run_decodes(tmp_path, fake_decode):
    videos = list_videos(make_video_tree(tmp_path, {"a": 2}))
    list(iter_clips(videos, 4))
    list(iter_clips(videos, 4))
    assert len(fake_decode) == 4


def test_unreadable_video_is_skipped_only_when_asked(tmp_path, monkeypatch):
    import calibration.data

    videos = list_videos(make_video_tree(tmp_path, {"a": 2}))

    def decode(video, num_frames, mode="uniform", *, limits):
        if video == videos[0]:
            raise VideoError(f"{video}: cannot decode")
        return fake_clip(video, num_frames, mode), []

    monkeypatch.setattr(calibration.data.clips, "load_clip", decode)
    skipped = []
    clips = list(iter_clips(videos, 4, on_skip=lambda video, error: skipped.append(video)))
    assert len(clips) == 1 and skipped == [videos[0]]
    with pytest.raises(VideoError, match="cannot decode"):
        list(iter_clips(videos, 4))


def test_unusable_cache_directory_is_a_one_line_error(tmp_path, fake_decode):
    videos = list_videos(make_video_tree(tmp_path / "v", {"a": 1}))
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StamError, match="cannot create the clip cache"):
        list(iter_clips(videos, 4, cache_dir=blocker / "cache"))
