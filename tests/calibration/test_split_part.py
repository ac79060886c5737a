"""`stam-calibrate` on the frames part of a split pair: Q/DQ on its [N, 3, H, W] graph, clips fed as N = T."""

from __future__ import annotations

import numpy as np
import onnx

from calibration.cli import main
from calibration.qdq import find_targets
from runtime import contract
from runtime.onnx_io import proto_metadata
from runtime.split import open_window_model
from tests.calibration.conftest import make_video_tree, random_clips


def test_frames_part_is_quantized_and_runs_with_its_fp32_partner(tiny_split, tmp_path, capsys, fake_decode):
    frames_path, temporal_path = tiny_split
    videos = make_video_tree(tmp_path / "videos", {"class 0": 2, "class 1": 2})
    output = frames_path.with_name("stam_tiny.frames.int8.onnx")  # beside the temporal part
    code = main(
        [
            str(frames_path),
            "--videos",
            str(videos),
            "--clips",
            "4",
            "--method",
            "minmax",
            "--no-cache",
            "--eval",
            str(videos),
            "-o",
            str(output),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "4 clips of 8 frames" in captured.out and "top-1 agreement" in captured.out
    quantized = onnx.load(str(output))
    metadata = proto_metadata(quantized)
    assert metadata[contract.META_PRECISION] == "int8" and metadata[contract.META_PART] == contract.PART_FRAMES
    assert metadata[contract.META_PARTNER] == temporal_path.name
    assert sum(node.op_type == "QuantizeLinear" for node in quantized.graph.node) == len(
        [t for t in find_targets(onnx.load(str(frames_path)).graph) if t.axis is None]
    )
    clip = random_clips(1, seed=5)[0]
    with open_window_model(frames_path) as fp32, open_window_model(output) as int8:
        reference, candidate = fp32.embed(clip), int8.embed(clip)
        assert candidate.shape == reference.shape == (8, 64)
        logits = fp32.classify(reference[None]), int8.classify(candidate[None])
    scale = float(np.abs(logits[0]).max())
    assert np.abs(logits[0] - logits[1]).max() <= contract.tolerance("int8", scale)
    assert logits[0].argmax() == logits[1].argmax()


def test_temporal_part_is_refused_in_one_line(tiny_split, tmp_path, capsys, fake_decode):
    videos = make_video_tree(tmp_path / "videos", {"class 0": 1})
    code = main([str(tiny_split[1]), "--videos", str(videos), "-o", str(tmp_path / "t.int8.onnx")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("error: ") and "is the temporal part" in err[0] and "stam_tiny.frames.onnx" in err[0]
