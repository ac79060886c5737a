"""The server's limits reach the video model intact, its queue is bounded, and Triton's own size options are set."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("tritonclient.grpc", reason="the [serve] extra is not installed")

from google.protobuf import text_format  # noqa: E402  (comes with tritonclient)
from tritonclient.grpc import model_config_pb2 as pb  # noqa: E402

from runtime.artifact import describe  # noqa: E402
from runtime.limits import NO_LIMITS, SERVER_LIMITS, Limits  # noqa: E402
from serve import config as triton_config  # noqa: E402
from serve.server import (  # noqa: E402
    GRPC_ALLOCATION_POOL,
    HTTP_MAX_INPUT_OPTION,
    REQUEST_OVERHEAD_BYTES,
    ServeOptions,
    request_size_arguments,
    write_repository,
)


@pytest.mark.parametrize(
    "limits",
    [
        SERVER_LIMITS,
        NO_LIMITS,
        Limits(max_pixels=640 * 480, max_duration=12.5, max_video_bytes=1000, decode_timeout=0.5),
    ],
)
def test_limits_survive_the_model_parameters(limits):
    parameter = triton_config.limits_parameter(limits)
    assert isinstance(parameter, str)
    assert triton_config.limits_from_parameter(parameter) == limits


def test_video_model_gets_the_limits_and_a_bounded_queue(tiny_onnx, tmp_path):
    limits = Limits(max_pixels=1000, max_duration=5.0, max_video_bytes=2048, decode_timeout=3.0)
    options = ServeOptions(Path(tiny_onnx), "tiny", triton_config.Batching(), limits=limits, max_queue=7)
    write_repository(tmp_path, describe(tiny_onnx), options)
    config = text_format.Parse((tmp_path / "tiny_video" / "config.pbtxt").read_text(), pb.ModelConfig())
    parameters = {key: value.string_value for key, value in config.parameters.items()}
    assert triton_config.limits_from_parameter(parameters["limits"]) == limits
    assert config.dynamic_batching.default_queue_policy.max_queue_size == 7


def test_server_defaults_protect_the_server(tiny_onnx):
    options = ServeOptions(Path(tiny_onnx), "tiny", triton_config.Batching())
    assert options.limits == SERVER_LIMITS and options.limits.max_video_bytes is not None
    assert options.max_queue == triton_config.DEFAULT_MAX_QUEUE


def test_request_size_options_follow_the_build(tmp_path):
    """The HTTP body bound is passed only to a tritonserver build that knows the option."""
    old, new = tmp_path / "old", tmp_path / "new"
    old.write_bytes(b"\0--grpc-infer-allocation-pool-size\0")
    new.write_bytes(b"\0" + HTTP_MAX_INPUT_OPTION.lstrip("-").encode() + b"\0")
    limits = Limits(max_video_bytes=5000)
    assert request_size_arguments(old, limits) == [f"--grpc-infer-allocation-pool-size={GRPC_ALLOCATION_POOL}"]
    assert request_size_arguments(new, limits)[-1] == f"{HTTP_MAX_INPUT_OPTION}={5000 + REQUEST_OVERHEAD_BYTES}"
    assert len(request_size_arguments(new, NO_LIMITS)) == 1
