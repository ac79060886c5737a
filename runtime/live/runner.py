"""The live runner: many sources at once, one model. Readers (one thread per source) sample and preprocess;
this loop embeds the samples of all sources in one batch, keeps each source's ring buffer, and classifies
the windows that are due, again batched across sources. It yields window and event records as they come.

```
sources ─► reader threads (sample at F, preprocess) ─► hub (bounded queue per source, drop policy)
        ─► frames part, one batch across sources ─► per-source rings ─► due windows, one batch ─► records
```
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from numpy.typing import NDArray

from runtime.batching import pad_batch
from runtime.errors import VideoError
from runtime.limits import CLI_LIMITS, Limits
from runtime.live.hub import Hub, Sample
from runtime.live.reader import ReaderSettings, SourceReader
from runtime.live.records import EventRecord, WindowRecord
from runtime.live.sources import Source, check_unique
from runtime.split import WindowModel
from runtime.windows import Ring, TimelineOptions, top_k

POLL_SECONDS = 0.2  # how often the loop looks at stops and finished readers when nothing arrives
JOIN_SECONDS = 2.0  # how long a stop waits for reader threads blocked in a read (they are daemons)
# Latency histogram buckets in seconds (Prometheus `le` bounds).
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


# Samples a source may queue, in windows: two absorb the burst of one HLS segment (several seconds of
# samples arriving at once) without a drop, and keep windows coming while the model handles a third of them.
QUEUE_WINDOWS = 2


@dataclass(frozen=True)
class LiveOptions:
    """Windows (T, S, F, batch size, top-k) and how sources are read; `queue`: samples per source (default 2T)."""

    windows: TimelineOptions
    limits: Limits = CLI_LIMITS
    stall_timeout: float = 10.0
    rtsp_transport: str = "tcp"
    realtime: bool = False
    queue: int | None = None
    max_backoff: float = 10.0

    def reader_settings(self) -> ReaderSettings:
        return ReaderSettings(
            self.windows, self.limits, self.stall_timeout, self.rtsp_transport, self.realtime, self.max_backoff
        )


@dataclass
class Histogram:
    """Cumulative counts of latencies under each bound, their sum and count (Prometheus' histogram)."""

    bounds: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    total: float = 0.0
    count: int = 0

    def observe(self, seconds: float) -> None:
        for position, bound in enumerate(self.bounds):
            if seconds <= bound:
                self.counts[position] += 1
        self.total += seconds
        self.count += 1


@dataclass
class _Track:
    """A source's side of the model loop: its ring buffer and the run it holds."""

    ring: Ring
    run: int = -1


class LiveRunner:
    """Iterate to run: records (WindowRecord, EventRecord) in the order they happen, until every source has
    ended or `stop()` was called (then the samples already read are classified and the iteration ends)."""

    def __init__(self, model: WindowModel, sources: Sequence[Source], options: LiveOptions):
        if not sources:
            raise VideoError("no source to read")
        check_unique(sources)
        model.check_window(options.windows.window)
        self.model, self.sources, self.options = model, list(sources), options
        self.stopping = threading.Event()
        self.hub = Hub(len(sources), options.queue or QUEUE_WINDOWS * options.windows.window)
        settings = options.reader_settings()
        self.readers = [SourceReader(i, s, settings, self.hub, self.stopping) for i, s in enumerate(sources)]
        self.latency = Histogram()
        self.model_seconds = 0.0  # wall time in the frames and temporal parts
        self.embedded = 0
        self._tracks = [_Track(Ring(options.windows.window)) for _ in sources]

    def stop(self) -> None:
        """Stop reading (safe from a signal handler or another thread); the iteration then drains and ends."""
        self.stopping.set()
        self.hub.wake()

    def __iter__(self) -> Iterator[WindowRecord | EventRecord]:
        for reader in self.readers:
            reader.start()
        try:
            while True:
                events, samples = self.hub.take(self._embed_batch(), POLL_SECONDS)
                yield from events
                if samples:
                    yield from self._process(samples)
                    continue
                if not events:
                    self._check_some_opened()
                    if (self.stopping.is_set() or not any(r.is_alive() for r in self.readers)) and self.hub.empty():
                        return
        finally:
            self.stopping.set()
            for reader in self.readers:
                reader.join(JOIN_SECONDS)

    def decode_seconds(self) -> float:
        """CPU seconds the reader threads spent (reading, decoding, converting, preprocessing)."""
        return sum(reader.decode_seconds for reader in self.readers)

    def _check_some_opened(self) -> None:
        """No source that ever opens is an error (exit 2), once every source has had its first attempt."""
        if all(r.attempted.is_set() for r in self.readers) and not any(r.opened.is_set() for r in self.readers):
            reasons = "; ".join(f"{r.source.name}: {r.failure or 'no frame'}" for r in self.readers)
            raise VideoError(f"no source opened ({reasons})")

    def _embed_batch(self) -> int:
        frames_range = getattr(self.model, "frames_range", None)
        limit = self.options.windows.batch_size
        return min(limit, frames_range.max) if frames_range is not None and frames_range.max else limit

    def _process(self, samples: list[Sample]) -> Iterator[WindowRecord]:
        """Embed the samples of all sources at once, push each into its source's ring, classify what is due."""
        started = time.perf_counter()
        frames_range = getattr(self.model, "frames_range", None)
        minimum = frames_range.min if frames_range is not None else 1
        features = self.model.embed(pad_batch([s.pixels for s in samples], minimum))[: len(samples)]
        self.model_seconds += time.perf_counter() - started
        self.embedded += len(samples)
        windows = self.options.windows
        due: list[tuple[Sample, NDArray[Any]]] = []
        for sample, feature in zip(samples, features):
            track = self._tracks[sample.source]
            if sample.run != track.run:  # a new run: nothing before it may share a window
                track.ring.clear()
                track.run = sample.run
            track.ring.push(feature)
            if windows.closes_window(sample.index - sample.run):
                due.append((sample, track.ring.last(windows.window)))
        for first in range(0, len(due), windows.batch_size):
            yield from self._classify(due[first : first + windows.batch_size])

    def _classify(self, due: list[tuple[Sample, NDArray[Any]]]) -> Iterator[WindowRecord]:
        windows = self.options.windows
        started = time.perf_counter()
        minimum = self.model.batch_range.min if self.model.batch_range is not None else 1
        logits = self.model.classify(pad_batch([features for _, features in due], minimum))
        self.model_seconds += time.perf_counter() - started
        now = time.monotonic()
        for (sample, _), row in zip(due, logits):
            predictions = top_k(row, self.model.labels, windows.topk)
            start, end = windows.span(sample.index - windows.window + 1, windows.window)
            latency = now - sample.arrival
            self.latency.observe(latency)
            counts = self.hub.counts[sample.source]
            counts.windows += 1
            counts.last_label, counts.last_probability = predictions[0].label, predictions[0].probability
            counts.last_latency_ms = latency * 1000
            yield WindowRecord(self.sources[sample.source].name, start, end, predictions, latency * 1000)
