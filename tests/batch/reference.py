"""What stam-batch's results are checked against: its folder as a user reads it, and `runtime.infer`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.batch.processes import ROOT


def read_results(out: Path) -> list[dict]:
    """Every row in the folder, as a user reads it (dot- and underscore-files skipped)."""
    import pyarrow.dataset as ds

    return ds.dataset(out, format="parquet").to_table().to_pylist()


def infer_json(model: Path, videos: list[Path], expect_failures: bool = True) -> dict[str, dict]:
    """`python -m runtime.infer --json --logits`, by path: the single-process reference."""
    command = [sys.executable, "-m", "runtime.infer", str(model), *map(str, videos)]
    command += ["--json", "--logits", "--topk", "3", "--batch-size", "3"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == (1 if expect_failures else 0), result.stderr  # 1: some videos failed
    return {row["path"]: row for row in map(json.loads, result.stdout.splitlines())}


def assert_same_predictions(row: dict, reference: dict) -> None:
    """A stam-batch row and runtime.infer's record of the same video: labels equal, numbers within 1e-5."""
    assert row["error"] is None and row["label"] == reference["topk"][0]["label"]
    assert [p["label"] for p in row["topk"]] == [p["label"] for p in reference["topk"]]
    assert max(abs(a["probability"] - b["probability"]) for a, b in zip(row["topk"], reference["topk"])) <= 1e-5
    if row.get("logits") is not None:
        assert max(abs(a - b) for a, b in zip(row["logits"], reference["logits"])) <= 1e-5
