"""Triton model configurations (`config.pbtxt`) for a STAM artifact, built as Triton's own protobuf.

One place decides the tensor model's I/O, batch bound and batching policy, so the repository for
the stock server (`stam-triton-repo`) and the one `stam-serve` runs cannot drift apart. Building
`model_config_pb2.ModelConfig` (from tritonclient) and printing it in text format guarantees that
Triton can parse what we write.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from runtime import contract
from runtime.artifact import ArtifactInfo, describe
from runtime.contract import DimRange
from runtime.errors import ArtifactError, StamError
from runtime.limits import Limits

LABELS_FILE = "labels.txt"
VIDEO_SUFFIX = "_video"
PLATFORMS = {"onnx": "onnxruntime_onnx", "plan": "tensorrt_plan"}
MODEL_FILES = {"onnx": "model.onnx", "plan": "model.plan"}
# An unbounded ONNX model still needs a ceiling on frames per request: 128 frames of one video are
# 77 MB of float32 pixels, and a request for millions must be refused, not allocated.
DEFAULT_MAX_FRAMES = contract.MAX_FRAMES
# Videos waiting for a decode worker: each holds its upload (up to --max-video-bytes) in the server,
# so the wait is bounded and the next one is refused at once ("Exceeds maximum queue size").
DEFAULT_MAX_QUEUE = 32


@dataclass(frozen=True)
class Batching:
    """How Triton schedules the tensor model: batch bound, dynamic batching, instances."""

    max_batch: int = 8
    max_queue_delay_us: int = 2000
    instances: int = 1
    dynamic: bool = True

    def validate(self) -> None:
        for name, value, low in (
            ("max-batch", self.max_batch, 1),
            ("instances", self.instances, 1),
            ("max-queue-delay-us", self.max_queue_delay_us, 0),
        ):
            if value < low:
                raise StamError(f"--{name} must be >= {low}, got {value}")


def model_name(path: str | Path) -> str:
    """The file's stem, in the characters Triton allows in a model name (`stam_16.fp16.plan` -> `stam_16.fp16`)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", Path(path).stem) or "stam"


def open_parameters(backend: str, precision: str) -> dict[str, str]:
    """The `open_model` choices, as model-config parameters for the Python backend (`serve.backend`)."""
    return {"backend": backend, "precision": precision}


def limits_parameter(limits: Limits) -> str:
    """`Limits` as one model-config parameter (JSON; null lifts a limit)."""
    return json.dumps(dataclasses.asdict(limits))


def limits_from_parameter(text: str) -> Limits:
    return Limits(**json.loads(text))


def servable(path: str | Path) -> ArtifactInfo:
    """`runtime.artifact.describe`, refusing a split part: Triton serves frames -> logits, a whole model."""
    info = describe(path)
    if info.is_split:
        raise ArtifactError(f"{info.path}: is the {info.part} part of a split pair; serve the whole model")
    if info.num_classes is None:
        raise ArtifactError(f"{info.path}: the number of classes is neither in the graph nor in the labels")
    return info


def max_batch_size(info: ArtifactInfo, requested: int) -> int:
    """A plan's profile bounds the batch Triton may form; an ONNX model takes what is asked."""
    if info.batch_range is None:
        return requested
    if info.batch_range.min > 1:
        raise StamError(
            f"{info.path}: the plan's profile starts at batch {info.batch_range.min}; "
            "Triton sends batches from 1 (rebuild with stam-build --batch 1:OPT:MAX)"
        )
    return min(requested, info.batch_range.max)


def frames_range(info: ArtifactInfo, max_frames: int = DEFAULT_MAX_FRAMES) -> DimRange:
    """Frames per video the server accepts: the plan's profile, else 1..max_frames."""
    if info.frames_range is not None:
        return info.frames_range
    return DimRange(1, min(info.frames_trained, max_frames), max_frames)


def preferred_batch_sizes(info: ArtifactInfo, max_batch: int) -> list[int]:
    """The plan's optimal batch (TensorRT tuned its kernels there) and the largest; an ONNX model's largest."""
    sizes = {max_batch}
    if info.batch_range is not None:
        sizes.add(min(info.batch_range.opt, max_batch))
    return sorted(sizes)


def _instance_kind(model_config_pb2, info: ArtifactInfo, backend: str | None) -> int:
    groups = model_config_pb2.ModelInstanceGroup
    if backend is not None:
        return groups.KIND_CPU  # a Python backend process; the artifact picks its own device inside
    return groups.KIND_GPU if info.kind == "plan" else groups.KIND_AUTO


def tensor_model_config(
    name: str,
    info: ArtifactInfo,
    batching: Batching,
    *,
    backend: str | None = None,
    parameters: Mapping[str, str] | None = None,
):
    """`frames` FP32 [-1, 3, 224, 224] -> `logits` FP32 [C] per batch item, on the artifact's platform or `backend`."""
    from tritonclient.grpc import model_config_pb2

    config = model_config_pb2.ModelConfig(name=name, max_batch_size=max_batch_size(info, batching.max_batch))
    if backend is None:
        config.platform = PLATFORMS[info.kind]
    else:
        config.backend = backend
    size = contract.INPUT_SIZE
    config.input.add(
        name=contract.INPUT_NAME, data_type=model_config_pb2.TYPE_FP32, dims=[-1, contract.CHANNELS, size, size]
    )
    output = config.output.add(name=contract.OUTPUT_NAME, data_type=model_config_pb2.TYPE_FP32, dims=[info.num_classes])
    if info.labels:
        output.label_filename = LABELS_FILE
    if batching.dynamic:
        config.dynamic_batching.preferred_batch_size.extend(preferred_batch_sizes(info, config.max_batch_size))
        config.dynamic_batching.max_queue_delay_microseconds = batching.max_queue_delay_us
    config.instance_group.add(count=batching.instances, kind=_instance_kind(model_config_pb2, info, backend))
    _set_parameters(config, parameters)
    return config


def video_model_config(
    name: str, max_batch: int, batching: Batching, parameters: Mapping[str, str], max_queue: int | None = None
):
    """`video` BYTES [1] (+ optional `frames` INT32 [1], `topk` INT32 [1]) -> `labels` BYTES [-1], `probabilities` FP32 [-1], `notes` BYTES [-1].

    `max_queue` bounds the videos waiting for a decode worker (dynamic batching only); None leaves it unbounded.
    """
    from tritonclient.grpc import model_config_pb2 as pb

    config = pb.ModelConfig(name=name, backend="python", max_batch_size=max_batch)
    config.input.add(name="video", data_type=pb.TYPE_STRING, dims=[1])
    config.input.add(name="frames", data_type=pb.TYPE_INT32, dims=[1], optional=True)
    config.input.add(name="topk", data_type=pb.TYPE_INT32, dims=[1], optional=True)
    config.output.add(name="labels", data_type=pb.TYPE_STRING, dims=[-1])
    config.output.add(name="probabilities", data_type=pb.TYPE_FP32, dims=[-1])
    config.output.add(name="notes", data_type=pb.TYPE_STRING, dims=[-1])
    if batching.dynamic:
        config.dynamic_batching.max_queue_delay_microseconds = batching.max_queue_delay_us
        if max_queue is not None:
            config.dynamic_batching.default_queue_policy.max_queue_size = max_queue
    config.instance_group.add(count=batching.instances, kind=pb.ModelInstanceGroup.KIND_CPU)
    _set_parameters(config, parameters)
    return config


def _set_parameters(config, parameters: Mapping[str, str] | None) -> None:
    for key, value in (parameters or {}).items():
        config.parameters[key].string_value = value


def to_text(config) -> str:
    """`config.pbtxt` text, as Triton's model repository reads it."""
    from google.protobuf import text_format

    return text_format.MessageToString(config)


def write_labels(directory: Path, labels: list[str]) -> None:
    """One label per line, in class-index order (Triton's `label_filename`)."""
    (directory / LABELS_FILE).write_text("".join(f"{label}\n" for label in labels))
