"""Reading a clip from a file: a path in, T upright RGB frames (T, H, W, 3) uint8 out.

Frames are counted as torchvision counts them: packets with a timestamp (container frame counts
are often missing or wrong). An mp4 whose sample index provably lists every packet is counted from
that index (runtime.decode.index); any other file by one demuxing pass (runtime.decode.scan), which
also gives each frame's timestamp. The sampled frames are then decoded by seeking to the keyframe
before each and decoding forward (runtime.decode.seek), so the cost follows the number of frames
taken, not the video's length; where seeking cannot be trusted, the file is decoded once in
presentation order up to the last sampled frame instead, with a note. Either way only the frames
that are used are converted to RGB, and the pixels are those of decoding everything.
docs/architecture.md, "Sampling and preprocessing", states the two sampling modes.

One `Limits` object bounds each read: the byte size before opening, the declared size and duration
before a decoder opens, every decoded frame's size and media time, and one decode deadline shared by
every pass and every side-by-side decoder of the video (runtime.decode.loop).
"""

from __future__ import annotations

import warnings
from contextlib import AbstractContextManager, closing
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import numpy.typing as npt

from runtime.decode.container import THREAD_TYPES, Decoder, Stream, open_container, opened, set_threads, video_stream
from runtime.decode.index import SampleIndex
from runtime.decode.loop import Guard, Policy, frames, upright_rgb
from runtime.decode.sampling import (
    Sampling,
    SamplingWarning,
    plan_for_file,
    repeat_notes,
)
from runtime.decode.scan import Scan, StreamInfo, scan
from runtime.decode.seek import DecoderPool, decode_ranks
from runtime.decode.side_by_side import Images, decoders_per_video
from runtime.decode.table import SeekUnreliable
from runtime.errors import VideoError
from runtime.limits import CLI_LIMITS, Limits

# A stream that decodes to fewer frames than it demuxed (truncated or corrupt) is still used when
# at least this fraction decodes; the frames are then sampled over what decoded, with a warning.
MIN_DECODED_FRACTION = 0.5


@dataclass(frozen=True)
class Clip:
    """Sampled frames (T, H, W, 3) uint8 RGB, the indices they came from, and why those differ from the mode."""

    frames: npt.NDArray[np.uint8]
    indices: list[int]
    notes: list[str]


def read_frames(
    path: str | Path, num_frames: int, mode: str = "uniform", *, threads: str = "AUTO"
) -> npt.NDArray[np.uint8]:
    """`num_frames` sampled frames of the video at `path`, upright, as (T, H, W, 3) uint8 RGB.

    Raises VideoError (one line, naming the file) for a missing, unreadable, empty or too damaged
    file; a SamplingWarning ("PATH: why") says when the frames were sampled differently from `mode`.
    """
    clip = read_clip(path, num_frames, mode, threads=threads)
    for note in clip.notes:
        warnings.warn(f"{path}: {note}", SamplingWarning, stacklevel=2)
    return clip.frames


def read_clip(
    path: str | Path,
    num_frames: int,
    mode: str = "uniform",
    *,
    threads: str = "AUTO",
    decoders: int | None = None,
    limits: Limits = CLI_LIMITS,
) -> Clip:
    """`read_frames` with its notes returned instead of warned: for callers on worker threads, where
    `warnings.catch_warnings` is not safe, and for reports that keep them per video.

    `threads` is FFmpeg's thread type: AUTO (frame + slice threads) cuts one video's latency on idle
    cores; SLICE costs less CPU in total when several videos are decoded side by side on few cores.
    `decoders` is how many containers decode a long video's separate stretches side by side (default:
    the CPUs, at most 8; runtime.decode.side_by_side); 1 decodes them one after the other.
    `limits` bounds what the video may cost (runtime.limits); a video over them raises LimitExceeded.
    """
    decoders = decoders_per_video() if decoders is None else decoders
    if decoders < 1:
        raise ValueError(f"decoders must be at least 1, got {decoders}")
    return _read(str(path), num_frames, mode, _Decoding(threads, decoders, limits), seek=True)


def read_clip_without_seeking(
    path: str | Path, num_frames: int, mode: str = "uniform", *, threads: str = "AUTO", limits: Limits = CLI_LIMITS
) -> Clip:
    """`read_clip` decoding from the start up to the last sampled frame: the reference that the seek
    path is tested and benchmarked against (same indices, same pixels, cost growing with the video)."""
    return _read(str(path), num_frames, mode, _Decoding(threads, 1, limits), seek=False)


@dataclass(frozen=True)
class _Decoding:
    """How to decode: FFmpeg's thread type per decoder, how many decoders may seek side by side, the limits."""

    threads: str
    decoders: int
    limits: Limits = CLI_LIMITS


def _read(path: str, num_frames: int, mode: str, decoding: _Decoding, seek: bool) -> Clip:
    threads = decoding.threads
    decoding.limits.check_file(path)
    if threads not in THREAD_TYPES:
        raise ValueError(f"threads must be one of {', '.join(THREAD_TYPES)}, got {threads!r}")
    guard = Guard.start(path, decoding.limits)  # one decode clock for every pass over this video
    if seek:
        clip = _read_by_index(path, num_frames, mode, decoding, guard)
        if clip is not None:
            return clip
    found = scan(guard)
    sampling = plan_for_file(found.info.num_frames, num_frames, mode, found.info.fps)
    images, seek_note = None, None
    if seek and not found.damaged:
        images, seek_note = _seek_frames(path, found, sampling.indices, decoding, guard)
    if images is None:
        # a damaged file is decoded to its end, so that a note says how many of its frames decode
        through = found.info.num_frames - 1 if found.damaged else max(sampling.indices)
        images, decoded = _decode(path, sampling.indices, threads, guard, through)
        if decoded <= through:
            sampling = _plan_after_short_decode(path, found.info, decoded, num_frames, mode)
            images, _ = _decode(path, sampling.indices, threads, guard)
            if len(images) < len(set(sampling.indices)):
                raise VideoError(f"{path}: decoding is not repeatable (fewer frames on a second pass)")
        elif seek_note:  # the file decodes whole: seeking it was what failed
            sampling = Sampling(sampling.indices, [*sampling.notes, seek_note])
    return _clip(path, images, sampling)


def _read_by_index(path: str, num_frames: int, mode: str, decoding: _Decoding, guard: Guard) -> Clip | None:
    """The mp4 fast path: frame count and each window's timestamps from the sample index, so no
    demuxing pass over the whole file; None when the index cannot be trusted or a check fails
    (the caller then demuxes everything, which is exact)."""
    with open_container(path) as container:
        stream = video_stream(container, path, decoding.limits)
        index = SampleIndex.load(container, stream, Path(path).stat().st_size)
        if index is None or not stream.average_rate:  # without a stated rate, demuxing finds it
            return None
        sampling = plan_for_file(index.num_frames, num_frames, mode, float(stream.average_rate))
        set_threads(stream, decoding.threads)
        try:
            images = index.decode_ranks(
                container, stream, sampling.indices, upright_rgb, _pool(path, decoding, guard, stream)
            )
        except SeekUnreliable:
            return None
    return _clip(path, images, sampling)


def _reopen(path: str, decoding: _Decoding) -> AbstractContextManager[Decoder]:
    """The file opened again for one more side-by-side decoder, set up as the first one."""
    return opened(path, decoding.threads, decoding.limits)


def _pool(path: str, decoding: _Decoding, guard: Guard, stream: Stream) -> DecoderPool:
    """The video's seeking decoders: reopened as the first, all under its guard, with media time
    counted from the stream's start (a seek lands mid-way, so the first decoded frame is not it)."""
    if stream.start_time is not None and stream.time_base is not None:
        guard = replace(guard, origin=float(stream.start_time * stream.time_base))
    return DecoderPool(guard, partial(_reopen, path, decoding), decoding.decoders)


def _clip(path: str, images: Images, sampling: Sampling) -> Clip:
    notes = [*sampling.notes, *repeat_notes(sampling.indices)]
    return Clip(_stack(path, images, sampling.indices), sampling.indices, notes)


def _seek_frames(
    path: str, found: Scan, indices: list[int], decoding: _Decoding, guard: Guard
) -> tuple[Images | None, str | None]:
    """The wanted frames by seeking, or None and why seeking was not trusted (then decode from the start)."""
    if found.table is None:
        return None, f"cannot seek ({found.unseekable}): decoded from the start"
    try:
        with _reopen(path, decoding) as (container, stream):
            images = decode_ranks(
                container, stream, found.table, indices, upright_rgb, _pool(path, decoding, guard, stream)
            )
            return images, None
    except SeekUnreliable as reason:
        return None, f"seeking is unreliable ({reason}): decoded from the start"


def _plan_after_short_decode(path: str, info: StreamInfo, decoded: int, num_frames: int, mode: str) -> Sampling:
    """Sample over the frames that did decode, or refuse when too few of them did."""
    if decoded == 0:
        raise VideoError(f"{path}: no frame decodes (corrupt or truncated file)")
    if decoded < MIN_DECODED_FRACTION * info.num_frames:
        raise VideoError(f"{path}: only {decoded} of {info.num_frames} frames decode (corrupt or truncated file)")
    sampling = plan_for_file(decoded, num_frames, mode, info.fps)
    note = f"decoded {decoded} of {info.num_frames} frames (truncated or corrupt file): sampled over those"
    return Sampling(sampling.indices, [note, *sampling.notes])


def _decode(path: str, indices: list[int], threads: str, guard: Guard, last: int | None = None) -> tuple[Images, int]:
    """Decode in presentation order up to index `last` (default: the last wanted one); RGB only for
    the wanted frames. A packet the decoder rejects is skipped (Policy.SKIP).

    Returns the wanted frames by index and how many frames decoded: the caller compares what came
    out with what it asked for.
    """
    wanted = set(indices)
    last = max(indices) if last is None else last
    images: Images = {}
    decoded = 0
    with closing(frames(path, policy=Policy.SKIP, guard=guard, threads=threads)) as decoding:
        for item in decoding:
            if decoded in wanted:
                images[decoded] = upright_rgb(item.frame)
            decoded += 1
            if decoded > last:
                break
    return images, decoded


def _stack(path: str, images: Images, indices: list[int]) -> npt.NDArray[np.uint8]:
    shapes = {image.shape for image in images.values()}
    if len(shapes) != 1:
        raise VideoError(f"{path}: frame size changes within the video ({', '.join(map(str, sorted(shapes)))})")
    (shape,) = shapes
    out = np.empty((len(indices), *shape), dtype=np.uint8)
    for row, index in enumerate(indices):
        out[row] = images[index]
    return out
