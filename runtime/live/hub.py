"""Where reader threads hand over samples and events, and the model loop takes them: one bounded queue per
source, and the drop policy that keeps latency bounded when the model cannot keep up.

Drop policy: a live source's queue holds at most `depth` preprocessed samples. A sample that arrives
to a full queue drops the whole backlog (every queued sample of that source, oldest first, counted
in `dropped`) and starts a new run: the ring buffer of that source restarts at this sample, so no
window spans the dropped stretch, and the next window comes T samples later, made of fresh frames.
Dropping the backlog rather than one sample at a time matters: single drops would cut every run short
of T samples under sustained overload, and no window would ever complete. Files read as fast as the
model goes (not `--realtime`) never drop: their reader waits for room instead. A run reaches T samples
before its backlog overflows only while the model takes at least T / (T + depth) of a source's
samples: the depth trades the latency bound for windows under heavier overload.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from numpy.typing import NDArray

from runtime.live.records import EventRecord


@dataclass(frozen=True)
class Sample:
    """Sample `index` of a source (at index / F seconds of its clock), preprocessed (3, 224, 224).

    `run` is the index where its unbroken run of samples began: samples of different runs never share
    a window. `arrival` is the monotonic time its frame was decoded.
    """

    source: int
    index: int
    run: int
    arrival: float
    pixels: NDArray[Any]


@dataclass
class SourceCounts:
    """Per-source counters, read by the status table and the metrics."""

    samples: int = 0  # samples that entered the queue
    dropped: int = 0  # samples dropped unprocessed (backlog policy)
    windows: int = 0
    up: bool = False
    last_label: str = ""
    last_probability: float = 0.0
    last_latency_ms: float = 0.0
    first_arrival: float | None = None


class Hub:
    """Bounded per-source sample queues and an event list, behind one lock and one condition."""

    def __init__(self, sources: int, depth: int):
        self.depth = max(1, depth)
        self.counts = [SourceCounts() for _ in range(sources)]
        self._queues: list[deque[Sample]] = [deque() for _ in range(sources)]
        self._events: deque[EventRecord] = deque()
        self._changed = threading.Condition()
        self._next = 0  # round-robin start, so that no source is always served first

    def room_for(self, source: int) -> int:
        """Called before a live sample is made: 0 when the queue had room; else the backlog dropped
        (the caller starts a new run with the sample it is about to put)."""
        with self._changed:
            queue = self._queues[source]
            if len(queue) < self.depth:
                return 0
            dropped = len(queue)
            queue.clear()
            self.counts[source].dropped += dropped
            return dropped

    def put(self, sample: Sample, wait: bool, stop: threading.Event) -> bool:
        """Queue a sample; with `wait` (files read at the model's pace) wait for room. False if stopped."""
        with self._changed:
            queue = self._queues[sample.source]
            while wait and len(queue) >= self.depth:
                if stop.is_set():
                    return False
                self._changed.wait(0.1)
            queue.append(sample)
            counts = self.counts[sample.source]
            counts.samples += 1
            counts.first_arrival = counts.first_arrival or sample.arrival
            self._changed.notify_all()
            return True

    def post(self, event: EventRecord, source: int, up: bool | None = None) -> None:
        with self._changed:
            self._events.append(event)
            if up is not None:
                self.counts[source].up = up
            self._changed.notify_all()

    def wake(self) -> None:
        """Wake the model loop (a reader finished, or a stop)."""
        with self._changed:
            self._changed.notify_all()

    def take(self, limit: int, timeout: float) -> tuple[list[EventRecord], list[Sample]]:
        """Events so far and up to `limit` samples, oldest first per source, sources taken in turn.

        Waits up to `timeout` for something to arrive; returns at once when something is there.
        """
        with self._changed:
            if not self._events and not any(self._queues):
                self._changed.wait(timeout)
            events = list(self._events)
            self._events.clear()
            samples: list[Sample] = []
            count = len(self._queues)
            while len(samples) < limit and any(self._queues):
                queue = self._queues[self._next]
                self._next = (self._next + 1) % count
                if queue:
                    samples.append(queue.popleft())
            if samples:
                self._changed.notify_all()  # room for waiting file readers
            return events, samples

    def empty(self) -> bool:
        with self._changed:
            return not self._events and not any(self._queues)

    def throughput(self, source: int, now: float | None = None) -> float:
        """Samples per second that entered the queue since the source's first sample."""
        counts = self.counts[source]
        if counts.first_arrival is None:
            return 0.0
        elapsed = (now or time.monotonic()) - counts.first_arrival
        return counts.samples / elapsed if elapsed > 0 else 0.0
