"""Windows over a sequence of per-frame features: which samples close a window, and the ring buffer
that holds the last T features. Shared by the timeline of a file and by live streams.

Sample k is taken at k/F seconds; every S samples the newest T features form a window. A split
pair's features are embeddings, so each frame is embedded once however many windows it is in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from runtime.decode.sampling import REFERENCE_SECONDS  # the reference rate: T frames over 10 s
from runtime.results import Prediction, label_for, softmax


@dataclass(frozen=True)
class TimelineOptions:
    """T embeddings per window, a window every S samples, samples at F per second."""

    window: int
    stride: int
    fps: float
    batch_size: int = 8
    topk: int = 5

    @classmethod
    def resolve(cls, window: int, stride: int | None = None, fps: float | None = None, **rest: Any) -> TimelineOptions:
        """Defaults: S = T/4 (at least 1), F = T/10 per second (the rate the model was evaluated at)."""
        return cls(window, stride or max(1, window // 4), fps or window / REFERENCE_SECONDS, **rest)

    def wanted(self, index: int) -> bool:
        """Whether sample `index` is in some window (not in a gap left by a stride above the window)."""
        return index % self.stride < self.window

    def closes_window(self, index: int) -> bool:
        """Whether sample `index` is the last of a regular window."""
        start = index - self.window + 1
        return start >= 0 and start % self.stride == 0

    def span(self, start: int, count: int) -> tuple[float, float]:
        """(start, end) seconds of `count` samples from sample `start`: each lasts 1/F."""
        return start / self.fps, (start + count) / self.fps


class Ring:
    """The last `size` per-frame features, oldest first on read."""

    def __init__(self, size: int):
        self.size = size
        self._data: NDArray[Any] | None = None
        self._count = 0

    def push(self, feature: NDArray[Any]) -> None:
        if self._data is None:
            self._data = np.empty((self.size, *feature.shape), dtype=feature.dtype)
        self._data[self._count % self.size] = feature
        self._count += 1

    def clear(self) -> None:
        """Forget every feature (a gap in the frames: no window may span it)."""
        self._count = 0

    def __len__(self) -> int:
        return min(self._count, self.size)

    def last(self, count: int) -> NDArray[Any]:
        """A copy of the newest `count` features in time order, (count, ...)."""
        if not 0 < count <= len(self) or self._data is None:
            raise ValueError(f"ring holds {len(self)} features, asked for {count}")
        positions = [(self._count - count + i) % self.size for i in range(count)]
        return self._data[positions]


def top_k(logits: NDArray[Any], labels: Sequence[str], k: int) -> list[Prediction]:
    """The k most probable classes of one row of logits, most probable first."""
    probabilities = softmax(logits)
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [Prediction(label_for(labels, int(i)), int(i), float(probabilities[i])) for i in order]
