"""`stam-export --split`: the frames and temporal parts, their metadata, and temporal(frames(x)) parity."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from export.cli import main
from export.onnx import split_paths, verify_split
from runtime import contract


def io_dims(path) -> dict[str, list]:
    graph = onnx.load(str(path), load_external_data=False).graph
    return {
        v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in (*graph.input, *graph.output)
    }


def metadata(path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def test_split_paths_name_both_parts(tmp_path):
    assert split_paths(tmp_path / "m.onnx") == (tmp_path / "m.frames.onnx", tmp_path / "m.temporal.onnx")
    assert split_paths("dir/stam_16.fp16.onnx")[1].name == "stam_16.fp16.temporal.onnx"


def test_parts_have_the_contract_io_with_dynamic_dims(tiny_split):
    frames_path, temporal_path = tiny_split
    assert io_dims(frames_path) == {
        contract.INPUT_NAME: [contract.FRAMES_DIM, 3, 224, 224],
        contract.EMBEDDINGS_NAME: [contract.FRAMES_DIM, 64],
    }
    assert io_dims(temporal_path) == {
        contract.EMBEDDINGS_NAME: [contract.BATCH_DIM, contract.FRAMES_DIM, 64],
        contract.OUTPUT_NAME: [contract.BATCH_DIM, 10],
    }


def test_parts_carry_the_metadata_and_name_each_other(tiny_split, tiny_labels):
    frames_path, temporal_path = tiny_split
    frames_meta, temporal_meta = metadata(frames_path), metadata(temporal_path)
    for meta in (frames_meta, temporal_meta):
        contract.check_metadata(meta, "part")
        assert contract.labels_from_metadata(meta) == tiny_labels
        assert meta[contract.META_FRAMES_TRAINED] == "8"
    assert (frames_meta[contract.META_PART], frames_meta[contract.META_PARTNER]) == ("frames", temporal_path.name)
    assert (temporal_meta[contract.META_PART], temporal_meta[contract.META_PARTNER]) == ("temporal", frames_path.name)


def test_frames_part_equals_the_model_features(tiny_model, tiny_split):
    """Each frame's embedding alone: the frames part on N frames equals forward_features per frame."""
    frames = torch.rand(5, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = tiny_model.forward_features(frames[None])[0].numpy()
    session = ort.InferenceSession(str(tiny_split[0]), providers=["CPUExecutionProvider"])
    (actual,) = session.run(None, {contract.INPUT_NAME: frames.numpy()})
    assert np.max(np.abs(actual - expected)) <= 1e-4


@pytest.mark.parametrize("shapes", [[(1, 8), (2, 3), (3, 16), (1, 1)]])
def test_fp32_pair_matches_the_whole_model(tiny_model, tiny_split, shapes):
    """At T_trained and away from it (position interpolation inside the temporal part)."""
    report = verify_split(tiny_model, *tiny_split, shapes)
    assert report.passed, report.failures()
    assert report.max_abs_diff <= contract.FP32_MAX_ABS_DIFF


def test_cli_split_at_fp16_writes_and_verifies_both_parts(tiny_checkpoint, tmp_path, capsys):
    """Exit 0 means every row met contract.tolerance("fp16", scale) with the same top-1."""
    output = tmp_path / "cli.onnx"
    argv = [
        "--checkpoint",
        str(tiny_checkpoint),
        "--split",
        "--precision",
        "fp16",
        "-o",
        str(output),
        "--verify-shapes",
        "1x8,2x5",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "cli.frames.onnx and " in out and "parity of temporal(frames(x)) against PyTorch" in out
    frames_path, temporal_path = tmp_path / "cli.frames.onnx", tmp_path / "cli.temporal.onnx"
    assert not output.exists()
    for path in (frames_path, temporal_path):
        assert metadata(path)[contract.META_PRECISION] == "fp16"
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert session.get_inputs()[0].type == "tensor(float)"  # float32 I/O, casts inside
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert len(rows) == 2 and all(0 < float(row[2]) <= float(row[3]) for row in rows)  # diff within tolerance


def test_cli_split_to_a_missing_directory_is_one_line(tmp_path, capsys):
    assert main(["--model", "stam_tiny", "--num-classes", "4", "--split", "-o", str(tmp_path / "no" / "x.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "output directory" in err[0]
