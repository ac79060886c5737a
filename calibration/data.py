"""Calibration clips: which videos to use, and each one sampled + preprocessed exactly as the runtime does.

Clips come from the runtime's one loader (`runtime.clips.load_clip`), so the ranges a quantized
model is calibrated on are those it will see in deployment. Decoding dominates the cost,
so each preprocessed clip is cached on disk (`.npy`) under a key of the video's path, mtime and
size, the frame count and the sampling mode: a second run over the same videos decodes nothing.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from itertools import chain, zip_longest
from pathlib import Path

import numpy as np

from runtime import clips, decode
from runtime.errors import StamError, VideoError

CACHE_VERSION = 1  # bump when runtime sampling or preprocessing changes what a clip holds


def list_videos(directory: str | Path) -> list[Path]:
    """Every video under `directory`, flat or in class folders; an empty result is an error here."""
    directory = Path(directory)
    if not directory.is_dir():
        raise VideoError(f"{directory}: not a directory")
    videos = decode.list_videos(directory)
    if not videos:
        raise VideoError(f"{directory}: no videos found (looked for {', '.join(decode.VIDEO_SUFFIXES)})")
    return videos


def choose_videos(videos: Sequence[Path], count: int, seed: int = 0) -> list[Path]:
    """`count` videos spread over the class folders: shuffled per folder, then taken round-robin.

    Calibrating on the first N files of a sorted list would see only the first classes; ranges
    measured on one class can clip another's activations.
    """
    if count < 1:
        raise StamError(f"--clips must be at least 1, got {count}")
    rng = np.random.default_rng(seed)
    folders: dict[Path, list[Path]] = {}
    for video in videos:
        folders.setdefault(video.parent, []).append(video)
    shuffled = [[group[i] for i in rng.permutation(len(group))] for group in folders.values()]
    interleaved = [v for v in chain.from_iterable(zip_longest(*shuffled)) if v is not None]
    return interleaved[:count]


def cache_key(video: Path, num_frames: int, mode: str) -> str:
    """Changes whenever the file, the frame count, the sampling or the cache layout changes."""
    stat = video.stat()
    text = f"{video.resolve()}|{stat.st_mtime_ns}|{stat.st_size}|{num_frames}|{mode}|v{CACHE_VERSION}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def cached_clip(video: Path, num_frames: int, mode: str = "uniform", cache_dir: Path | None = None) -> np.ndarray:
    """One preprocessed clip (T, 3, 224, 224) float32 from the runtime's loader, or from the cache."""
    cached = cache_dir / f"{cache_key(video, num_frames, mode)}.npy" if cache_dir is not None else None
    if cached is not None and cached.is_file():
        return np.load(cached)
    clip, _notes = clips.load_clip(video, num_frames, mode)
    if cached is not None:
        _save_atomically(cached, clip)
    return clip


def iter_clips(
    videos: Sequence[Path],
    num_frames: int,
    mode: str = "uniform",
    cache_dir: Path | None = None,
    on_skip: Callable[[Path, VideoError], None] | None = None,
) -> Iterator[np.ndarray]:
    """Clips one at a time, so memory holds one clip however many videos are used.

    An unreadable video raises, unless `on_skip` is given: then it is reported there and left out
    (one broken file should not end a calibration over hundreds).
    """
    cache = Path(cache_dir) if cache_dir is not None else None
    if cache is not None:
        _prepare_cache(cache)
    for video in videos:
        try:
            clip = cached_clip(video, num_frames, mode, cache)
        except VideoError as error:
            if on_skip is None:
                raise
            on_skip(video, error)
            continue
        yield clip


def _prepare_cache(cache_dir: Path) -> None:
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StamError(f"{cache_dir}: cannot create the clip cache ({error.strerror})") from None


def _save_atomically(path: Path, clip: np.ndarray) -> None:
    """Write beside the target and rename, so an interrupted run never leaves a truncated clip."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".npy.partial")
    try:
        with os.fdopen(handle, "wb") as stream:
            np.save(stream, clip)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
