"""`stam-serve --backend/--precision` and the limit flags reach the models Triton loads (no Triton needed).

The repository stam-serve writes is read back the way Triton hands it to a Python model (the
config as JSON with proto field names), and `serve.backend`'s models are initialised from it with
a stand-in for `triton_python_backend_utils`, which exists only inside Triton's stub.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

pytest.importorskip("tritonclient.grpc", reason="the [serve] extra is not installed")

from google.protobuf import json_format, text_format  # noqa: E402  (comes with tritonclient)
from tritonclient.grpc import model_config_pb2 as pb  # noqa: E402

from runtime.limits import SERVER_LIMITS  # noqa: E402
from serve import cli, config  # noqa: E402
from serve.server import write_repository  # noqa: E402


def triton_args(directory: Path) -> dict[str, str]:
    """What Triton passes to a Python model's `initialize`: its config as JSON."""
    parsed = text_format.Parse((directory / "config.pbtxt").read_text(), pb.ModelConfig())
    return {"model_config": json_format.MessageToJson(parsed, preserving_proto_field_name=True)}


@pytest.fixture
def backend_module(monkeypatch):
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", types.ModuleType("triton_python_backend_utils"))
    monkeypatch.delitem(sys.modules, "serve.backend", raising=False)
    import serve.backend

    return serve.backend


def served(model: Path, *flags: str):
    args = cli.build_parser().parse_args([str(model), *flags])
    options, _ = cli.options_from(args)
    info = config.servable(options.artifact)
    return info, cli.resolve_options(options, info)


def test_onnx_runtime_backend_opens_both_models_there(tiny_onnx, tmp_path, backend_module):
    info, options = served(tiny_onnx, "--backend", "onnxruntime", "--max-pixels", "none", "--decode-timeout", "5")
    assert (options.backend, options.precision) == ("onnxruntime", "fp32")
    assert options.limits == SERVER_LIMITS.lifted(max_pixels=None, decode_timeout=5.0)
    write_repository(tmp_path, info, options)
    tensors = backend_module.TensorModel()
    tensors.initialize(triton_args(tmp_path / options.name))
    video = backend_module.VideoModel()
    video.initialize(triton_args(tmp_path / f"{options.name}{config.VIDEO_SUFFIX}"))
    try:
        assert tensors.model.backend == video.model.backend == "onnxruntime"
        assert video.limits == options.limits
    finally:
        tensors.finalize()
        video.finalize()


def test_auto_is_resolved_before_start_up(tiny_onnx):
    _, options = served(tiny_onnx)
    assert options.backend in ("onnxruntime", "openvino") and options.limits == SERVER_LIMITS


def test_limits_parameter_round_trips():
    limits = SERVER_LIMITS.lifted(max_video_bytes=None)
    assert config.limits_from_parameter(config.limits_parameter(limits)) == limits
    assert json.loads(config.limits_parameter(limits))["max_video_bytes"] is None
