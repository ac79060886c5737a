"""The Parquet schema of stam-batch's results, declared once, and rows built from the runtime's results.

Top-k and probabilities come from `runtime.results.VideoResult.from_logits`, so a row carries the
same numbers as `python -m runtime.infer --json` for the same video (probabilities as float64,
logits as the model's float32).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from runtime.results import VideoResult

PREDICTION = pa.struct([("label", pa.string()), ("index", pa.int32()), ("probability", pa.float64())])
MODEL = pa.struct([("file", pa.string()), ("sha256", pa.string())])

BASE_FIELDS = [
    pa.field("path", pa.string(), nullable=False),
    pa.field("label", pa.string()),  # top-1 label; null when the video failed
    pa.field("probability", pa.float64()),  # top-1 probability; null when the video failed
    pa.field("topk", pa.list_(PREDICTION)),  # best first; empty when the video failed
    pa.field("error", pa.string()),  # null, or the one-line reason the video failed
    pa.field("frames", pa.int32()),  # frames sampled per video (T)
    pa.field("sampling", pa.string()),  # uniform | reference
    pa.field("notes", pa.list_(pa.string())),  # why sampling differed from the mode (short, damaged video)
    pa.field("model", MODEL),  # artifact file name and the sha256 of its bytes
    pa.field("decode_ms", pa.float64()),  # decode + sample + preprocess of this video
    pa.field("infer_ms", pa.float64()),  # this video's share of its model batch's wall time
]
LOGITS_FIELD = pa.field("logits", pa.list_(pa.float32()))


def result_schema(with_logits: bool) -> pa.Schema:
    return pa.schema(BASE_FIELDS + ([LOGITS_FIELD] if with_logits else []))


@dataclass(frozen=True)
class ModelId:
    """Which artifact produced a row: its file name and the sha256 of its bytes."""

    file: str
    sha256: str

    def as_dict(self) -> dict[str, str]:
        return {"file": self.file, "sha256": self.sha256}


@dataclass(frozen=True)
class Decoded:
    """What the decode step knows of one video, whether or not it decoded."""

    path: str
    frames: int
    sampling: str
    notes: list[str]
    decode_ms: float
    error: str | None = None


def result_row(
    decoded: Decoded, result: VideoResult | None, model: ModelId, infer_ms: float | None, with_logits: bool
) -> dict[str, Any]:
    """One output row: the decode step's facts plus the model's result (None when the video failed)."""
    top = result.predictions[0] if result is not None and result.predictions else None
    row: dict[str, Any] = {
        "path": decoded.path,
        "label": top.label if top else None,
        "probability": top.probability if top else None,
        "topk": [vars(p) for p in result.predictions] if result is not None else [],
        "error": decoded.error,
        "frames": decoded.frames,
        "sampling": decoded.sampling,
        "notes": decoded.notes,
        "model": model.as_dict(),
        "decode_ms": decoded.decode_ms,
        "infer_ms": infer_ms,
    }
    if with_logits:
        row["logits"] = result.logits if result is not None else None
    return row


def rows_to_table(rows: list[dict[str, Any]], with_logits: bool) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=result_schema(with_logits))
