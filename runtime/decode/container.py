"""Opening a video: the container (a file, or a network or device source with FFmpeg options and
timeouts), its video stream checked against the limits from what it declares, and the decoder's threads.

Everything here happens before a decoder opens: a stream declaring more pixels or more media time
than the limits allow is refused without decoding a packet of it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import av

from runtime.cpu import usable_cpus
from runtime.errors import VideoError
from runtime.limits import Limits

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg")
THREAD_TYPES = ("AUTO", "FRAME", "SLICE", "NONE")
# Threads of one decoder. Each frame thread holds a picture in flight, so a decoder's memory is at
# most pixels x (reference frames + threads) x 1.5 bytes (YUV 4:2:0, 8 bits): at the default
# 4096x2160 limit, (16 + 8) x 13 MB = 320 MB for one admitted video, whatever FFmpeg's own choice
# (CPUs + 1, up to 16 frame threads) would have been on a large machine.
MAX_DECODER_THREADS = 8
# The one frame rate assumed when a stream states none and its frames carry no timestamps.
FALLBACK_RATE = 25.0

Stream = av.video.stream.VideoStream
Container = av.container.InputContainer
Decoder = tuple[Container, Stream]


class OpenTimedOut(VideoError):
    """Opening waited past its timeout: a network source or device sent nothing, or no sender connected
    to a listening source."""


def list_videos(directory: str | Path) -> list[Path]:
    """Video files under `directory` (recursively, by suffix, case-insensitive), sorted by path."""
    root = Path(directory)
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())


def is_file_source(source: str, format: str | None = None) -> bool:
    """A path on disk, as opposed to a URL (rtsp://, srt://, udp://, http://...) or a device."""
    return format is None and "://" not in source


def open_container(
    source: str | Path,
    *,
    options: Mapping[str, str] | None = None,
    format: str | None = None,
    open_timeout: float | None = None,
    read_timeout: float | None = None,
) -> Container:
    """Open a file, URL or device for reading; VideoError (one line, naming the source) when it cannot be.

    `options` are FFmpeg's (e.g. `{"rtsp_transport": "tcp", "timeout": "5000000"}`); `format`
    names a demuxer or device (e.g. "v4l2"); the timeouts bound, in seconds, how long opening and
    each read may wait for data (None: FFmpeg's default, which may be forever for a network source).
    """
    name = str(source)
    if is_file_source(name, format) and not Path(name).is_file():
        raise VideoError(f"{name}: no such file")
    timeout = None if open_timeout is None and read_timeout is None else (open_timeout, read_timeout)
    try:
        return av.open(name, options=dict(options or {}), format=format, timeout=timeout)
    except (av.error.ExitError, TimeoutError) as error:  # PyAV's timeout, or FFmpeg's own (ETIMEDOUT)
        raise OpenTimedOut(f"{name}: not a readable video ({reason(error)})") from None
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise VideoError(f"{name}: not a readable video ({reason(error)})") from None


def video_stream(container: Container, where: str, limits: Limits | None = None) -> Stream:
    """The first video stream, refused (LimitExceeded) when its declared size or duration is over `limits`.

    Reading `codec_context.width/height` does not open the decoder: the check costs no decoding.
    """
    if not container.streams.video:
        raise VideoError(f"{where}: no video stream")
    stream = container.streams.video[0]
    if limits is not None:
        limits.check_pixels(stream.codec_context, where, "declared stream")
        limits.check_duration(declared_duration(container, stream), where, "declared duration")
    return stream


def set_threads(stream: Stream, thread_type: str) -> None:
    """Decode `stream` on FFmpeg's `thread_type` with at most `decoder_threads()` threads (before it opens)."""
    if thread_type not in THREAD_TYPES:
        raise ValueError(f"threads must be one of {', '.join(THREAD_TYPES)}, got {thread_type!r}")
    stream.thread_type = thread_type
    stream.codec_context.thread_count = decoder_threads()


def decoder_threads() -> int:
    """Threads per decoder: this process's CPUs, at most MAX_DECODER_THREADS (see there for the memory bound)."""
    return min(usable_cpus(), MAX_DECODER_THREADS)


@contextmanager
def opened(
    source: str | Path,
    threads: str = "AUTO",
    limits: Limits | None = None,
    *,
    options: Mapping[str, str] | None = None,
    format: str | None = None,
    open_timeout: float | None = None,
    read_timeout: float | None = None,
) -> Iterator[Decoder]:
    """The source opened, its video stream checked and set to decode on `threads`; closed on leaving."""
    with open_container(
        source, options=options, format=format, open_timeout=open_timeout, read_timeout=read_timeout
    ) as container:
        stream = video_stream(container, str(source), limits)
        set_threads(stream, threads)
        yield container, stream


def declared_duration(container: Container, stream: Stream) -> float | None:
    """The duration in seconds the stream (else the container) declares; None when neither does."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration else None


def nominal_rate(stream: Stream) -> float:
    """The stream's average frame rate, or FALLBACK_RATE when it states none."""
    return float(stream.average_rate) if stream.average_rate else FALLBACK_RATE


def reason(error: Exception) -> str:
    """What FFmpeg (or the OS) said, on one line."""
    text = getattr(error, "strerror", None) or str(error)
    return " ".join(str(text).split())
