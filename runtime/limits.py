"""Limits on what one untrusted video may cost: pixels per frame, media seconds, bytes, decode wall time.

One `Limits` object travels with every decode (`load_clip(..., limits=...)`, the readers, the
timeline, live sources). It is checked from what the container declares before a decoder opens,
and again on every decoded frame before it is converted or kept, because a stream may declare one
size and switch to another mid-way. A refusal is a `LimitExceeded`: a `VideoError`, so it becomes
that video's one-line error record, naming the value, the limit and the flag that lifts it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from runtime.errors import VideoError
from runtime.preprocess import resized_size

# DCI 4K (4096x2160) is the largest frame admitted by default; anything larger must be asked for.
DEFAULT_MAX_PIXELS = 4096 * 2160
HOUR = 3600.0
MIB = 1 << 20


class LimitExceeded(VideoError):
    """A video over one of the limits: refused before (or instead of) spending more on it."""


class SizedFrame(Protocol):
    """A decoded picture or a declared stream: all that the pixel check reads."""

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...


@dataclass(frozen=True)
class Limits:
    """What one video may cost. None lifts a limit.

    - `max_pixels`: width x height of any frame, declared or decoded (`--max-pixels`).
    - `max_duration`: media seconds a request may make us read (`--max-duration`).
    - `max_video_bytes`: size of the encoded file or upload (`--max-video-bytes`).
    - `decode_timeout`: wall seconds one video may spend decoding (`--decode-timeout`).
    """

    max_pixels: int | None = DEFAULT_MAX_PIXELS
    max_duration: float | None = None
    max_video_bytes: int | None = None
    decode_timeout: float | None = None

    def lifted(self, **changes: int | float | None) -> Limits:
        """A copy with some limits changed (None lifts one)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def check_pixels(self, frame: SizedFrame, where: str, what: str = "frame") -> None:
        """Refuse a frame (or a declared stream) larger than `max_pixels`, before or after preprocessing.

        Preprocessing resizes the shorter side to 256 before the centre crop, so an extreme aspect
        ratio (16x65536: 1 M pixels) would become a 256x1048576 image (805 MB of RGB). The resized
        image is held to the larger of `max_pixels` and DCI 4K's pixel count (small frames are
        enlarged to 256 anyway): by default aspect ratios beyond about 135:1 are refused.
        """
        if self.max_pixels is None:
            return
        pixels = frame.width * frame.height
        if pixels > self.max_pixels:
            raise LimitExceeded(
                f"{where}: {what} of {frame.width}x{frame.height} = {pixels} pixels is over the limit of "
                f"{self.max_pixels} (--max-pixels)"
            )
        if frame.width < 1 or frame.height < 1:
            return  # nothing to resize: the decoder's own error names such a stream
        height, width = resized_size(frame.height, frame.width)
        resized_limit = max(self.max_pixels, DEFAULT_MAX_PIXELS)
        if height * width > resized_limit:
            raise LimitExceeded(
                f"{where}: {what} of {frame.width}x{frame.height} resizes to {width}x{height} = {height * width} "
                f"pixels before the crop, over the limit of {resized_limit} (--max-pixels)"
            )

    def check_duration(self, seconds: float | None, where: str, what: str = "media time") -> None:
        """Refuse reading past `max_duration` seconds of media (declared or reached)."""
        if self.max_duration is not None and seconds is not None and seconds > self.max_duration:
            raise LimitExceeded(
                f"{where}: {what} of {seconds:.1f} s is over the limit of {self.max_duration:g} s (--max-duration)"
            )

    def check_bytes(self, size: int, where: str) -> None:
        """Refuse an encoded video larger than `max_video_bytes`, before it is written or decoded."""
        if self.max_video_bytes is not None and size > self.max_video_bytes:
            raise LimitExceeded(
                f"{where}: {size} bytes is over the limit of {self.max_video_bytes} bytes (--max-video-bytes)"
            )

    def check_file(self, path: str | Path) -> None:
        """The byte limit of a file on disk (a missing file is left to the decoder's own error)."""
        try:
            size = Path(path).stat().st_size
        except OSError:
            return
        self.check_bytes(size, str(path))

    def deadline(self, where: str) -> Deadline:
        """Start the decode clock of one video."""
        return Deadline(where, self.decode_timeout)


class Deadline:
    """The decode wall-time limit of one video, checked by the decode loop on every packet.

    Checking inside the loop stops the decode itself: nothing is left running on a thread.
    """

    def __init__(self, where: str, seconds: float | None) -> None:
        self._where = where
        self._seconds = seconds
        self._started = time.perf_counter()

    def check(self) -> None:
        """Raise once the video has spent more than its decode time."""
        if self._seconds is None:
            return
        spent = time.perf_counter() - self._started
        if spent > self._seconds:
            raise LimitExceeded(
                f"{self._where}: decoding took over {self._seconds:g} s (--decode-timeout) and was stopped"
            )


# The defaults of each kind of caller. A command line trusts its user's files (no duration or time
# limit); a server or a batch job takes strangers' videos and protects itself.
CLI_LIMITS = Limits()
BATCH_LIMITS = Limits(max_duration=HOUR, decode_timeout=60.0)
SERVER_LIMITS = Limits(max_duration=HOUR, max_video_bytes=256 * MIB, decode_timeout=60.0)
NO_LIMITS = Limits(max_pixels=None)
