"""The TensorRT optimization profile of a STAM ONNX file: defaults from its metadata, validation against its input.

Whole models and both parts of a split pair (`stam.part`): the whole model takes frames (B, T, 3,
224, 224), the frames part single images (N, 3, 224, 224), the temporal part embeddings (B, T, D).
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
from runtime.onnx_io import proto_metadata

DEFAULT_BATCH = DimRange(1, 8, 32)
# 4x T_trained frames, but at most contract.MAX_FRAMES: 128 frames x 32 videos is already 2.5 GB of float32 input.
MAX_DEFAULT_FRAMES = contract.MAX_FRAMES
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
    def part(self) -> str:
        """`frames` or `temporal` for a part of a split pair, "" for the whole model."""
        return self.metadata.get(contract.META_PART, contract.PART_WHOLE)

    @property
    def input_name(self) -> str:
        return contract.PART_IO[self.part][0]

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
    metadata = proto_metadata(model)
    part = metadata.get(contract.META_PART, contract.PART_WHOLE)
    if part not in contract.PART_IO:
        raise ArtifactError(f"{path}: unknown {contract.META_PART} {part!r} (expected frames or temporal)")
    input_name, output_name = contract.PART_IO[part]
    weights = {init.name for init in model.graph.initializer}  # IR < 4 lists initializers as inputs too
    inputs = {value.name: value for value in model.graph.input if value.name not in weights}
    outputs = {value.name for value in model.graph.output}
    what = f"the {part} part of a STAM model" if part else "a STAM model"
    if list(inputs) != [input_name] or not model.graph.node:
        found = ", ".join(repr(name) for name in inputs) or "none"
        raise ArtifactError(f"{path}: not {what} (its one graph input must be {input_name!r}; found {found})")
    if output_name not in outputs:
        raise ArtifactError(f"{path}: not {what} (no graph output named {output_name!r})")
    tensor = inputs[input_name].type.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim)
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
    """The user's ranges where given, defaults elsewhere, validated against the ONNX input.

    The temporal part's input is small (B x T x D floats), so its default frames range is the whole
    1..4 T_trained that the interpolated position embedding serves.
    """
    defaults = default_profile(info.frames_trained)
    if info.part == contract.PART_TEMPORAL:
        trained = info.frames_trained
        defaults = Profile(batch=DEFAULT_BATCH, frames=DimRange(1, trained, 4 * trained))
    embed_dim = info.input_dims[-1] if info.part == contract.PART_TEMPORAL and info.input_dims else 0
    if not isinstance(embed_dim, int):
        raise ArtifactError(
            f"{info.path}: the embedding size (last dim of {info.input_name!r}) must be fixed, got {embed_dim!r}"
        )
    profile = Profile(
        batch=batch or defaults.batch, frames=frames or defaults.frames, part=info.part, embed_dim=embed_dim
    )
    validate_profile(info, profile)
    return profile


def validate_profile(info: OnnxInfo, profile: Profile) -> None:
    """min <= opt <= max, and inside what the ONNX input allows (fixed dims must be matched exactly)."""
    name = info.input_name
    if info.input_type != TensorProto.FLOAT:
        raise ArtifactError(
            f"{info.path}: input {name!r} must be float32, got {TensorProto.DataType.Name(info.input_type)}"
        )
    profile.batch.validate("batch")
    profile.frames.validate("frames")
    dynamic, fixed = profile.dims(), profile.fixed_dims()
    if len(info.input_dims) != len(dynamic) + len(fixed):
        layout = ", ".join([dim for dim, _ in dynamic] + [str(size) for size in fixed])
        raise ArtifactError(
            f"{info.path}: input {name!r} has rank {len(info.input_dims)}, "
            f"expected {len(dynamic) + len(fixed)} ({layout})"
        )
    for axis, (dim_name, allowed) in enumerate(dynamic):
        dim = info.input_dims[axis]
        if isinstance(dim, int) and not allowed.min == allowed.max == dim:
            option = "--batch/--frames" if dim_name == "images" else f"--{dim_name}"
            raise ShapeError(
                f"{info.path}: the model's {dim_name} dimension is fixed at {dim}; "
                f"use {option} to match it (got {allowed})"
            )
    for axis, size in enumerate(fixed, start=len(dynamic)):
        dim = info.input_dims[axis]
        if isinstance(dim, int) and dim != size:
            raise ShapeError(f"{info.path}: input dimension {axis} is {dim}, the contract needs {size}")
