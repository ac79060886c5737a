"""`stam-triton-repo`: config.pbtxt parsed with Triton's own protobuf and checked against the artifact."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnx
import pytest

pytest.importorskip("tritonclient.grpc", reason="the [serve] extra is not installed")

from google.protobuf import text_format  # noqa: E402  (comes with tritonclient)
from tritonclient.grpc import model_config_pb2 as pb  # noqa: E402

from runtime import contract  # noqa: E402
from runtime.contract import DimRange, Profile, Sidecar  # noqa: E402
from runtime.onnx_io import proto_metadata  # noqa: E402
from serve import repository  # noqa: E402


def parse_config(directory: Path) -> pb.ModelConfig:
    return text_format.Parse((directory / "config.pbtxt").read_text(), pb.ModelConfig())


def write_plan(tmp_path: Path, onnx_path: Path, batch: DimRange, frames: DimRange) -> Path:
    """A plan file with a hand-written sidecar: the repository never deserializes the engine."""
    plan = tmp_path / "stam_tiny.fp16.plan"
    plan.write_bytes(b"serialized engine bytes")
    metadata = proto_metadata(onnx.load(str(onnx_path), load_external_data=False))
    Sidecar(metadata, Profile(batch, frames), "fp16", "10.9.0", "NVIDIA H100", "9.0").write(plan)
    return plan


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "serve.repository", *map(str, args)], capture_output=True, text=True, timeout=120
    )


def check_tensor_io(config: pb.ModelConfig, num_classes: int) -> None:
    (frames,) = config.input
    assert (frames.name, frames.data_type, list(frames.dims)) == (contract.INPUT_NAME, pb.TYPE_FP32, [-1, 3, 224, 224])
    (logits,) = config.output
    assert (logits.name, logits.data_type, list(logits.dims)) == (contract.OUTPUT_NAME, pb.TYPE_FP32, [num_classes])
    assert logits.label_filename == "labels.txt"


def test_onnx_repository_matches_the_model(tiny_onnx, tiny_labels, tmp_path):
    result = run_cli(
        tiny_onnx, "--out", tmp_path, "--max-batch", "16", "--max-queue-delay-us", "500", "--instances", "2"
    )
    assert result.returncode == 0, result.stderr
    model_dir = tmp_path / "stam_tiny"
    config = parse_config(model_dir)
    assert (config.name, config.platform, config.backend) == ("stam_tiny", "onnxruntime_onnx", "")
    assert config.max_batch_size == 16
    check_tensor_io(config, len(tiny_labels))
    assert (model_dir / "labels.txt").read_text().splitlines() == tiny_labels
    assert list(config.dynamic_batching.preferred_batch_size) == [16]
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
    (group,) = config.instance_group
    assert (group.count, group.kind) == (2, pb.ModelInstanceGroup.KIND_AUTO)
    assert (model_dir / "1" / "model.onnx").read_bytes() == Path(tiny_onnx).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stam_tiny"]  # no staging folder left


def test_plan_profile_bounds_the_batch(tiny_onnx, tiny_labels, tmp_path):
    plan = write_plan(tmp_path, tiny_onnx, DimRange(1, 4, 6), DimRange(4, 8, 16))
    result = run_cli(plan, "--out", tmp_path / "repo", "--max-batch", "8")
    assert result.returncode == 0, result.stderr
    model_dir = tmp_path / "repo" / "stam_tiny.fp16"
    config = parse_config(model_dir)
    assert (config.platform, config.max_batch_size) == ("tensorrt_plan", 6)
    check_tensor_io(config, len(tiny_labels))
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 6]
    assert config.instance_group[0].kind == pb.ModelInstanceGroup.KIND_GPU
    assert (model_dir / "1" / "model.plan").read_bytes() == plan.read_bytes()


def test_plan_that_cannot_take_batch_one_is_refused(tiny_onnx, tmp_path):
    plan = write_plan(tmp_path, tiny_onnx, DimRange(2, 4, 8), DimRange(8, 8, 8))
    result = run_cli(plan, "--out", tmp_path / "repo")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "rebuild with stam-build --batch 1:OPT:MAX" in result.stderr
    assert not (tmp_path / "repo").exists()


def test_without_dynamic_batching_and_with_a_name(tiny_onnx, tmp_path):
    assert run_cli(tiny_onnx, "--out", tmp_path, "--no-dynamic-batching", "--name", "kinetics").returncode == 0
    config = parse_config(tmp_path / "kinetics")
    assert config.name == "kinetics" and not config.HasField("dynamic_batching")


def test_existing_model_needs_force(tiny_onnx, tmp_path):
    assert run_cli(tiny_onnx, "--out", tmp_path).returncode == 0
    again = run_cli(tiny_onnx, "--out", tmp_path)
    assert again.returncode == 2 and again.stderr.startswith("error: ") and "--force" in again.stderr
    assert run_cli(tiny_onnx, "--out", tmp_path, "--force", "--max-batch", "4").returncode == 0
    assert parse_config(tmp_path / "stam_tiny").max_batch_size == 4


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda tmp: tmp / "missing.onnx", "no such file"),
        (lambda tmp: (tmp / "model.txt").write_text("x") and tmp / "model.txt", "unknown artifact type"),
        (lambda tmp: (tmp / "junk.onnx").write_bytes(b"\x00junk") and tmp / "junk.onnx", "not a loadable ONNX model"),
        (lambda tmp: (tmp / "bare.plan").write_bytes(b"x") and tmp / "bare.plan", "no sidecar"),
    ],
)
def test_bad_artifacts_get_one_line(make, message, tmp_path):
    result = run_cli(make(tmp_path), "--out", tmp_path / "repo")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1 and message in result.stderr


def test_missing_extra_names_it(monkeypatch, capsys, tiny_onnx, tmp_path):
    monkeypatch.setitem(sys.modules, "tritonclient.grpc", None)
    assert repository.main([str(tiny_onnx), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "error: stam-triton-repo needs the serve extra: pip install -e '.[serve]'\n"
