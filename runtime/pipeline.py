"""The one decode -> batch -> run loop: clips decoded on worker threads feed full batches to a model.

`runtime.infer`, the accuracy tool, the end-to-end benchmark and the calibration gates all classify
through `run_clips`, so the numbers they report are those of one code path. Results come back in
input order; a clip that fails to load is reported in its place and never stops the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from time import perf_counter
from typing import Generic, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from runtime.batching import in_order, pad_batch, prefetch
from runtime.contract import DimRange
from runtime.errors import StamError

Item = TypeVar("Item")
# Called with a stage name ("decode", "preprocess", "copy", "inference") and its seconds; may be
# called from worker threads, so it must be thread-safe.
StageHook = Callable[[str, float], None]


class Runnable(Protocol):
    """What the loop needs of a model: `runtime.backends.Model` and the accuracy tool's torch wrapper fit."""

    def run(self, frames: NDArray[np.float32]) -> NDArray[np.float32]: ...


@dataclass
class Outcome(Generic[Item]):
    """One input's result: logits (C,) or the error that stopped it, and its sampling notes."""

    item: Item
    logits: NDArray[np.float32] | None = None
    notes: list[str] = field(default_factory=list)
    error: StamError | None = None


Loaded = tuple[NDArray[np.float32], list[str]]  # (T, 3, 224, 224) float32 pixels and sampling notes


def read_ahead(batch_size: int, workers: int) -> int:
    """Clips decoded ahead of the model: two batches plus one per worker keeps both sides busy."""
    return 2 * batch_size + workers


def min_batch(model: Runnable) -> int:
    """An engine whose profile starts above batch 1 gets short batches padded up to its minimum."""
    batch_range: DimRange | None = getattr(model, "batch_range", None)
    return batch_range.min if batch_range is not None else 1


def run_clips(
    model: Runnable,
    items: Iterable[Item],
    load: Callable[[Item], Loaded],
    *,
    batch_size: int,
    workers: int,
    prepare: Callable[[NDArray[np.float32]], NDArray[np.float32]] | None = None,
    on_stage: StageHook | None = None,
) -> Iterator[Outcome[Item]]:
    """Outcomes in input order; loading of later items overlaps inference of earlier ones.

    `prepare` changes each clip before batching (the accuracy tool's reversed-order diagnostic);
    `on_stage` receives the host copy and inference time of every batch.
    """
    return in_order(_run_unordered(model, items, load, batch_size, workers, prepare, on_stage))


def _run_unordered(
    model: Runnable,
    items: Iterable[Item],
    load: Callable[[Item], Loaded],
    batch_size: int,
    workers: int,
    prepare: Callable[[NDArray[np.float32]], NDArray[np.float32]] | None,
    on_stage: StageHook | None,
) -> Iterator[tuple[int, Outcome[Item]]]:
    pending: list[tuple[int, Outcome[Item], NDArray[np.float32]]] = []
    indexed = enumerate(items)
    loaded_items = prefetch(lambda pair: load(pair[1]), indexed, workers, read_ahead(batch_size, workers))
    for (index, item), loaded in loaded_items:
        if isinstance(loaded, StamError):
            yield index, Outcome(item, error=loaded)
            continue
        pixels, notes = loaded
        pending.append((index, Outcome(item, notes=list(notes)), prepare(pixels) if prepare else pixels))
        if len(pending) == batch_size:
            yield from _run_batch(model, pending, on_stage)
            pending = []
    if pending:
        yield from _run_batch(model, pending, on_stage)


def _run_batch(
    model: Runnable, pending: Sequence[tuple[int, Outcome[Item], NDArray[np.float32]]], on_stage: StageHook | None
) -> Iterator[tuple[int, Outcome[Item]]]:
    started = perf_counter()
    inputs = np.ascontiguousarray(pad_batch([pixels for _, _, pixels in pending], min_batch(model)))
    assembled = perf_counter()
    logits = model.run(inputs)
    if on_stage is not None:
        on_stage("copy", assembled - started)
        on_stage("inference", perf_counter() - assembled)
    for row, (index, outcome, _) in enumerate(pending):
        outcome.logits = logits[row]
        yield index, outcome


def run_in_memory(model: Runnable, clips: Sequence[NDArray[np.float32]], batch_size: int) -> NDArray[np.float32]:
    """(N, C) logits of clips already decoded and preprocessed, through the same batching."""
    outcomes = run_clips(model, clips, lambda clip: (clip, []), batch_size=batch_size, workers=1)
    # clips already in memory cannot fail to load, so every outcome carries logits
    logits = [outcome.logits for outcome in outcomes if outcome.logits is not None]
    return np.stack(logits) if logits else np.zeros((0, 0), dtype=np.float32)
