"""Streaming frame reader for long videos: the frames shown at times k/F, decoded in one forward pass.

One frame in flight at a time, so memory does not grow with the video's length. The frame taken
for time t is the one on screen at t (the last frame whose timestamp is <= t), so variable frame
rates and rates that are not multiples of F are sampled by time, not by frame count. The first
decoding or demuxing error ends the stream: what follows it in a damaged file is concealment
garbage, so the timeline keeps what came before and says where it stopped (`notes`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import av
import numpy as np

from runtime.errors import VideoError
from runtime.limits import CLI_LIMITS, Limits
from runtime.video import _open, _reason, _upright_rgb, _video_stream

# A frame whose timestamp is within this of a target time is on screen at it (timestamps are rounded
# to the stream's time base, e.g. 1/15360 s, so k/F rarely equals one exactly).
TIME_EPSILON = 1e-4


@dataclass(frozen=True)
class TimedFrame:
    """Sample k: the upright RGB frame (H, W, 3) uint8 on screen at time k / F."""

    index: int
    time: float
    image: np.ndarray


@dataclass
class FrameStream:
    """Iterate the frames at times k/F of the video at `path` (k = 0, 1, ...), one at a time.

    `wanted(k)` says which samples are converted to RGB and yielded; the others are only counted
    (the gaps between windows when the stride exceeds the window). After iteration, `count` is the
    number of sample times the video covered and `notes` says why it ended early, if it did.
    """

    path: str
    fps: float
    wanted: Callable[[int], bool] = lambda index: True
    threads: str = "AUTO"
    limits: Limits = CLI_LIMITS
    count: int = 0
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise ValueError(f"sampling rate must be positive, got {self.fps}")

    def duration(self) -> float | None:
        """The container's duration in seconds, when it declares one (for a progress bar's total)."""
        with _open(self.path) as container:
            stream = _video_stream(container, self.path)
            if stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base)
            return container.duration / av.time_base if container.duration else None

    def __iter__(self) -> Iterator[TimedFrame]:
        self.count, self.notes = 0, []
        with _open(self.path) as container:
            stream = _video_stream(container, self.path)
            stream.thread_type = self.threads
            shown: av.VideoFrame | None = None  # the frame on screen now
            origin, frame_time = None, 0.0
            for frame in self._decoded(container, stream):
                frame_time = _frame_time(frame, self._decoded_count, stream)
                origin = frame_time if origin is None else origin
                if shown is not None:
                    yield from self._samples_until(shown, frame_time - origin)
                shown, self._shown_time = frame, frame_time - origin
            if shown is None:
                raise VideoError(f"{self.path}: no frame decodes" + (f" ({self.notes[0]})" if self.notes else ""))
            yield from self._samples_until(shown, frame_time - origin + _frame_duration(stream))

    def _samples_until(self, shown: av.VideoFrame, end: float) -> Iterator[TimedFrame]:
        """The samples whose time falls before `end`, the time the next frame replaces `shown`."""
        image = None
        while self.count / self.fps < end - TIME_EPSILON:
            index, self.count = self.count, self.count + 1
            if self.wanted(index):
                image = _upright_rgb(shown) if image is None else image
                yield TimedFrame(index, index / self.fps, image)

    def _decoded(
        self, container: av.container.InputContainer, stream: av.video.stream.VideoStream
    ) -> Iterator[av.VideoFrame]:
        """Frames in presentation order until the end or the first error (which becomes a note)."""
        self._decoded_count, self._shown_time = 0, 0.0
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
                frames = packet.decode()
            except StopIteration:
                return
            except av.error.FFmpegError as error:
                last = f"after {self._shown_time:.2f} s" if self._decoded_count else "at the start"
                self.notes.append(
                    f"decoding failed {last} ({_reason(error)}): the timeline ends at the last good frame"
                )
                return
            for frame in frames:
                yield frame
                self._decoded_count += 1


def _frame_time(frame: av.VideoFrame, decoded: int, stream: av.video.stream.VideoStream) -> float:
    """Presentation time in seconds; frame count over the average rate when there is no timestamp."""
    if frame.pts is not None and frame.time_base is not None:
        return float(frame.pts * frame.time_base)
    rate = float(stream.average_rate) if stream.average_rate else 25.0
    return decoded / rate


def _frame_duration(stream: av.video.stream.VideoStream) -> float:
    """How long the last frame stays on screen: one period of the average rate."""
    return 1.0 / float(stream.average_rate) if stream.average_rate else 0.04
