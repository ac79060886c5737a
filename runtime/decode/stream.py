"""Streaming frame reader for long videos: the frames shown at times k/F, decoded in one forward pass.

One frame in flight at a time, so memory does not grow with the video's length. The frame taken
for time t is the one on screen at t (the last frame whose timestamp is <= t), so variable frame
rates and rates that are not multiples of F are sampled by time, not by frame count. Decoding goes
through the one decode loop (runtime.decode.loop) under Policy.STOP: the first decoding or demuxing
error ends the stream, because what follows it in a damaged file is concealment garbage, so the
timeline keeps what came before and says where it stopped (`notes`). The limits are checked there
too: the declared stream before decoding, every frame, and the decode deadline on every packet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import av
import numpy as np
import numpy.typing as npt

from runtime.decode.container import declared_duration, nominal_rate, open_container, opened, video_stream
from runtime.decode.loop import Guard, Policy, decode, packets, upright_rgb
from runtime.errors import VideoError
from runtime.limits import CLI_LIMITS, Limits

# A frame whose timestamp is within this of a target time is on screen at it (timestamps are rounded
# to the stream's time base, e.g. 1/15360 s, so k/F rarely equals one exactly).
TIME_EPSILON = 1e-4


@dataclass(frozen=True)
class TimedFrame:
    """Sample k: the upright RGB frame (H, W, 3) uint8 on screen at time k / F."""

    index: int
    time: float
    image: npt.NDArray[np.uint8]


def _every(index: int) -> bool:
    return True


@dataclass
class FrameStream:
    """Iterate the frames at times k/F of the video at `path` (k = 0, 1, ...), one at a time.

    `wanted(k)` says which samples are converted to RGB and yielded; the others are only counted
    (the gaps between windows when the stride exceeds the window). After iteration, `count` is the
    number of sample times the video covered and `notes` says why it ended early, if it did.
    """

    path: str
    fps: float
    wanted: Callable[[int], bool] = _every
    threads: str = "AUTO"
    limits: Limits = CLI_LIMITS
    count: int = 0
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise ValueError(f"sampling rate must be positive, got {self.fps}")

    def duration(self) -> float | None:
        """The container's duration in seconds, when it declares one (for a progress bar's total)."""
        with open_container(self.path) as container:
            return declared_duration(container, video_stream(container, self.path))

    def __iter__(self) -> Iterator[TimedFrame]:
        self.count, self.notes = 0, []
        guard = Guard.start(self.path, self.limits)
        errors: list[str] = []
        with opened(self.path, self.threads, self.limits) as (container, stream):
            shown: av.VideoFrame | None = None  # the frame on screen now
            origin, frame_time = None, 0.0
            for item in decode(stream, packets(container, stream, guard), guard, Policy.STOP, notes=errors):
                frame_time = item.time
                origin = frame_time if origin is None else origin
                if shown is not None:
                    yield from self._samples_until(shown, frame_time - origin)
                shown = item.frame
            self.notes = [f"{error}: the timeline ends at the last good frame" for error in errors]
            if shown is None or origin is None:
                raise VideoError(f"{self.path}: no frame decodes" + (f" ({self.notes[0]})" if self.notes else ""))
            yield from self._samples_until(shown, frame_time - origin + 1.0 / nominal_rate(stream))

    def _samples_until(self, shown: av.VideoFrame, end: float) -> Iterator[TimedFrame]:
        """The samples whose time falls before `end`, the time the next frame replaces `shown`."""
        image = None
        while self.count / self.fps < end - TIME_EPSILON:
            index, self.count = self.count, self.count + 1
            if self.wanted(index):
                image = upright_rgb(shown) if image is None else image
                yield TimedFrame(index, index / self.fps, image)
