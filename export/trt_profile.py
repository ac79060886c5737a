"""The TensorRT optimization profile of a STAM ONNX file: defaults from its metadata, validation against its input.

Torch- and TensorRT-free, so the build's first failure (a profile the model cannot satisfy) shows on
any machine before minutes of engine building.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import TensorProto

from runtime import contract
from runtime.contract import DimRange, Profile
from runtime.errors import ArtifactError, ShapeError

DEFAULT_BATCH = DimRange(1, 8, 32)
# 4x T_trained frames, but at most this many: 128 frames x 32 videos is already 2.5 GB of float32 input.
MAX_DEFAULT_FRAMES = 128
# Largest batch x frames (images through the ViT per request) a default profile admits.
MAX_DEFAULT_IMAGES = 2048


@dataclass(frozen=True)
class OnnxInfo:
    """What the builder needs from an ONNX file, read without its weights."""

    path: Path
    metadata: dict[str, str]
    input_dims: tuple[int | str, ...]  # fixed size, or the symbolic name of a dynamic dim
    input_type: int

    @property
    def frames_trained(self) -> int:
        try:
            return int(self.metadata[contract.META_FRAMES_TRAINED])
        except (KeyError, ValueError):
            raise ArtifactError(f"{self.path}: metadata lacks a valid {contract.META_FRAMES_TRAINED}") from None

    @property
    def precision(self) -> str:
        return self.metadata.get(contract.META_PRECISION, "fp32")


def read_onnx_info(path: str | Path) -> OnnxInfo:
    """Graph I/O and metadata of an ONNX file; one-line errors for a missing, corrupt or foreign file."""
    path = Path(path)
    model = load_graph(path)
    inputs = {value.name: value for value in model.graph.input}
    if contract.INPUT_NAME not in inputs or not model.graph.node:
        raise ArtifactError(f"{path}: not a STAM model (no graph input named {contract.INPUT_NAME!r})")
    tensor = inputs[contract.INPUT_NAME].type.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim)
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    return OnnxInfo(path, metadata, dims, tensor.elem_type)


def load_graph(path: Path) -> onnx.ModelProto:
    """The graph and metadata of an ONNX file, weights left on disk; one-line errors for missing/corrupt files."""
    if not path.is_file():
        raise ArtifactError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as error:  # noqa: BLE001 - protobuf raises several unrelated types on corrupt input
        raise ArtifactError(f"{path}: not a readable ONNX file ({type(error).__name__})") from None


def default_profile(frames_trained: int) -> Profile:
    """max(1, T/2) : T : min(4T, 128) frames; batch 1:8:32, lowered so batch x frames stays <= 2048 at max."""
    frames_max = max(frames_trained, min(4 * frames_trained, MAX_DEFAULT_FRAMES))
    frames = DimRange(max(1, frames_trained // 2), frames_trained, frames_max)
    batch_max = max(1, min(DEFAULT_BATCH.max, MAX_DEFAULT_IMAGES // frames_max))
    batch = DimRange(min(DEFAULT_BATCH.min, batch_max), min(DEFAULT_BATCH.opt, batch_max), batch_max)
    return Profile(batch=batch, frames=frames)


def resolve_profile(info: OnnxInfo, batch: DimRange | None, frames: DimRange | None) -> Profile:
    """The user's ranges where given, defaults elsewhere, validated against the ONNX input."""
    defaults = default_profile(info.frames_trained)
    profile = Profile(batch=batch or defaults.batch, frames=frames or defaults.frames)
    validate_profile(info, profile)
    return profile


def validate_profile(info: OnnxInfo, profile: Profile) -> None:
    """min <= opt <= max, and inside what the ONNX input allows (fixed dims must be matched exactly)."""
    if info.input_type != TensorProto.FLOAT:
        raise ArtifactError(f"{info.path}: input {contract.INPUT_NAME!r} must be float32, "
                            f"got {TensorProto.DataType.Name(info.input_type)}")
    expected_rank = len(contract.input_shape(1, 1))
    if len(info.input_dims) != expected_rank:
        raise ArtifactError(f"{info.path}: input {contract.INPUT_NAME!r} has rank {len(info.input_dims)}, "
                            f"expected {expected_rank} (batch, frames, 3, {contract.INPUT_SIZE}, {contract.INPUT_SIZE})")
    profile.batch.validate("batch")
    profile.frames.validate("frames")
    for axis, (name, allowed) in enumerate((("batch", profile.batch), ("frames", profile.frames))):
        dim = info.input_dims[axis]
        if isinstance(dim, int) and not allowed.min == allowed.max == dim:
            raise ShapeError(f"{info.path}: the model's {name} dimension is fixed at {dim}; "
                             f"use --{name} {dim} (got {allowed})")
    fixed = contract.input_shape(1, 1)[2:]
    for axis, size in enumerate(fixed, start=2):
        dim = info.input_dims[axis]
        if isinstance(dim, int) and dim != size:
            raise ShapeError(f"{info.path}: input dimension {axis} is {dim}, the contract needs {size}")
