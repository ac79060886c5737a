"""Smoke test of `python -m benchmarks.accuracy_table`: every row evaluates and both outputs are written."""

from __future__ import annotations

import json

from benchmarks.accuracy_table import default_rows, main


def test_table_rows_cover_backends_precisions_frames_and_order():
    rows = default_rows(8)
    assert {(r.backend, r.precision) for r in rows} == {
        ("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "fp16"), ("onnxruntime", "int8")}
    assert {r.frames for r in rows} == {4, 8, 16}
    assert any(r.reverse for r in rows)


def test_one_command_writes_markdown_and_json(motion_held_out_dir, tmp_path):
    markdown, results = tmp_path / "accuracy.md", tmp_path / "accuracy.json"
    argv = ["--val-dir", str(motion_held_out_dir), "--calibration-per-class", "1", "--workdir", str(tmp_path / "w"),
            "--markdown", str(markdown), "--json", str(results)]
    assert main(argv) == 0
    rows = json.loads(results.read_text())
    assert len(rows) == len(default_rows(8))
    assert all(row["videos"] > 0 and row["failed"] == 0 and 0 <= row["top1"] <= 1 for row in rows)
    table = markdown.read_text()
    assert table.count("\n| ") == len(rows) and "reversed" in table and "--calibration-per-class 1" in table
