"""Smoke test of `python -m benchmarks.pipeline`: both sections run and their outputs are well-formed."""

from __future__ import annotations

import importlib.util
import json

import pytest

from benchmarks.pipeline import main

BACKENDS = [
    "onnxruntime",
    pytest.param(
        "openvino",
        marks=pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino is not installed"),
    ),
]


@pytest.mark.parametrize("backend", BACKENDS)
def test_decode_and_end_to_end_sections(tiny_onnx, tmp_path, capsys, backend):
    out = tmp_path / "pipeline.json"
    argv = [
        "--clips",
        "340p",
        "--methods",
        "ours",
        "reference",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--frames",
        "8",
        "--model",
        str(tiny_onnx),
        "--workers",
        "1,2",
        "--videos",
        "2",
        "--clip-dir",
        str(tmp_path / "clips"),
        "--json",
        str(out),
        "--backend",
        backend,
    ]
    assert main(argv) == 0
    document = json.loads(out.read_text())
    assert document["end_to_end"]["backend"] == backend
    assert {r["method"] for r in document["results"]} == {"ours", "reference"}
    assert all(r["total_ms"] > 0 for r in document["results"])
    runs = document["end_to_end"]["runs"]
    assert [r["workers"] for r in runs] == [1, 2]
    for run in runs:
        assert run["videos"] == 2 and run["videos_per_s"] > 0
        assert set(run["per_video_ms"]) == {"decode", "preprocess", "copy", "inference"}
        assert 0 < run["inference_busy"] <= 1
    table = capsys.readouterr().out
    assert "end to end (decode workers feeding one model)" in table and "speed-up" in table


def test_missing_model_is_a_one_line_error(tmp_path, capsys):
    argv = [
        "--clips",
        "340p",
        "--methods",
        "ours",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--model",
        str(tmp_path / "missing.onnx"),
        "--clip-dir",
        str(tmp_path / "clips"),
    ]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: ")
