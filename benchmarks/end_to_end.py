"""End-to-end videos/s of the runtime's path: N decode workers feeding one model, and where the time goes.

The loop is the one `runtime.infer` runs (ordered prefetch on threads, batches, `Model.run`), timed
per stage: decode and preprocess are summed over the worker threads (CPU-side work, overlapping),
copy is the batch assembly on the host, inference is `Model.run` (which includes the host-device
copies on TensorRT). `inference_busy` is inference time over wall time: near 1 means the model is
the bottleneck, well below 1 means decoding cannot keep it fed.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from runtime.backends.base import Model
from runtime.batching import pad_batch, prefetch
from runtime.errors import StamError
from runtime.preprocess import preprocess
from runtime.video import read_clip

STAGES = ("decode", "preprocess", "copy", "inference")


class StageTotals:
    """Seconds per stage, added to from several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds: dict[str, float] = defaultdict(float)

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] += seconds


def run_end_to_end(
    model: Model, videos: Sequence[Path], frames: int, batch_size: int, workers: int, mode: str = "uniform"
) -> dict[str, Any]:
    """Classify `videos` once through the runtime's loop; timings as a JSON-ready dict."""
    totals = StageTotals()
    batch: list[np.ndarray] = []
    started = time.perf_counter()
    window = 2 * batch_size + workers
    for path, clip in prefetch(lambda p: _load(p, frames, mode, totals), videos, workers, window):
        if isinstance(clip, StamError):
            raise clip
        batch.append(clip)
        if len(batch) == batch_size:
            _infer(model, batch, totals)
            batch = []
    if batch:
        _infer(model, batch, totals)
    wall = time.perf_counter() - started
    count = len(videos)
    return {
        "workers": workers,
        "batch_size": batch_size,
        "videos": count,
        "wall_s": wall,
        "videos_per_s": count / wall,
        "per_video_ms": {stage: 1e3 * totals.seconds[stage] / count for stage in STAGES},
        "inference_busy": totals.seconds["inference"] / wall,
    }


def _load(path: Path, frames: int, mode: str, totals: StageTotals) -> np.ndarray:
    start = time.perf_counter()
    clip = read_clip(path, frames, mode)
    decoded = time.perf_counter()
    pixels = preprocess(clip.frames)
    totals.add("decode", decoded - start)
    totals.add("preprocess", time.perf_counter() - decoded)
    return pixels


def _infer(model: Model, batch: list[np.ndarray], totals: StageTotals) -> None:
    start = time.perf_counter()
    inputs = pad_batch(batch, model.batch_range.min if model.batch_range else 1)
    assembled = time.perf_counter()
    model.run(inputs)
    totals.add("copy", assembled - start)
    totals.add("inference", time.perf_counter() - assembled)


def render_table(rows: Sequence[dict[str, Any]], caption: str) -> str:
    """One line per worker count: throughput, per-video stage costs and how busy the model was."""
    header = ["workers", "batch", "videos/s", *(f"{stage} ms/video" for stage in STAGES), "inference busy"]
    lines = [[str(r["workers"]), str(r["batch_size"]), f"{r['videos_per_s']:.2f}",
              *(f"{r['per_video_ms'][stage]:.1f}" for stage in STAGES), f"{r['inference_busy']:.0%}"]
             for r in rows]
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    text = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in [header, *lines]]
    return "\n".join([text[0], "-" * len(text[0]), *text[1:], caption])
