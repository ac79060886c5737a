"""The one packet -> frame loop: every decode in the runtime (whole files, seeks, streams, side-by-side
decoders, live sources) feeds packets to a decoder here, under one error policy and one set of checks.

On every packet: the stop event and the decode deadline (`runtime.limits.Deadline`), so a decode
that runs too long stops itself and a shutdown is never stuck behind a long file. On every decoded
frame, before anyone converts or keeps it: its pixels (a stream may switch size mid-way) and the
media time reached since the first frame. What happens on a demuxing or decoding error is the
caller's `Policy`:

- SKIP: a packet the decoder rejects is passed over; a demuxing error ends the input, and the frames
  the decoder still holds come out (reading a whole file: decode as much of it as decodes);
- STOP: the first error ends the frames, and a note says where (streams and live sources: what
  follows a corrupt stretch is concealment garbage);
- RAISE: the first error raises `DecodeFailed` (seeking: any surprise means "do not trust this").
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from runtime.decode.container import Container, Stream, nominal_rate, opened, reason, set_threads, video_stream
from runtime.errors import VideoError
from runtime.limits import CLI_LIMITS, Deadline, Limits


class Policy(Enum):
    """What a demuxing or decoding error does to the loop (see the module docstring)."""

    SKIP = "skip"
    STOP = "stop"
    RAISE = "raise"


class DecodeFailed(VideoError):
    """A demuxing or decoding error under Policy.RAISE."""


@dataclass(frozen=True)
class DecodedFrame:
    """A decoded picture and its presentation time in seconds (stream time, not relative to the first frame)."""

    frame: av.VideoFrame
    time: float


@dataclass(frozen=True)
class Guard:
    """What one video's packets and frames are checked against: its limits, its decode deadline
    (shared by every decoder of the video) and an optional stop event (a shutdown)."""

    where: str
    limits: Limits = CLI_LIMITS
    deadline: Deadline | None = None
    stop: threading.Event | None = None
    origin: float | None = None  # media time is counted from here (seconds); None: from the first frame

    @classmethod
    def start(cls, where: str, limits: Limits = CLI_LIMITS, stop: threading.Event | None = None) -> Guard:
        """A guard whose decode clock starts now."""
        return cls(where, limits, limits.deadline(where), stop)

    def stopped(self) -> bool:
        """True once the stop event is set; LimitExceeded once the deadline has passed."""
        if self.deadline is not None:
            self.deadline.check()
        return self.stop is not None and self.stop.is_set()


def packets(container: Container, stream: Stream, guard: Guard) -> Iterator[av.Packet[Stream]]:
    """The stream's packets that carry data, in file order: the runtime's one call of `container.demux`.

    The guard is checked before each packet (a stop ends the packets; a passed deadline raises
    LimitExceeded). A demuxing error propagates as FFmpeg raised it: the caller's policy decides.
    """
    demuxed = container.demux(stream)
    while not guard.stopped():
        packet = next(demuxed, None)
        if packet is None:
            return
        if packet.size:  # the demuxer's final empty packet: the caller flushes the decoder itself
            yield packet


def decode(
    stream: Stream,
    fed: Iterable[av.Packet[Stream]],
    guard: Guard,
    policy: Policy,
    *,
    notes: list[str] | None = None,
) -> Iterator[DecodedFrame]:
    """Decode `fed` packets of `stream`, then drain the decoder; frames in presentation order.

    Errors raised by `fed` (demuxing) or by the decoder follow `policy`; STOP appends its note to
    `notes`. A set stop event ends the frames without draining. Each frame is checked against
    `guard.limits` before it is yielded: its size, and its time past `guard.origin` (default: the
    first frame's time). A frame without a timestamp is timed by its count at the stream's nominal rate.
    """
    feed, count, first, last = iter(fed), 0, guard.origin, None
    while True:
        try:
            packet = next(feed)
        except StopIteration:
            break
        except av.error.FFmpegError as error:
            if _failed(policy, "demuxing", error, last, first, notes):
                return
            break  # SKIP: the input ends here; the decoder still gives what it holds
        try:
            frames = packet.decode()
        except av.error.FFmpegError as error:
            if _failed(policy, "decoding", error, last, first, notes):
                return
            continue
        for frame in frames:
            timed = _checked(frame, count, stream, guard, first)
            first, last, count = timed.time if first is None else first, timed.time, count + 1
            yield timed
    if guard.stop is not None and guard.stop.is_set():
        return  # a shutdown: the frames the decoder holds are not wanted
    try:
        held = stream.decode(None)
    except av.error.FFmpegError as error:
        _failed(policy, "draining the decoder", error, last, first, notes)
        return
    for frame in held:
        timed = _checked(frame, count, stream, guard, first)
        first, count = timed.time if first is None else first, count + 1
        yield timed


def frames(
    source: Container | str | Path,
    *,
    policy: Policy = Policy.STOP,
    limits: Limits = CLI_LIMITS,
    guard: Guard | None = None,
    stop: threading.Event | None = None,
    notes: list[str] | None = None,
    threads: str = "AUTO",
    options: Mapping[str, str] | None = None,
    format: str | None = None,
    open_timeout: float | None = None,
    read_timeout: float | None = None,
) -> Generator[DecodedFrame, None, None]:
    """Every frame of a source's first video stream, with its presentation time in seconds.

    `source`: an open container (left open: its owner closes it; its video stream is checked and
    set up here, so pass it before anything was decoded), or a path/URL/device name opened here
    with FFmpeg `options` (e.g. `{"rtsp_transport": "tcp", "timeout": "5000000"}`), `format`
    (a demuxer or device name) and `open_timeout`/`read_timeout` seconds, and closed when the
    iteration ends, fails or is abandoned.

    `policy` (default STOP) says what an error does; under STOP a corrupt stretch or a demuxing
    error ends the frames with a note appended to `notes`, never an exception. `limits` are
    checked on the declared stream before the decoder opens and on every frame (LimitExceeded,
    with the container released); `guard` carries them with a decode deadline already running
    and replaces `limits` and `stop` (default: `Guard.start(source, limits, stop)`, a clock starting
    now). The stop event is checked on every packet: setting it ends the frames after the packet in
    hand, without draining the decoder. `threads` is FFmpeg's
    thread type (runtime.decode.container.THREAD_TYPES), on at most MAX_DECODER_THREADS threads.
    """
    name = source.name if isinstance(source, av.container.InputContainer) else str(source)
    guard = guard or Guard.start(name, limits, stop)
    timeouts = {"open_timeout": open_timeout, "read_timeout": read_timeout}
    with _decoder(source, guard, threads, options=options, format=format, **timeouts) as (container, stream):
        yield from decode(stream, packets(container, stream, guard), guard, policy, notes=notes)


@contextmanager
def _decoder(
    source: Container | str | Path, guard: Guard, threads: str, **opening: Any
) -> Iterator[tuple[Container, Stream]]:
    """The source's video stream, checked and set up: an open container borrowed (not closed), else opened here."""
    if not isinstance(source, av.container.InputContainer):
        with opened(source, threads, guard.limits, **opening) as decoder:
            yield decoder
        return
    stream = video_stream(source, guard.where, guard.limits)
    set_threads(stream, threads)
    yield source, stream


def upright_rgb(frame: av.VideoFrame) -> npt.NDArray[np.uint8]:
    """RGB pixels (H, W, 3) uint8 turned as the display matrix says (frame.rotation is counterclockwise degrees)."""
    image = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
    quarter_turns = round(frame.rotation / 90) % 4
    return np.rot90(image, quarter_turns) if quarter_turns else image


def _checked(frame: av.VideoFrame, count: int, stream: Stream, guard: Guard, first: float | None) -> DecodedFrame:
    """The frame timed, after its size and the media time it reaches passed the limits."""
    guard.limits.check_pixels(frame, guard.where)
    time = frame_time(frame, count, stream)
    if first is not None:
        guard.limits.check_duration(time - first, guard.where, "media time reached")
    return DecodedFrame(frame, time)


def frame_time(frame: av.VideoFrame, count: int, stream: Stream) -> float:
    """Presentation time in seconds; the frame's count at the nominal rate when it has no timestamp."""
    time_base = frame.time_base or stream.time_base  # frames drained from the decoder carry none
    if frame.pts is not None and time_base is not None:
        return float(frame.pts * time_base)
    return count / nominal_rate(stream)


def _failed(
    policy: Policy, doing: str, error: Exception, last: float | None, first: float | None, notes: list[str] | None
) -> bool:
    """Apply `policy` to an error: raise (RAISE), note and end (STOP: True), or go on (SKIP: False)."""
    if policy is Policy.RAISE:
        raise DecodeFailed(f"{doing} failed ({reason(error)})") from None
    if policy is Policy.SKIP:
        return False
    if notes is not None:
        where = "at the start" if last is None or first is None else f"after {last - first:.2f} s"
        notes.append(f"{doing} failed {where} ({reason(error)})")
    return True
