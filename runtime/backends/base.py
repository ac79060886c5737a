"""The `Model` interface every runtime backend implements, and the input checks they share."""

from __future__ import annotations

import abc
import warnings
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from runtime import contract
from runtime.contract import DimRange, describe_range
from runtime.errors import ShapeError

ITEM_SHAPE = (contract.CHANNELS, contract.INPUT_SIZE, contract.INPUT_SIZE)
_WARNED_RANDOM: set[str] = set()  # artifacts already warned about in this process


class RandomWeightsWarning(UserWarning):
    """The artifact was exported without a checkpoint: its predictions mean nothing."""


def warn_if_random(metadata: Mapping[str, str], path: str) -> None:
    """Once per artifact and process: a demo export must not pass for a trained model."""
    if metadata.get(contract.META_RANDOM_WEIGHTS) == "1" and path not in _WARNED_RANDOM:
        _WARNED_RANDOM.add(path)
        warnings.warn(
            f"{path} was exported with random weights (no checkpoint): its labels are meaningless",
            RandomWeightsWarning,
            stacklevel=3,
        )


def check_input(frames: NDArray[Any]) -> tuple[int, int]:
    """Validate a (B, T, 3, 224, 224) float32 array before any backend work; returns (B, T)."""
    if not isinstance(frames, np.ndarray):
        raise ShapeError(f"frames must be a numpy array, got {type(frames).__name__}")
    if frames.dtype != np.float32:
        raise ShapeError(f"frames must be float32, got {frames.dtype}")
    if frames.ndim != 5 or frames.shape[2:] != ITEM_SHAPE:
        expected = ", ".join(map(str, ITEM_SHAPE))
        raise ShapeError(f"frames must have shape (batch, frames, {expected}), got {tuple(frames.shape)}")
    return frames.shape[0], frames.shape[1]


class Model(abc.ABC):
    """A loaded artifact: knows its input ranges, labels and metadata, and maps frames to logits.

    Subclasses implement `_run` (inputs already validated) and `close`, and name their `backend`
    (what `--json` reports as having run).
    """

    backend = "unknown"

    def __init__(
        self,
        path: str,
        metadata: Mapping[str, str],
        batch_range: DimRange | None,
        frames_range: DimRange | None,
    ):
        contract.check_metadata(metadata, path)
        warn_if_random(metadata, path)
        self.path = path
        self.metadata = dict(metadata)
        self.batch_range = batch_range
        self.frames_range = frames_range
        self.labels = contract.labels_from_metadata(self.metadata)

    @property
    def precision(self) -> str:
        return self.metadata[contract.META_PRECISION]

    @property
    def frames_trained(self) -> int:
        return int(self.metadata[contract.META_FRAMES_TRAINED])

    @property
    def name(self) -> str:
        return self.metadata[contract.META_MODEL]

    def check_request(self, batch: int, frames: int) -> None:
        """Raise ShapeError when (batch, frames) is outside what this model accepts."""
        contract.check_range("batch", batch, self.batch_range)
        contract.check_range("frames", frames, self.frames_range)

    def run(self, frames: NDArray[np.float32]) -> NDArray[np.float32]:
        """float32 frames (B, T, 3, 224, 224) in [0, 1] -> float32 logits (B, C)."""
        self.check_request(*check_input(frames))
        return self._run(np.ascontiguousarray(frames))

    @abc.abstractmethod
    def _run(self, frames: NDArray[np.float32]) -> NDArray[np.float32]: ...

    @abc.abstractmethod
    def close(self) -> None:
        """Release the session or engine and every buffer it holds; safe to call twice."""

    def __enter__(self) -> Model:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.path!r}, model={self.name}, precision={self.precision}, "
            f"batch={describe_range(self.batch_range)}, frames={describe_range(self.frames_range)})"
        )
