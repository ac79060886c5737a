"""`stam-export`: checkpoint round trip and one-line errors for bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch

from export.checkpoint import load_checkpoint
from export.cli import main
from runtime import contract
from runtime.onnx_io import proto_metadata
from tests.blocking import run_module_blocking


def _single_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_checkpoint_round_trips_through_stam_export(tiny_checkpoint, tmp_path, capsys):
    output = tmp_path / "from_ckpt.onnx"
    assert main(["--checkpoint", str(tiny_checkpoint), "-o", str(output), "--verify-shapes", "1x8,2x4"]) == 0
    assert "parity against PyTorch" in capsys.readouterr().out
    model = load_checkpoint(tiny_checkpoint)
    frames = torch.rand(2, 8, 3, 224, 224)
    with torch.no_grad():
        expected = model(frames).numpy()
    session = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    actual = session.run(None, {contract.INPUT_NAME: frames.numpy()})[0]
    assert np.max(np.abs(actual - expected)) <= contract.FP32_MAX_ABS_DIFF


def test_missing_checkpoint(tmp_path, capsys):
    assert main(["--checkpoint", str(tmp_path / "missing.pth"), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "checkpoint file not found" in _single_line_error(capsys)


def test_checkpoint_of_another_architecture(tmp_path, capsys):
    path = tmp_path / "resnet.pth"
    torch.save({"model": {"fc.weight": torch.zeros(10, 4)}}, path)
    assert main(["--checkpoint", str(path), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "not a STAM checkpoint" in _single_line_error(capsys)


def test_unknown_model_name(tmp_path, capsys):
    assert main(["--model", "stam_99", "-o", str(tmp_path / "x.onnx")]) == 2
    assert "unknown model 'stam_99'" in _single_line_error(capsys)


def test_unwritable_output_path(tmp_path, capsys):
    assert main(["--model", "stam_tiny", "--num-classes", "4", "-o", str(tmp_path / "no" / "dir" / "x.onnx")]) == 2
    assert "output directory" in _single_line_error(capsys)


def test_output_path_that_is_a_directory(tmp_path, capsys):
    """Unwritable even for root, unlike a read-only directory."""
    assert main(["--model", "stam_tiny", "--num-classes", "4", "-o", str(tmp_path)]) == 2
    assert "cannot write output" in _single_line_error(capsys)


def test_console_script_prints_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "export.cli", "--checkpoint", str(tmp_path / "missing.pth")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error: ")


def test_bad_verify_shapes_fail_before_anything_is_written(tmp_path, capsys):
    output = tmp_path / "x.onnx"
    assert main(["--model", "stam_tiny", "--num-classes", "4", "-o", str(output), "--verify-shapes", "1by8"]) == 2
    assert "--verify-shapes must look like 1x16,2x8" in _single_line_error(capsys)
    assert not output.exists()


def test_without_the_export_extra_the_error_names_it(tmp_path):
    result = run_module_blocking(("torch",), "export.cli", "--model", "stam_tiny", "-o", str(tmp_path / "x.onnx"))
    assert result.returncode == 2, result.stderr
    assert result.stderr == "error: stam-export needs the export extra: pip install -e '.[export]'\n"


def test_random_weights_are_marked_and_warned_about_once(tmp_path):
    import warnings

    from runtime import open_model
    from runtime.backends.base import RandomWeightsWarning

    output = tmp_path / "random.onnx"
    assert main(["--model", "stam_tiny", "--num-classes", "4", "-o", str(output), "--no-verify"]) == 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            with open_model(output) as model:
                assert model.metadata[contract.META_RANDOM_WEIGHTS] == "1"
    assert [type(w.message) for w in caught] == [RandomWeightsWarning]
    assert "random weights" in str(caught[0].message) and "labels are meaningless" in str(caught[0].message)


def test_checkpoint_exports_are_not_marked_random(tiny_checkpoint, tmp_path):
    output = tmp_path / "trained.onnx"
    assert main(["--checkpoint", str(tiny_checkpoint), "-o", str(output), "--no-verify"]) == 0
    assert contract.META_RANDOM_WEIGHTS not in proto_metadata(onnx.load(str(output)))


def test_the_shipped_motion_model_exports_with_its_class_names(tmp_path):
    from benchmarks.motion import SHIPPED_CHECKPOINT
    from benchmarks.motion.generate import CLASSES

    output = tmp_path / "motion.onnx"
    assert main(["--checkpoint", str(SHIPPED_CHECKPOINT), "-o", str(output), "--no-verify"]) == 0
    labels = contract.labels_from_metadata(proto_metadata(onnx.load(str(output))))
    assert labels == list(CLASSES) and len(set(labels)) == 9
