"""Video decoding and frame sampling for the runtime: a file in, T upright RGB frames (T, H, W, 3) uint8 out.

Frames are counted as torchvision counts them: packets with a timestamp (container frame counts
are often missing or wrong). An mp4 whose sample index provably lists every packet is counted from
that index; any other file by one demuxing pass, which also gives each frame's timestamp. The
sampled frames are then decoded by seeking to the keyframe before each and decoding forward
(runtime.seek), so the cost follows the number of frames taken, not the video's length; where
seeking cannot be trusted, the file is decoded once in presentation order up to the last sampled
frame instead, with a note. Either way only the frames that are used are converted to RGB, and the
pixels are those of decoding everything. DESIGN.md, "Sampling and preprocessing", states the two
sampling modes.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import av
import numpy as np

from runtime.errors import VideoError
from runtime.limits import CLI_LIMITS, Limits
from runtime.seek import FrameTable, SampleIndex, SeekUnreliable, decode_ranks
from runtime.side_by_side import Decoder, decoders_per_video

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg")
SAMPLING_MODES = ("uniform", "reference")
THREAD_TYPES = ("AUTO", "FRAME", "SLICE", "NONE")
REFERENCE_SECONDS = 10  # the reference samples T frames at T/10 fps: the first 10 s of each video
# A stream that decodes to fewer frames than it demuxed (truncated or corrupt) is still used when
# at least this fraction decodes; the frames are then sampled over what decoded, with a warning.
MIN_DECODED_FRACTION = 0.5


class SamplingWarning(UserWarning):
    """The frames were sampled differently from what the mode asks (short or damaged video)."""


@dataclass(frozen=True)
class Sampling:
    """Frame indices to take, and why they differ from the requested mode when they do."""

    indices: list[int]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StreamInfo:
    """What demuxing the first video stream tells: frames with a timestamp, and the frame rate."""

    num_frames: int
    fps: float | None


# --- sampling ------------------------------------------------------------------------------------


def plan_sampling(num_video_frames: int, num_frames: int, mode: str = "uniform", fps: float | None = None) -> Sampling:
    """The indices of `sample_indices`, plus a note when `reference` falls back to `uniform`."""
    if num_video_frames < 1 or num_frames < 1:
        raise ValueError(f"need at least one frame to sample from and to take, got {num_video_frames}, {num_frames}")
    if mode == "uniform":
        return Sampling(_uniform_indices(num_video_frames, num_frames))
    if mode != "reference":
        raise ValueError(f"sampling mode must be one of {', '.join(SAMPLING_MODES)}, got {mode!r}")
    if fps is None or not fps > 0:
        raise ValueError(f"reference sampling needs the video's frame rate, got fps={fps}")
    indices = _reference_indices(num_video_frames, num_frames, fps)
    if indices is not None:
        return Sampling(indices)
    note = (
        f"shorter than the reference's {REFERENCE_SECONDS} s ({num_video_frames} frames at {fps:.4g} fps; "
        "torchvision would drop it): sampled uniformly over the whole video"
    )
    return Sampling(_uniform_indices(num_video_frames, num_frames), [note])


def sample_indices(
    num_video_frames: int, num_frames: int, mode: str = "uniform", fps: float | None = None
) -> list[int]:
    """Indices of the `num_frames` frames to take from a video of `num_video_frames` frames.

    `uniform`: floor(i * N / T), spread over the whole video (short videos repeat frames).
    `reference`: torchvision VideoClips' first clip when resampling to T/10 fps, in its float32
    arithmetic; a video too short for that clip falls back to `uniform` with a SamplingWarning.
    """
    sampling = plan_sampling(num_video_frames, num_frames, mode, fps)
    for note in sampling.notes:
        warnings.warn(note, SamplingWarning, stacklevel=2)
    return sampling.indices


def _uniform_indices(num_video_frames: int, num_frames: int) -> list[int]:
    return [i * num_video_frames // num_frames for i in range(num_frames)]


def _reference_indices(num_video_frames: int, num_frames: int, fps: float) -> list[int] | None:
    """torchvision's `_resample_video_idx` + first clip of `compute_clips_for_video`; None when it has no clip."""
    frame_rate = num_frames / REFERENCE_SECONDS
    step = float(fps) / frame_rate
    if step.is_integer():  # torchvision slices every step-th frame of the whole video
        stride = int(step)
        if len(range(0, num_video_frames, stride)) < num_frames:
            return None
        return [i * stride for i in range(num_frames)]
    resampled = int(math.floor(num_video_frames * (float(frame_rate) / fps)))
    if resampled < num_frames:
        return None
    positions = np.arange(num_frames, dtype=np.float32) * np.float32(step)  # float32 product, as torch does
    return np.floor(positions).astype(np.int64).tolist()


# --- files ---------------------------------------------------------------------------------------


def list_videos(directory: str | Path) -> list[Path]:
    """Video files under `directory` (recursively, by suffix, case-insensitive), sorted by path."""
    root = Path(directory)
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())


def _open(path: str) -> av.container.InputContainer:
    if not Path(path).is_file():
        raise VideoError(f"{path}: no such file")
    try:
        return av.open(path)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise VideoError(f"{path}: not a readable video ({_reason(error)})") from None


@contextmanager
def _opened(path: str, threads: str) -> Iterator[Decoder]:
    """The file opened again with its video stream set to decode on `threads`: one more decoder."""
    with _open(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = threads
        yield container, stream


def _video_stream(container: av.container.InputContainer, path: str) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise VideoError(f"{path}: no video stream")
    return container.streams.video[0]


def _reason(error: Exception) -> str:
    text = getattr(error, "strerror", None) or str(error)
    return " ".join(str(text).split())  # one line, whatever FFmpeg said


def probe(path: str | Path) -> StreamInfo:
    """Count the video packets that carry a timestamp (no decoding) and find the frame rate.

    Packets with a timestamp are what torchvision counts; a stream with none counts its non-empty
    packets. A demuxing error ends the count: what was read before it is what the file holds.
    """
    return _scan(str(path)).info


@dataclass(frozen=True)
class _Scan:
    """What one demuxing pass learns: the frame count and rate, and the frame table seeking needs
    (None, with the reason, when the packets cannot support seeking)."""

    info: StreamInfo
    table: FrameTable | None
    unseekable: str | None
    damaged: bool = False  # demuxing stopped early: the count may hold frames that do not decode


def _scan(path: str) -> _Scan:
    """Demux every video packet once (no decoding): count, rate, and each frame's timestamp and keyframe flag."""
    pts: list[int] = []
    dts: list[int] = []
    keyframe: list[bool] = []
    untimed, dts_ordered, last_dts, demux_failed = 0, True, None, False
    with _open(path) as container:
        stream = _video_stream(container, path)
        try:
            for packet in container.demux(stream):
                if packet.pts is None:
                    untimed += packet.size > 0
                    continue
                pts.append(packet.pts)
                dts.append(packet.pts if packet.dts is None else packet.dts)
                keyframe.append(packet.is_keyframe)
                if packet.dts is not None:
                    dts_ordered &= last_dts is None or packet.dts > last_dts
                    last_dts = packet.dts
        except av.error.FFmpegError:
            demux_failed = True  # truncated or corrupt past this point; the frames counted so far stand
        fps = _frame_rate(stream, len(pts), min(pts, default=None), max(pts, default=None))
        declared = stream.frames  # the container's own count, 0 when it has none
    count = len(pts) or untimed  # a stream without any timestamps: one frame per packet
    if count == 0:
        raise VideoError(f"{path}: no video frames")
    info = StreamInfo(count, fps)
    if demux_failed or count < declared:  # e.g. an mp4 with its index first, cut short
        return _Scan(info, None, "the file is damaged or cut short", damaged=True)
    if untimed:
        return _Scan(info, None, "packets without timestamps")
    if not dts_ordered:
        return _Scan(info, None, "decoding timestamps out of order")
    try:
        return _Scan(info, FrameTable.from_packets(pts, dts, keyframe), None)
    except SeekUnreliable as reason:
        return _Scan(info, None, str(reason))


def _frame_rate(stream: av.video.stream.VideoStream, count: int, first: int | None, last: int | None) -> float | None:
    """The stream's average rate (what torchvision uses), else frames per second of timestamps."""
    if stream.average_rate:
        return float(stream.average_rate)
    if count < 2 or first is None or last is None or last <= first or stream.time_base is None:
        return None
    return (count - 1) / float((last - first) * stream.time_base)


# --- decoding ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    """Sampled frames (T, H, W, 3) uint8 RGB, the indices they came from, and why those differ from the mode."""

    frames: np.ndarray
    indices: list[int]
    notes: list[str]


def read_frames(path: str | Path, num_frames: int, mode: str = "uniform", *, threads: str = "AUTO") -> np.ndarray:
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
    the CPUs, at most 8; runtime.side_by_side); 1 decodes them one after the other.
    `limits` bounds what the video may cost (runtime.limits); a video over them raises LimitExceeded.
    """
    decoders = decoders_per_video() if decoders is None else decoders
    if decoders < 1:
        raise ValueError(f"decoders must be at least 1, got {decoders}")
    return _read(str(path), num_frames, mode, _Decoding(threads, decoders, limits), seek=True)


def read_clip_without_seeking(
    path: str | Path, num_frames: int, mode: str = "uniform", *, threads: str = "AUTO"
) -> Clip:
    """`read_clip` decoding from the start up to the last sampled frame: the reference that the seek
    path is tested and benchmarked against (same indices, same pixels, cost growing with the video)."""
    return _read(str(path), num_frames, mode, _Decoding(threads, 1), seek=False)


@dataclass(frozen=True)
class _Decoding:
    """How to decode: FFmpeg's thread type per decoder, and how many decoders may seek side by side."""

    threads: str
    decoders: int
    limits: Limits = CLI_LIMITS


def _read(path: str, num_frames: int, mode: str, decoding: _Decoding, seek: bool) -> Clip:
    threads = decoding.threads
    decoding.limits.check_file(path)
    if threads not in THREAD_TYPES:
        raise ValueError(f"threads must be one of {', '.join(THREAD_TYPES)}, got {threads!r}")
    if seek:
        clip = _read_by_index(path, num_frames, mode, decoding)
        if clip is not None:
            return clip
    scan = _scan(path)
    sampling = _plan_for_file(scan.info.num_frames, num_frames, mode, scan.info.fps)
    images, seek_note = None, None
    if seek and not scan.damaged:
        images, seek_note = _seek_frames(path, scan, sampling.indices, decoding)
    if images is None:
        # a damaged file is decoded to its end, so that a note says how many of its frames decode
        through = scan.info.num_frames - 1 if scan.damaged else max(sampling.indices)
        images, decoded = _decode(path, sampling.indices, threads, through)
        if decoded <= through:
            sampling = _plan_after_short_decode(path, scan.info, decoded, num_frames, mode)
            images, _ = _decode(path, sampling.indices, threads)
            if len(images) < len(set(sampling.indices)):
                raise VideoError(f"{path}: decoding is not repeatable (fewer frames on a second pass)")
        elif seek_note:  # the file decodes whole: seeking it was what failed
            sampling = Sampling(sampling.indices, [*sampling.notes, seek_note])
    return _clip(path, images, sampling)


def _read_by_index(path: str, num_frames: int, mode: str, decoding: _Decoding) -> Clip | None:
    """The mp4 fast path: frame count and each window's timestamps from the sample index, so no
    demuxing pass over the whole file; None when the index cannot be trusted or a check fails
    (the caller then demuxes everything, which is exact)."""
    with _open(path) as container:
        stream = _video_stream(container, path)
        index = SampleIndex.load(container, stream, Path(path).stat().st_size)
        if index is None or not stream.average_rate:  # without a stated rate, demuxing finds it
            return None
        sampling = _plan_for_file(index.num_frames, num_frames, mode, float(stream.average_rate))
        stream.thread_type = decoding.threads
        reopen = partial(_opened, path, decoding.threads)
        try:
            images = index.decode_ranks(
                container, stream, sampling.indices, _upright_rgb, reopen=reopen, decoders=decoding.decoders
            )
        except SeekUnreliable:
            return None
    return _clip(path, images, sampling)


def _clip(path: str, images: dict[int, np.ndarray], sampling: Sampling) -> Clip:
    notes = [*sampling.notes, *_repeat_notes(sampling.indices)]
    return Clip(_stack(path, images, sampling.indices), sampling.indices, notes)


def _seek_frames(
    path: str, scan: _Scan, indices: list[int], decoding: _Decoding
) -> tuple[dict[int, np.ndarray] | None, str | None]:
    """The wanted frames by seeking, or None and why seeking was not trusted (then decode from the start)."""
    if scan.table is None:
        return None, f"cannot seek ({scan.unseekable}): decoded from the start"
    reopen = partial(_opened, path, decoding.threads)
    try:
        with reopen() as (container, stream):
            images = decode_ranks(
                container, stream, scan.table, indices, _upright_rgb, reopen=reopen, decoders=decoding.decoders
            )
            return images, None
    except SeekUnreliable as reason:
        return None, f"seeking is unreliable ({reason}): decoded from the start"


def _repeat_notes(indices: list[int]) -> list[str]:
    """Say when the video had fewer frames than the model takes, so some were used more than once."""
    distinct = len(set(indices))
    if distinct == len(indices):
        return []
    return [f"frames repeated: {distinct} distinct of {len(indices)} frames"]


def _plan_for_file(num_video_frames: int, num_frames: int, mode: str, fps: float | None) -> Sampling:
    if mode == "reference" and fps is None:
        note = "frame rate unknown: sampled uniformly over the whole video"
        return Sampling(_uniform_indices(num_video_frames, num_frames), [note])
    return plan_sampling(num_video_frames, num_frames, mode, fps)


def _plan_after_short_decode(path: str, info: StreamInfo, decoded: int, num_frames: int, mode: str) -> Sampling:
    """Sample over the frames that did decode, or refuse when too few of them did."""
    if decoded == 0:
        raise VideoError(f"{path}: no frame decodes (corrupt or truncated file)")
    if decoded < MIN_DECODED_FRACTION * info.num_frames:
        raise VideoError(f"{path}: only {decoded} of {info.num_frames} frames decode (corrupt or truncated file)")
    sampling = _plan_for_file(decoded, num_frames, mode, info.fps)
    note = f"decoded {decoded} of {info.num_frames} frames (truncated or corrupt file): sampled over those"
    return Sampling(sampling.indices, [note, *sampling.notes])


def _decode(path: str, indices: list[int], threads: str, last: int | None = None) -> tuple[dict[int, np.ndarray], int]:
    """Decode in presentation order up to index `last` (default: the last wanted one); RGB only for
    the wanted frames.

    Returns the wanted frames by index and how many frames decoded: the caller compares what came
    out with what it asked for.
    """
    wanted = set(indices)
    last = max(indices) if last is None else last
    images: dict[int, np.ndarray] = {}
    decoded = 0
    with _open(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = threads
        for frame in _decoded_frames(container, stream):
            if decoded in wanted:
                images[decoded] = _upright_rgb(frame)
            decoded += 1
            if decoded > last:
                break
    return images, decoded


def _decoded_frames(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> Iterator[av.VideoFrame]:
    """Frames in presentation order. A packet the decoder rejects is skipped; a demuxing error
    ends the stream, and the decoder is still flushed so the frames it holds come out."""
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return  # the demuxer's final empty packet has flushed the decoder
        except av.error.FFmpegError:
            break
        try:
            frames = packet.decode()
        except av.error.FFmpegError:
            continue
        yield from frames
    try:
        yield from stream.decode(None)
    except av.error.FFmpegError:
        return


def _upright_rgb(frame: av.VideoFrame) -> np.ndarray:
    """RGB pixels turned as the display matrix says (frame.rotation is counterclockwise degrees)."""
    image = frame.to_ndarray(format="rgb24")
    quarter_turns = round(frame.rotation / 90) % 4
    return np.rot90(image, quarter_turns) if quarter_turns else image


def _stack(path: str, images: dict[int, np.ndarray], indices: list[int]) -> np.ndarray:
    shapes = {image.shape for image in images.values()}
    if len(shapes) != 1:
        raise VideoError(f"{path}: frame size changes within the video ({', '.join(map(str, sorted(shapes)))})")
    (shape,) = shapes
    out = np.empty((len(indices), *shape), dtype=np.uint8)
    for row, index in enumerate(indices):
        out[row] = images[index]
    return out
