"""Per-video classification results: softmax and top-k, and their table / JSON-lines renderings."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray


def softmax(logits: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
    """Numerically stable softmax over the last axis, computed in float64."""
    shifted = np.asarray(logits, dtype=np.float64)
    shifted = shifted - shifted.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    probabilities: NDArray[np.float64] = exp / exp.sum(axis=-1, keepdims=True)
    return probabilities


def label_for(labels: Sequence[str], index: int) -> str:
    """The class name, or `#index` when the artifact carries no labels."""
    return labels[index] if index < len(labels) and labels[index] else f"#{index}"


@dataclass(frozen=True)
class Prediction:
    """One of a video's top-k classes: its label, its index in the logits, and its softmax probability."""

    label: str
    index: int
    probability: float


@dataclass
class VideoResult:
    """One video: its top-k predictions (and logits), or the error that stopped it, and its sampling notes."""

    path: str
    predictions: list[Prediction] = field(default_factory=list)
    logits: list[float] | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)  # e.g. frames repeated in a short video

    @classmethod
    def from_logits(cls, path: str, logits: NDArray[np.floating[Any]], labels: Sequence[str], topk: int) -> VideoResult:
        probabilities = softmax(logits)
        order = np.argsort(-probabilities, kind="stable")[:topk]
        predictions = [Prediction(label_for(labels, int(i)), int(i), float(probabilities[i])) for i in order]
        return cls(path, predictions, logits=[float(x) for x in logits])

    def to_json(self, with_logits: bool = False, backend: str | None = None) -> str:
        """One JSON line; `backend` (which one ran, e.g. "openvino") follows the path when given."""
        head = {"path": self.path, **({"backend": backend} if backend else {})}
        if self.error is not None:
            return json.dumps({**head, "error": self.error})
        data: dict[str, Any] = {**head, "topk": [vars(p) for p in self.predictions], "notes": self.notes}
        if with_logits:
            data["logits"] = self.logits
        return json.dumps(data)


def render_table(results: Sequence[VideoResult]) -> str:
    """One row per prediction (rank 1 carries the video's path), one row per failed video, then its notes."""
    header = ("video", "#", "prob", "label")
    rows: list[tuple[str, ...]] = []
    for result in results:
        if result.error is not None:
            rows.append((result.path, "-", "-", f"error: {result.error}"))
        for rank, p in enumerate(result.predictions, start=1):
            rows.append((result.path if rank == 1 else "", str(rank), f"{p.probability:.4f}", p.label))
        rows.extend(("", "", "", f"note: {note}") for note in result.notes)
    width = max(len(row[0]) for row in [header, *rows])
    lines = [f"{r[0]:<{width}}  {r[1]:>2}  {r[2]:>6}  {r[3]}".rstrip() for r in [header, *rows]]
    return "\n".join(lines)
