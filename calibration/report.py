"""Accuracy report of a quantized model against its fp32 source on held-out clips.

Both run through the runtime (ONNX Runtime on the CPU here), on the same preprocessed clips, one
clip per call; a quantized frames part runs with its temporal partner, found beside it. Agreement and logit differences need no labels; top-1 accuracy is added when the
clips come with their true class indices.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from runtime.errors import StamError
from runtime.split import WindowModel, open_window_model


@dataclass
class AccuracyReport:
    """fp32 vs quantized on the same clips; accuracies are None without labels."""

    clips: int
    top1_agreement: float
    max_abs_diff: float
    mean_abs_diff: float
    fp32_top1: float | None = None
    quantized_top1: float | None = None

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)

    def table(self, precision: str = "quantized") -> str:
        rows = [("clips", f"{self.clips}"), ("top-1 agreement", f"{self.top1_agreement:.2%}")]
        if self.fp32_top1 is not None and self.quantized_top1 is not None:
            rows += [("fp32 top-1", f"{self.fp32_top1:.2%}"), (f"{precision} top-1", f"{self.quantized_top1:.2%}")]
        rows += [("max |logit diff|", f"{self.max_abs_diff:.4g}"), ("mean |logit diff|", f"{self.mean_abs_diff:.4g}")]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def summarize(fp32: np.ndarray, quantized: np.ndarray, labels: Sequence[int] | None = None) -> AccuracyReport:
    """The report of two (N, C) logit arrays (and, optionally, the N true classes)."""
    diff = np.abs(fp32.astype(np.float64) - quantized.astype(np.float64))
    report = AccuracyReport(
        clips=len(fp32),
        top1_agreement=float(np.mean(fp32.argmax(-1) == quantized.argmax(-1))),
        max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()),
    )
    if labels is not None:
        truth = np.asarray(labels)
        report.fp32_top1 = float(np.mean(fp32.argmax(-1) == truth))
        report.quantized_top1 = float(np.mean(quantized.argmax(-1) == truth))
    return report


def folder_labels(videos: Sequence[Path], labels: Sequence[str]) -> list[int] | None:
    """True class indices when every video sits in a folder named after one of the model's labels."""
    index = {label: i for i, label in enumerate(labels)}
    if not videos or any(video.parent.name not in index for video in videos):
        return None
    return [index[video.parent.name] for video in videos]


def classify_clip(model: WindowModel, clip: np.ndarray) -> np.ndarray:
    """Logits (1, C) of one (T, 3, 224, 224) clip, from a whole model or a split pair alike."""
    return model.classify(model.embed(clip)[None])


def compare_models(
    fp32_path: str | Path,
    quantized_path: str | Path,
    clips: Iterable[np.ndarray],
    labels: Sequence[int] | None = None,
) -> AccuracyReport:
    """Run both models on every (T, 3, 224, 224) clip and summarize their logits."""
    with open_window_model(fp32_path) as reference, open_window_model(quantized_path) as candidate:
        pairs = [(classify_clip(reference, clip), classify_clip(candidate, clip)) for clip in clips]
    if not pairs:
        raise StamError("no held-out clips to compare the models on")
    fp32 = np.concatenate([pair[0] for pair in pairs])
    quantized = np.concatenate([pair[1] for pair in pairs])
    return summarize(fp32, quantized, labels)
