"""Smoke test of `python -m benchmarks.accuracy_table`: every row evaluates and both outputs are written."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.accuracy_table import DEFAULT_OUT, default_rows, main, parse_args


def test_table_rows_cover_backends_precisions_frames_and_order():
    rows = default_rows(8)
    assert {(r.backend, r.precision) for r in rows} == {
        ("torch", "fp32"),
        ("onnxruntime", "fp32"),
        ("onnxruntime", "fp16"),
        ("onnxruntime", "int8"),
        ("openvino", "fp32"),
        ("openvino", "bf16"),
        ("openvino", "int8"),
    }
    bf16 = next(r for r in rows if r.precision == "bf16")
    assert bf16.artifact == "fp32" and bf16.open_options() == {"backend": "openvino", "precision": "bf16"}
    assert {r.frames for r in rows} == {4, 8, 16}
    assert any(r.reverse for r in rows)


SMOKE_PER_CLASS = 2  # every row decodes the set again: the gates measure accuracy on the full set


def first_per_class(root: Path, count: int, into: Path) -> Path:
    """A class-folder set of links to the first `count` videos of each class of `root`."""
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        (into / folder.name).mkdir(parents=True)
        for video in sorted(folder.iterdir())[:count]:
            (into / folder.name / video.name).symlink_to(video)
    return into


def test_one_command_writes_markdown_and_json(motion_held_out_dir, tmp_path):
    markdown, results = tmp_path / "accuracy.md", tmp_path / "accuracy.json"
    val_dir = first_per_class(motion_held_out_dir, SMOKE_PER_CLASS, tmp_path / "val")
    argv = [
        "--val-dir",
        str(val_dir),
        "--calibration-per-class",
        "1",
        "--workdir",
        str(tmp_path / "w"),
        "--markdown",
        str(markdown),
        "--json",
        str(results),
    ]
    assert main(argv) == 0
    document = json.loads(results.read_text())
    assert {"created", "command", "machine"} <= document.keys()
    rows = document["rows"]
    assert len(rows) == len(default_rows(8))
    ran = [row for row in rows if "skipped" not in row]
    assert all(row["videos"] > 0 and row["failed"] == 0 for row in ran)
    assert all(row["skipped"].startswith("bf16 needs a CPU") for row in rows if "skipped" in row)
    in_order = [row for row in ran if row["frames"] == 8 and not row["reverse"]]
    assert len(in_order) >= 5 and all(row["top1"] >= 0.9 for row in in_order)  # the shipped model solves its task
    reversed_row = next(row for row in ran if row["reverse"])
    assert reversed_row["top1"] < min(row["top1"] for row in in_order) - 0.3
    table = markdown.read_text()
    assert table.count("\n| ") == len(rows) and "reversed" in table and "--calibration-per-class 1" in table
    assert "| openvino | fp32 | 8 | in order |" in table


def test_outputs_default_to_artifacts_and_publishing_is_explicit():
    default = parse_args([])
    assert (default.markdown, default.json) == (
        DEFAULT_OUT / "accuracy_motion.md",
        DEFAULT_OUT / "accuracy_motion.json",
    )
    assert DEFAULT_OUT.parts[0] == "artifacts"
    published = parse_args(["--out", "benchmarks/results"])
    assert published.json == Path("benchmarks/results/accuracy_motion.json")
