"""The timeline of a long video: a label per time window, each frame embedded once.

Frames at times k/F are streamed (runtime.decode.stream), preprocessed and embedded in chunks by the
frames part; their embeddings go into a ring buffer of the last T; every S samples the last T
embeddings form a window, and windows go through the temporal part in batches. With a whole-model
artifact the ring holds preprocessed frames and each window runs the whole network (no cache).
Decoding and preprocessing run on a worker thread, ahead of the model by a bounded queue.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from runtime.batching import pad_batch
from runtime.decode import FrameStream, TimedFrame
from runtime.errors import VideoError
from runtime.limits import CLI_LIMITS, Limits
from runtime.preprocess import preprocess
from runtime.progress import progress_bar
from runtime.results import Prediction
from runtime.split import WindowModel
from runtime.windows import Ring, TimelineOptions, top_k

CHUNK_FRAMES = 8  # frames per embedding call: enough to amortise a call, little latency
QUEUE_CHUNKS = 4  # preprocessed chunks waiting for the model (bounds memory)


@dataclass
class WindowResult:
    """One window: its time span and top-k predictions."""

    path: str
    start: float
    end: float
    predictions: list[Prediction]

    @property
    def top1(self) -> Prediction:
        return self.predictions[0]

    def to_json(self) -> str:
        return json.dumps(
            {
                "path": self.path,
                "start": round(self.start, 3),
                "end": round(self.end, 3),
                "topk": [vars(p) for p in self.predictions],
            }
        )

    def row(self) -> str:
        labels = ", ".join(f"{p.label} ({p.probability:.3f})" for p in self.predictions)
        return f"{self.start:>9.2f} {self.end:>9.2f}  {labels}"


TABLE_HEADER = f"{'start s':>9} {'end s':>9}  top-k (probability)"


@dataclass
class TimelineStats:
    """How much work the cache saved: embeddings computed against embeddings the windows used."""

    samples: int = 0  # sample times the video covered
    embedded: int = 0  # frames run through the frames part (or the whole model's spatial part)
    windows: int = 0
    used: int = 0  # window slots filled: T per window

    @property
    def hit_rate(self) -> float:
        """Share of window slots served from the ring buffer instead of a fresh embedding."""
        return 1.0 - self.embedded / self.used if self.used else 0.0


@dataclass
class Run:
    """A longest stretch of consecutive windows with one top-1 label."""

    label: str
    start: float
    end: float
    windows: int

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "start": round(self.start, 3), "end": round(self.end, 3), "windows": self.windows}


def longest_runs(results: Sequence[WindowResult]) -> list[Run]:
    """For each top-1 label, its longest run of consecutive windows; longest first."""
    best: dict[str, Run] = {}
    current: Run | None = None
    for result in results:
        label = result.top1.label
        if current is not None and current.label == label:
            current = Run(label, current.start, result.end, current.windows + 1)
        else:
            current = Run(label, result.start, result.end, 1)
        if label not in best or current.windows > best[label].windows:
            best[label] = current
    return sorted(best.values(), key=lambda run: (-(run.end - run.start), run.start))


def render_runs(runs: Sequence[Run]) -> str:
    lines = ["longest run of each top-1 label:"]
    width = max(len(run.label) for run in runs)
    lines += [
        f"  {run.label:<{width}}  {run.start:>9.2f} - {run.end:<9.2f} ({run.end - run.start:.2f} s, "
        f"{run.windows} windows)"
        for run in runs
    ]
    return "\n".join(lines)


class Timeline:
    """Windows of one video, produced as the video streams; `notes` and `stats` fill in as it goes."""

    def __init__(
        self,
        model: WindowModel,
        path: str,
        options: TimelineOptions,
        progress: bool = False,
        limits: Limits = CLI_LIMITS,
    ):
        self.model, self.path, self.options = model, path, options
        self.progress = progress
        self.notes: list[str] = []
        self.stats = TimelineStats()
        self._stream = FrameStream(path, options.fps, wanted=options.wanted, limits=limits)
        self._pending: list[tuple[int, int, NDArray[np.float32]]] = []  # (first sample, samples, features (T, ...))
        self._last_start: int | None = None

    def __iter__(self) -> Iterator[WindowResult]:
        options, ring = self.options, Ring(self.options.window)
        if options.stride > options.window:
            self.notes.append(
                f"stride {options.stride} exceeds the window {options.window}: "
                f"{options.stride - options.window} samples between windows are skipped"
            )
        for indices, pixels in self._chunks():
            features = self.model.embed(pixels)
            self.stats.embedded += len(indices) if self.model.embeds_once else 0
            for index, feature in zip(indices, features):
                ring.push(feature)
                if options.closes_window(index):
                    yield from self._add(index - options.window + 1, ring.last(options.window))
        self.stats.samples = self._stream.count
        self.notes.extend(self._stream.notes)
        yield from self._add_last(ring)
        yield from self._flush()

    def _add(self, start: int, features: NDArray[np.float32], count: int | None = None) -> Iterator[WindowResult]:
        self._pending.append((start, count or len(features), features))
        self._last_start = start
        if len(self._pending) >= self.options.batch_size:
            yield from self._flush()

    def _add_last(self, ring: Ring) -> Iterator[WindowResult]:
        """A video shorter than one window gets one window over all it has (frames repeated to T); a
        tail after the last regular window (less than one stride) gets a window ending at the last sample."""
        window, samples = self.options.window, self.stats.samples
        if self._last_start is None:
            self.notes.append(
                f"shorter than one window ({samples} of {window} samples at {self.options.fps:g} "
                f"per second): one window over the whole video, frames repeated to {window}"
            )
            repeated = ring.last(samples)[[i * samples // window for i in range(window)]]
            yield from self._add(0, repeated, count=samples)
        elif self.options.stride <= window and self._last_start + window < samples:
            yield from self._add(samples - window, ring.last(window))

    def _flush(self) -> Iterator[WindowResult]:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        minimum = self.model.batch_range.min if self.model.batch_range is not None else 1
        logits = self.model.classify(pad_batch([features for _, _, features in batch], minimum))
        for (start, count, _), row in zip(batch, logits):
            self.stats.windows += 1
            self.stats.used += self.options.window
            yield WindowResult(
                self.path, *self.options.span(start, count), top_k(row, self.model.labels, self.options.topk)
            )
        if not self.model.embeds_once:
            self.stats.embedded += len(batch) * self.options.window  # the whole model re-embeds every frame

    def _chunks(self) -> Iterator[tuple[list[int], NDArray[np.float32]]]:
        """(sample indices, preprocessed frames (n, 3, 224, 224)) from a worker thread."""
        total = self._expected_samples() if self.progress else None
        return background(_preprocessed(self._stream, CHUNK_FRAMES, total), QUEUE_CHUNKS)

    def _expected_samples(self) -> int | None:
        duration = self._stream.duration()
        return round(duration * self.options.fps) if duration else None

    def __repr__(self) -> str:
        return f"Timeline({self.path!r}, {self.options})"


def _preprocessed(
    frames: Iterable[TimedFrame], size: int, total: int | None
) -> Iterator[tuple[list[int], NDArray[np.float32]]]:
    """Chunks of `size` frames, preprocessed; a progress bar (stderr, terminals only) when `total` is set."""
    bar = progress_bar(total, unit="frame", enabled=total is not None)
    chunk: list[TimedFrame] = []
    with bar:
        for frame in frames:
            chunk.append(frame)
            bar.update()
            if len(chunk) == size:
                yield _stacked(chunk)
                chunk = []
        if chunk:
            yield _stacked(chunk)


def _stacked(chunk: list[TimedFrame]) -> tuple[list[int], NDArray[np.float32]]:
    return [f.index for f in chunk], np.concatenate([preprocess(f.image[None]) for f in chunk])


_DONE = object()
Item = TypeVar("Item")
Slot = tuple[Any, BaseException | None]  # (an item or _DONE, the worker's error)


def background(items: Iterator[Item], depth: int) -> Iterator[Item]:
    """Run `items` on a worker thread, `depth` ahead; its exceptions re-raise here, in order.

    Stopping early (an error in the consumer) tells the worker to stop at its next item.
    """
    slots: queue.Queue[Slot] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for item in items:
                if not _put(slots, (item, None), stop):
                    return
            _put(slots, (_DONE, None), stop)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, which re-raises it
            _put(slots, (_DONE, error), stop)

    worker = threading.Thread(target=work, name="timeline-decode", daemon=True)
    worker.start()
    try:
        while True:
            item, error = slots.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        worker.join()


def _put(slots: queue.Queue[Slot], entry: Slot, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            slots.put(entry, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def print_timeline(timeline: Timeline, as_json: bool) -> None:
    """Rows as they come (one JSON line per window with --json), notes on stderr, then the runs."""
    results: list[WindowResult] = []
    if not as_json:
        print(f"{timeline.path}\n{TABLE_HEADER}", flush=True)
    for result in timeline:
        results.append(result)
        print(result.to_json() if as_json else result.row(), flush=True)
    for note in timeline.notes:
        print(f"warning: {timeline.path}: {note}", file=sys.stderr)
    runs = longest_runs(results)
    if as_json:
        print(json.dumps({"path": timeline.path, "runs": [run.to_dict() for run in runs]}))
    else:
        print(render_runs(runs))


def run_timelines(
    model: WindowModel,
    paths: Sequence[str],
    options: TimelineOptions,
    as_json: bool,
    progress: bool = True,
    limits: Limits = CLI_LIMITS,
) -> int:
    """Each video's timeline in turn; a bad video is one error line and the others still run."""
    model.check_window(options.window)
    failed = 0
    for path in paths:
        try:
            print_timeline(Timeline(model, path, options, progress=progress, limits=limits), as_json)
        except VideoError as error:
            failed += 1
            print(f"error: {error}", file=sys.stderr)
    if failed:
        print(f"{failed} of {len(paths)} videos failed", file=sys.stderr)
    return 1 if failed else 0


def run_cli(args: argparse.Namespace, paths: Sequence[str]) -> int:
    """`python -m runtime.infer ... --timeline`: the arguments from runtime.infer's parser."""
    from runtime.options import limits_from
    from runtime.split import open_window_model

    with open_window_model(args.model, providers=args.providers) as model:
        window = args.window or args.frames or model.frames_trained
        batch_size = args.batch_size
        if model.batch_range is not None:  # an engine profile bounds the windows per call
            batch_size = max(model.batch_range.min, min(batch_size, model.batch_range.max))
        options = TimelineOptions.resolve(window, args.stride, args.fps, batch_size=batch_size, topk=args.topk)
        return run_timelines(model, paths, options, args.json, limits=limits_from(args))


__all__ = ["Timeline", "TimelineOptions", "WindowResult", "longest_runs", "run_cli"]
