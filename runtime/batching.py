"""Overlap of decoding with inference: ordered prefetch on a thread pool, and batch assembly.

PyAV and PIL release the GIL while decoding and resizing, and ONNX Runtime / TensorRT release it
while running, so worker threads decode the next videos while the main thread runs the model.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from runtime.errors import StamError, detached

Item = TypeVar("Item")
Result = TypeVar("Result")


def prefetch(
    load: Callable[[Item], Result], items: Iterable[Item], workers: int, window: int
) -> Iterator[tuple[Item, Result | StamError]]:
    """Yield (item, load(item)) in input order, keeping up to `window` loads in flight on `workers` threads.

    A load that raises StamError yields the error in place of its result, so one bad input never
    stops the others; any other exception is a bug and propagates. The window bounds memory.
    """
    pending: deque[tuple[Item, Future[Result]]] = deque()
    source = iter(items)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode") as pool:
        try:
            for item in source:
                pending.append((item, pool.submit(load, item)))
                yield from _drain(pending, keep=max(1, window) - 1)
            yield from _drain(pending, keep=0)
        finally:
            for _, future in pending:
                future.cancel()


def _drain(pending: deque[tuple[Item, Future[Result]]], keep: int) -> Iterator[tuple[Item, Result | StamError]]:
    """Wait for the oldest loads, in order, until at most `keep` remain in flight."""
    while len(pending) > keep:
        item, future = pending.popleft()
        try:
            result: Result | StamError = future.result()
        except StamError as error:
            result = detached(error)
        yield item, result


def pad_batch(arrays: Sequence[NDArray[Any]], min_batch: int) -> NDArray[Any]:
    """Stack per-video arrays into one batch, repeating the last one up to `min_batch`.

    An engine whose profile starts above 1 still classifies a short final batch; the caller keeps
    only the first len(arrays) outputs.
    """
    padding = [arrays[-1]] * max(0, min_batch - len(arrays))
    return np.stack([*arrays, *padding])


def in_order(indexed: Iterable[tuple[int, Result]]) -> Iterator[Result]:
    """Re-sequence (index, result) pairs that finish out of order (indices 0, 1, 2, ... each once)."""
    waiting: dict[int, Result] = {}
    next_index = 0
    for index, result in indexed:
        waiting[index] = result
        while next_index in waiting:
            yield waiting.pop(next_index)
            next_index += 1
