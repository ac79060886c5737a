"""Per-request work inside one Triton batch: each request succeeds or fails on its own.

Triton hands a model instance a list of requests. Running them as one array is what batching buys,
but one bad request must not fail the others, so requests are checked one by one, grouped by frame
count (only equal shapes concatenate), run group by group, and the logits are split back. These
functions know nothing about Triton, so the server's isolation rules are tested without a server.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray

from runtime.backends import check_input
from runtime.contract import DimRange, check_range
from runtime.errors import StamError, detached, error_line

Outcome: TypeAlias = NDArray[np.float32] | Exception  # a request's frames or logits, or why it failed
Run: TypeAlias = Callable[[NDArray[np.float32]], NDArray[np.float32]]  # frames -> logits


def check_frames(frames: NDArray[Any], allowed: DimRange) -> NDArray[np.float32]:
    """A request's (b, T, 3, 224, 224) float32 array, with T inside what the server accepts."""
    check_input(frames)
    check_range("frames", frames.shape[1], allowed)
    return frames


def one_line(error: BaseException) -> str:
    """The message a client sees: ours as is; anything unexpected named by its type, first line only."""
    if isinstance(error, StamError):
        return str(error)
    line = error_line(error)
    return line if line == type(error).__name__ else f"{type(error).__name__}: {line}"


def arrays_by_index(items: Sequence[Outcome]) -> dict[int, NDArray[np.float32]]:
    """The valid items (arrays) by their index; failures are left out."""
    return {index: item for index, item in enumerate(items) if isinstance(item, np.ndarray)}


def group_by_frames(items: Sequence[Outcome]) -> dict[int, list[int]]:
    """Indices of the valid items (arrays), by frame count (axis 1)."""
    groups: dict[int, list[int]] = {}
    for index, array in arrays_by_index(items).items():
        groups.setdefault(array.shape[1], []).append(index)
    return groups


def run_grouped(items: Sequence[Outcome], run: Run, max_batch: int) -> list[Outcome]:
    """`run` over the arrays in `items` in batches of equal frame count (at most `max_batch` rows);
    each array gets its own rows back, each failure (given, or raised by its batch) stays an exception."""
    outcomes: list[Outcome] = list(items)
    arrays = arrays_by_index(items)
    for indices in group_by_frames(items).values():
        for chunk in _chunks(indices, [arrays[i].shape[0] for i in indices], max_batch):
            _run_chunk(arrays, chunk, run, outcomes)
    return outcomes


def _chunks(indices: list[int], sizes: list[int], max_batch: int) -> list[list[int]]:
    """Consecutive runs of indices whose sizes add up to at most max_batch (a larger single item stands alone)."""
    chunks: list[list[int]] = []
    rows = max_batch + 1
    for index, size in zip(indices, sizes):
        if rows + size > max_batch:
            chunks.append([])
            rows = 0
        chunks[-1].append(index)
        rows += size
    return chunks


def _run_chunk(arrays: dict[int, NDArray[np.float32]], chunk: list[int], run: Run, outcomes: list[Outcome]) -> None:
    inputs = [arrays[i] for i in chunk]
    try:
        logits = run(np.concatenate(inputs) if len(inputs) > 1 else inputs[0])
    except Exception as error:  # a server answers every request: the failure goes to this batch's requests only
        failure = detached(error)
        for index in chunk:
            outcomes[index] = failure
        return
    start = 0
    for index, array in zip(chunk, inputs):
        outcomes[index] = logits[start : start + array.shape[0]]
        start += array.shape[0]
