"""One source's reader thread: connect, decode with the runtime's one packet -> frame loop, sample at F on the
source's own clock, preprocess what is sampled, hand it to the hub; on loss, report and reconnect.

Sampling follows the timeline's rule: sample k is the frame on screen at k/F seconds of the source's
clock (the last frame whose time is <= k/F), known once the next frame arrives; so a file read live
gives the samples its `--timeline` gives. The clock starts at the first frame of the first connection;
after a reconnection it continues from the last frame plus the wall time spent without frames, and
a new run starts (no window mixes frames from both sides of a gap).

Errors are the loop's, under Policy.STOP: a decoding error ends a stretch with a note, and reading goes
on from the next keyframe (frames flagged corrupt are skipped the same way), so no sample is made of
concealment garbage. A demuxing error (a stall: no packet for the stall timeout, FFmpeg's and PyAV's
own timeouts) or the end of a network stream loses the connection.

A listening source (an RTSP, TCP or SRT address that a sender pushes to) opens when a sender connects;
its wait for one is bounded by the stall timeout, and after a wait or a loss it listens again within
the first backoff.
"""

from __future__ import annotations

import inspect
import math
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import av
from numpy.typing import NDArray

from runtime.decode.container import OpenTimedOut, nominal_rate, opened, reason
from runtime.decode.loop import DecodedFrame, Guard, Policy, decode, packets, upright_rgb
from runtime.decode.stream import TIME_EPSILON
from runtime.errors import VideoError
from runtime.limits import LimitExceeded, Limits
from runtime.live.hub import Hub, Sample
from runtime.live.records import EventRecord
from runtime.live.sources import Source
from runtime.preprocess import preprocess
from runtime.windows import TimelineOptions

FIRST_BACKOFF = 0.5  # seconds before the first reconnection attempt; doubles up to the maximum


@dataclass(frozen=True)
class ReaderSettings:
    """How every source is read."""

    windows: TimelineOptions
    limits: Limits
    stall_timeout: float = 10.0
    rtsp_transport: str = "tcp"
    realtime: bool = False  # files played at their own pace, as a camera would
    max_backoff: float = 10.0


class Lost(Exception):
    """The connection ended: the stream stopped, stalled or failed to demux (the reason is the message)."""


@dataclass
class _Shown:
    """The frame on screen: its clock time, when it was decoded, and its RGB pixels once converted."""

    frame: av.VideoFrame
    time: float
    arrival: float
    pixels: NDArray[Any] | None = None


class SourceReader:
    """Reads one source on its own thread until it ends, gives up, or `stop` is set."""

    def __init__(self, index: int, source: Source, settings: ReaderSettings, hub: Hub, stop: threading.Event):
        self.index, self.source, self.settings, self.hub, self.stop = index, source, settings, hub, stop
        self.opened = threading.Event()  # a frame arrived at least once
        self.attempted = threading.Event()  # the first connection attempt is over (frames or failure)
        self.failure: str | None = None  # why the first attempt failed
        self.decode_seconds = 0.0  # thread CPU time spent reading, decoding, converting and preprocessing
        self._thread = threading.Thread(target=self._run, name=f"live-{source.name}", daemon=True)
        self._next_index = 0  # the next sample index of the source's clock
        self._run_start = 0
        self._clock_end: float | None = None  # clock time where the last connection's frames ended
        self._wall_end = 0.0
        self._connections = 0
        self._connected_since_loss = False

    @property
    def live(self) -> bool:
        """Whether samples are dropped under load (a camera) rather than waited for (a file read at full speed)."""
        return not self.source.is_file or self.settings.realtime

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    # --- the connection loop --------------------------------------------------------------------

    def _run(self) -> None:
        started = time.thread_time()
        try:
            self._reconnecting()
        finally:
            self.decode_seconds = time.thread_time() - started
            self.attempted.set()
            self.hub.wake()

    def _reconnecting(self) -> None:
        """Connect; on a loss, report it once and retry with a doubling backoff (files end instead).

        A listening source listens again after the first backoff, never longer (its sender decides when
        to come back), and a wait that no sender ended is no failure: it does not count towards "no
        source opened"."""
        backoff, reported = FIRST_BACKOFF, False
        while not self.stop.is_set():
            waiting = False  # a listener that no sender connected to
            try:
                self._connection()
                if self.source.is_file:
                    self._event("ended", "end of file", up=False)
                    return
                failure = "the stream ended"
            except LimitExceeded as error:
                self._event("ended", str(error), up=False)
                return
            except OpenTimedOut as error:
                waiting = self.source.listen
                failure = f"no sender for {self.settings.stall_timeout:g} s (listening)" if waiting else str(error)
            except (VideoError, Lost) as error:
                failure = str(error)
            if self.stop.is_set():
                return
            if self._connected_since_loss:  # frames came: a new loss, reported, and a fresh backoff
                backoff, reported = FIRST_BACKOFF, False
            if not waiting:
                if not self.opened.is_set():
                    self.failure = self.failure or failure
                self.attempted.set()
            if self.source.is_file:
                self._event("ended", failure, up=False)
                return
            if not reported:
                self._event("lost", failure, up=False, time=self._clock_end)
                reported = True
            self.stop.wait(backoff)
            if not self.source.listen:
                backoff = min(backoff * 2, self.settings.max_backoff)

    def _connection(self) -> None:
        """One connection: frames until the stream ends (returns) or is lost (raises Lost)."""
        settings, source = self.settings, self.source
        self._connected_since_loss = False
        with opened(
            source.url,
            "AUTO",
            settings.limits,
            options=source.ffmpeg_options(settings.stall_timeout, settings.rtsp_transport),
            format=source.format,
            open_timeout=settings.stall_timeout,
            read_timeout=settings.stall_timeout,
        ) as (container, stream):
            deadline = None if self.live else settings.limits.deadline(source.name)  # a stream never ends
            guard = Guard(source.name, settings.limits, deadline, self.stop)
            lost: list[str] = []
            fed = self._packets(container, stream, guard, lost)
            sampler = _Sampler(self, stream)
            while not self.stop.is_set():
                notes: list[str] = []
                for decoded in decode(stream, fed, guard, Policy.STOP, notes=notes):
                    sampler.frame(decoded)
                if not notes or inspect.getgeneratorstate(fed) == inspect.GEN_CLOSED:  # no packet left to resume from
                    break
                sampler.skip(notes[0])  # a corrupt stretch: resume at the next keyframe
            if lost:
                sampler.end(flush=False)
                raise Lost(lost[0])
            sampler.end(flush=not self.stop.is_set())

    def _packets(
        self, container: av.container.InputContainer, stream: av.video.stream.VideoStream, guard: Guard, lost: list[str]
    ) -> Generator[av.Packet[Any], None, None]:
        """The loop's packets; a demuxing error (a stall, a dropped connection) ends them and is kept in `lost`."""
        try:
            yield from packets(container, stream, guard)
        except av.error.FFmpegError as error:
            timeout = isinstance(error, av.error.ExitError)
            lost.append(
                f"no packet for {self.settings.stall_timeout:g} s (stalled)"
                if timeout
                else f"demuxing failed ({reason(error)})"
            )

    # --- what the sampler calls back ------------------------------------------------------------

    def _event(
        self,
        event: str,
        why: str | None = None,
        *,
        up: bool | None = None,
        time: float | None = None,
        **details: object,
    ) -> None:
        self.hub.post(EventRecord(self.source.name, event, why, time, dict(details)), self.index, up)

    def _connected(self, first: DecodedFrame, clock: float) -> None:
        self._connections += 1
        self._connected_since_loss = True
        self.opened.set()
        self.attempted.set()
        frame = first.frame
        event = "connected" if self._connections == 1 else "reconnected"
        self._event(event, up=True, time=clock, width=frame.width, height=frame.height)

    def _sample(self, index: int, shown: _Shown) -> None:
        """Queue sample `index` (the frame `shown`), under the drop policy for live sources."""
        windows = self.settings.windows
        if self.live and self.hub.room_for(self.index):
            self._run_start = index  # the backlog was dropped: a new run starts here
        if not windows.wanted(index - self._run_start):
            return
        if shown.pixels is None:
            shown.pixels = preprocess(upright_rgb(shown.frame)[None])[0]
        sample = Sample(self.index, index, self._run_start, shown.arrival, shown.pixels)
        self.hub.put(sample, wait=not self.live, stop=self.stop)


class _Sampler:
    """The samples of one connection: clock times, pacing, runs and corrupt stretches."""

    def __init__(self, reader: SourceReader, stream: av.video.stream.VideoStream):
        self.reader, self.period = reader, 1.0 / nominal_rate(stream)
        self.origin: float | None = None  # stream time of this connection's first frame
        self.offset = 0.0  # clock time of that frame
        self.wall_origin = 0.0
        self.shown: _Shown | None = None
        self.broken = False  # after a corrupt stretch: nothing until a clean keyframe

    def clock(self, decoded: DecodedFrame) -> float:
        reader = self.reader
        seconds = decoded.time
        if self.origin is None:
            self.origin, self.wall_origin = seconds, time.monotonic()
            if reader._clock_end is not None:  # the clock continues across the gap
                self.offset = reader._clock_end + max(0.0, self.wall_origin - reader._wall_end)
            reader._connected(decoded, self.offset)
        return self.offset + seconds - self.origin

    def frame(self, decoded: DecodedFrame) -> None:
        reader = self.reader
        clock = self.clock(decoded)
        if reader.settings.realtime and reader.source.is_file:
            reader.stop.wait(max(0.0, self.wall_origin + clock - self.offset - time.monotonic()))
        if decoded.frame.is_corrupt:
            self.skip("a frame decoded with errors (concealed)")
            return
        if self.broken and not decoded.frame.key_frame:
            return
        self.broken = False
        fps = reader.settings.windows.fps
        if self.shown is None:  # the first frame after a connection or a break: a new run
            reader._next_index = max(reader._next_index, math.ceil(clock * fps - TIME_EPSILON))
            reader._run_start = reader._next_index
        else:
            self.until(clock)
        self.shown = _Shown(decoded.frame, clock, time.monotonic())

    def until(self, end: float) -> None:
        """The samples whose time falls before `end`, the time the next frame replaces the one shown."""
        reader, shown = self.reader, self.shown
        fps = reader.settings.windows.fps
        while shown is not None and reader._next_index / fps < end - TIME_EPSILON and not reader.stop.is_set():
            index = reader._next_index
            reader._next_index += 1
            reader._sample(index, shown)

    def skip(self, note: str) -> None:
        """A corrupt stretch: the frame on screen is not held over it, and reading resumes at a keyframe."""
        if not self.broken:
            time_now = self.shown.time if self.shown is not None else self.offset
            self.reader._event("skipped", note, time=time_now)
        self.shown, self.broken = None, True

    def end(self, flush: bool) -> None:
        """The connection is over: the last frame stays on screen for one frame period (files)."""
        reader = self.reader
        if self.shown is not None:
            if flush:
                self.until(self.shown.time + self.period)
            reader._clock_end, reader._wall_end = self.shown.time + self.period, time.monotonic()
