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
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from runtime import Model, load_clip, run_clips

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
    load = partial(load_clip, num_frames=frames, mode=mode, on_stage=totals.add)
    started = time.perf_counter()
    for outcome in run_clips(model, videos, load, batch_size=batch_size, workers=workers, on_stage=totals.add):
        if outcome.error is not None:
            raise outcome.error
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


def render_table(rows: Sequence[dict[str, Any]], caption: str) -> str:
    """One line per worker count: throughput, per-video stage costs and how busy the model was."""
    header = ["workers", "batch", "videos/s", *(f"{stage} ms/video" for stage in STAGES), "inference busy"]
    lines = [
        [
            str(r["workers"]),
            str(r["batch_size"]),
            f"{r['videos_per_s']:.2f}",
            *(f"{r['per_video_ms'][stage]:.1f}" for stage in STAGES),
            f"{r['inference_busy']:.0%}",
        ]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    text = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in [header, *lines]]
    return "\n".join([text[0], "-" * len(text[0]), *text[1:], caption])
