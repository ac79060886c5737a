"""The one reader of an artifact's facts (`describe`): kind, part, metadata, ranges, partner, sidecar.

Every caller that needs to know what a file is before (or instead of) running it reads it here:
`open_model`, the split pair, `stam-batch`'s driver, `stam-serve` and `stam-triton-repo`, the
calibrator and the benchmarks. Nothing here loads a model on a backend or needs a GPU: an ONNX
model is parsed without its external weights, a plan is known by its sidecar. So each kind of
damage has one error text, whichever command met it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runtime import contract
from runtime.contract import DimRange, Sidecar
from runtime.errors import ArtifactError

if TYPE_CHECKING:
    import onnx

ONNX_SUFFIXES = (".onnx",)
PLAN_SUFFIXES = (".plan", ".engine")
KIND_ONNX = "onnx"
KIND_PLAN = "plan"
PARTS = (contract.PART_WHOLE, contract.PART_FRAMES, contract.PART_TEMPORAL)


@dataclass(frozen=True)
class ArtifactInfo(contract.MetadataFacts):
    """What an artifact is, read without running it.

    `batch_range`/`frames_range` are a plan's optimization profile (None for ONNX: any size);
    `num_classes` is None for a frames part (it outputs embeddings); `partner` is where the other
    part of a split pair belongs, beside this one (None for a whole model or a part that names no
    partner; `runtime.split` says what is missing); `sidecar` is a plan's.
    """

    path: Path
    kind: str  # KIND_ONNX or KIND_PLAN
    part: str  # one of PARTS
    metadata: dict[str, str]
    num_classes: int | None
    batch_range: DimRange | None
    frames_range: DimRange | None
    partner: Path | None
    sidecar: Sidecar | None

    @property
    def precision(self) -> str:
        """The precision the artifact was exported, calibrated or built in (`stam.precision`)."""
        return self.metadata[contract.META_PRECISION]

    @property
    def is_split(self) -> bool:
        return self.part != contract.PART_WHOLE


def describe(path: str | Path) -> ArtifactInfo:
    """Read an artifact's facts: an `.onnx` model's metadata and output width, or a plan's sidecar.

    Raises ArtifactError, one line, for an unknown suffix, a missing file, a file that is not ONNX,
    a damaged or missing sidecar, a model without the `stam.*` metadata or with an unknown part.
    """
    path = check_path(path)
    if path.suffix.lower() in PLAN_SUFFIXES:
        sidecar = Sidecar.read(path)
        classes = len(contract.labels_from_metadata(sidecar.metadata)) or None
        profile = sidecar.profile
        return _info(path, KIND_PLAN, dict(sidecar.metadata), classes, profile.batch, profile.frames, sidecar)
    from runtime.onnx_io import proto_metadata

    proto = load_onnx(path, weights=False)
    metadata = proto_metadata(proto)
    contract.check_metadata(metadata, str(path))
    return _info(path, KIND_ONNX, metadata, _onnx_classes(proto, metadata), None, None, None)


def check_path(path: str | Path) -> Path:
    """The artifact's path when its suffix is known and the file exists, else the one error for each case."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in ONNX_SUFFIXES + PLAN_SUFFIXES:
        kind = repr(suffix) if suffix else "(no suffix)"
        raise ArtifactError(f"{path}: unknown artifact type {kind} (expected .onnx, .plan or .engine)")
    if not path.is_file():
        raise ArtifactError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    return path


def not_loadable(path: str | Path, reason: str) -> ArtifactError:
    """The one error for an `.onnx` file that no ONNX reader can load (the backends raise it too)."""
    return ArtifactError(f"{path}: not a loadable ONNX model ({reason})")


def load_onnx(path: str | Path, *, weights: bool) -> onnx.ModelProto:
    """Parse an ONNX file (its external weights only when `weights`); a damaged file is `not_loadable`."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        proto = onnx.load(str(path), load_external_data=weights)
    except (DecodeError, OSError, ValueError) as error:
        raise not_loadable(path, type(error).__name__) from None
    if not proto.graph.node:  # an empty or truncated file parses as an empty model
        raise not_loadable(path, "no graph")
    return proto


def read_metadata(path: str | Path) -> dict[str, str]:
    """An artifact's `stam.*` metadata: `describe(path).metadata`."""
    return describe(path).metadata


def _onnx_classes(proto: onnx.ModelProto, metadata: dict[str, str]) -> int | None:
    """The logits width from the graph's output (else the labels); None for a frames part."""
    outputs = {tensor.name: tensor.type.tensor_type.shape.dim for tensor in proto.graph.output}
    dims = outputs.get(contract.OUTPUT_NAME)
    if dims is None:
        return None
    classes = (dims[1].dim_value if len(dims) == 2 else 0) or len(contract.labels_from_metadata(metadata))
    return classes or None


def _info(
    path: Path,
    kind: str,
    metadata: dict[str, str],
    classes: int | None,
    batch: DimRange | None,
    frames: DimRange | None,
    sidecar: Sidecar | None,
) -> ArtifactInfo:
    part = metadata.get(contract.META_PART, contract.PART_WHOLE)
    if part not in PARTS:
        raise ArtifactError(f"{path}: unknown split part {part!r}")
    partner = None if part == contract.PART_WHOLE else _partner(path, metadata)
    return ArtifactInfo(path, kind, part, metadata, classes, batch, frames, partner, sidecar)


def _partner(path: Path, metadata: dict[str, str]) -> Path | None:
    """Where the other part of a split pair should be: beside this one, under the name it records
    (a plan's sidecar keeps its ONNX partner's name, so the suffix follows this file's)."""
    name = metadata.get(contract.META_PARTNER)
    if not name:
        return None
    other = path.with_name(name)
    return other if other.suffix.lower() == path.suffix.lower() else path.with_name(other.stem + path.suffix)


__all__ = [
    "KIND_ONNX",
    "KIND_PLAN",
    "ONNX_SUFFIXES",
    "PARTS",
    "PLAN_SUFFIXES",
    "ArtifactInfo",
    "check_path",
    "describe",
    "load_onnx",
    "not_loadable",
    "read_metadata",
]
