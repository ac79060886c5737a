"""The pipeline's steps, plain Python: decode one video, classify a batch, write a part file.

Ray runs them (`map`, `map_batches` on an actor pool, `map_batches` tasks); tests call them
directly. None of them imports ray.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from batch import sources
from batch.output import OutputDir
from batch.schema import Decoded, ModelId, result_row, rows_to_table
from runtime import clips, contract, open_model
from runtime.batching import pad_batch
from runtime.errors import StamError
from runtime.limits import BATCH_LIMITS, Limits
from runtime.results import VideoResult

# --- decode (CPU tasks) --------------------------------------------------------------------------


def decode_video(row: dict, num_frames: int, sampling: str, limits: Limits = BATCH_LIMITS) -> dict:
    """One listing row {"path"} -> the model's input and how it was obtained.

    A video that fails still yields a row (pixels all zero, `error` set): every column keeps one
    fixed type and shape across all blocks, and the failure reaches the output as an error row.
    """
    path = row["path"]
    start = time.perf_counter()
    error = ""
    try:
        pixels, notes = load_pixels(path, num_frames, sampling, limits)
    except StamError as failure:
        pixels, notes, error = empty_clip(num_frames), [], str(failure)
    except Exception as failure:  # noqa: BLE001 - one odd file must never fail a job of millions
        pixels, notes, error = empty_clip(num_frames), [], f"{path}: {type(failure).__name__}: {failure}"
    return {
        "path": path,
        "pixels": pixels,
        "frames": num_frames,
        "sampling": sampling,
        "notes": list(notes),
        "error": " ".join(error.split()),
        "decode_ms": (time.perf_counter() - start) * 1e3,
    }


def load_pixels(path: str, num_frames: int, sampling: str, limits: Limits) -> tuple[np.ndarray, list[str]]:
    """`runtime.clips.load_clip` on a local path or a URI; errors name the path as the user gave it.

    One decoder per video: Ray already runs as many decode tasks as there are CPUs, so decoding one
    video's stretches side by side would only add threads.
    """
    with sources.local_file(path) as local:
        try:
            return clips.load_clip(local, num_frames, sampling, decoders=1, limits=limits)
        except StamError as failure:
            if local == path:
                raise
            raise type(failure)(str(failure).replace(local, path)) from None


def empty_clip(num_frames: int) -> np.ndarray:
    return np.zeros((num_frames, contract.CHANNELS, contract.INPUT_SIZE, contract.INPUT_SIZE), np.float32)


# --- classify (actor pool) -----------------------------------------------------------------------


@dataclass(frozen=True)
class ClassifyOptions:
    topk: int
    with_logits: bool
    providers: Sequence[str] | None = None
    backend: str = "auto"
    precision: str = "fp32"


class Classify:
    """The model step: opens the artifact once per actor, then maps decoded batches to result rows."""

    def __init__(self, model_path: str, model_id: ModelId, options: ClassifyOptions):
        self.model = open_model(
            model_path, backend=options.backend, precision=options.precision, providers=options.providers
        )
        self.model_id = model_id
        self.options = options
        batch_range = self.model.batch_range
        self.max_batch = batch_range.max if batch_range is not None else None
        self.min_batch = batch_range.min if batch_range is not None else 1

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        decoded = [decoded_at(batch, i) for i in range(len(batch["path"]))]
        ok = [i for i, item in enumerate(decoded) if item.error is None]
        results: dict[int, tuple[VideoResult, float]] = {}
        for chunk in chunks(ok, self.max_batch or max(1, len(ok))):
            results.update(self.classify(batch["pixels"], chunk, [decoded[i].path for i in chunk]))
        rows = []
        for i, item in enumerate(decoded):
            result, infer_ms = results.get(i, (None, None))
            rows.append(result_row(item, result, self.model_id, infer_ms, self.options.with_logits))
        return rows_to_table(rows, self.options.with_logits)

    def classify(self, pixels: np.ndarray, rows: list[int], paths: list[str]) -> dict[int, tuple[VideoResult, float]]:
        """Run one model batch; each video's infer_ms is its share of the batch's wall time."""
        start = time.perf_counter()
        logits = self.model.run(pad_batch([pixels[i] for i in rows], self.min_batch))
        share_ms = (time.perf_counter() - start) * 1e3 / len(rows)
        return {
            row: (VideoResult.from_logits(path, logits[k], self.model.labels, self.options.topk), share_ms)
            for k, (row, path) in enumerate(zip(rows, paths))
        }


def decoded_at(batch: dict[str, np.ndarray], i: int) -> Decoded:
    error = str(batch["error"][i])
    return Decoded(
        path=str(batch["path"][i]),
        frames=int(batch["frames"][i]),
        sampling=str(batch["sampling"][i]),
        notes=[str(note) for note in batch["notes"][i]],
        decode_ms=float(batch["decode_ms"][i]),
        error=error or None,
    )


def chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


# --- write (tasks) -------------------------------------------------------------------------------


def write_part(table: pa.Table, out: str) -> pa.Table:
    """Write one part file of result rows; returns what the driver counts: part, videos, failures."""
    name = OutputDir(out).write_part(table)
    failures = table.num_rows - table.column("error").null_count
    return pa.table({"part": [name], "videos": [table.num_rows], "failures": [failures]})
