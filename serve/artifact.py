"""What a model repository needs to know about an artifact, read without loading it.

`stam-triton-repo` must work for a TensorRT plan on a machine without TensorRT or a GPU (the
repository is usually written on a build host and served elsewhere), so this reads the ONNX
graph's metadata and I/O, or a plan's sidecar, and never opens an inference session.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runtime import contract
from runtime.backends import ONNX_SUFFIXES, PLAN_SUFFIXES
from runtime.contract import DimRange, Sidecar
from runtime.errors import ArtifactError


@dataclass(frozen=True)
class ArtifactInfo(contract.MetadataFacts):
    """An artifact's kind, metadata and input ranges; `profile` ranges only for plans."""

    path: Path
    kind: str  # "onnx" or "plan"
    metadata: dict[str, str]
    num_classes: int
    batch_range: DimRange | None
    frames_range: DimRange | None


def describe(path: str | Path) -> ArtifactInfo:
    """Read an `.onnx` model's metadata and output width, or a plan's sidecar."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in ONNX_SUFFIXES + PLAN_SUFFIXES:
        raise ArtifactError(
            f"{path}: unknown artifact type {suffix or '(no suffix)'!r} (expected .onnx, .plan or .engine)"
        )
    if not path.is_file():
        raise ArtifactError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    return _describe_onnx(path) if suffix in ONNX_SUFFIXES else _describe_plan(path)


def _describe_onnx(path: Path) -> ArtifactInfo:
    import onnx

    from runtime.onnx_io import read_metadata

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # onnx raises DecodeError, OSError or ValueError depending on the damage
        raise ArtifactError(f"{path}: not a loadable ONNX model ({type(error).__name__})") from None
    metadata = read_metadata(proto)
    contract.check_metadata(metadata, str(path))
    dims = {
        tensor.name: [d.dim_value or None for d in tensor.type.tensor_type.shape.dim] for tensor in proto.graph.output
    }
    logits = dims.get(contract.OUTPUT_NAME)
    if not logits or len(logits) != 2:
        raise ArtifactError(f"{path}: not a stam-deploy model (no output {contract.OUTPUT_NAME!r} [batch, classes])")
    classes = logits[1] or len(contract.labels_from_metadata(metadata))
    if not classes:
        raise ArtifactError(f"{path}: the number of classes is neither in the graph nor in the labels")
    return ArtifactInfo(path, "onnx", metadata, classes, None, None)


def _describe_plan(path: Path) -> ArtifactInfo:
    sidecar = Sidecar.read(path)
    classes = len(contract.labels_from_metadata(sidecar.metadata))
    if not classes:
        raise ArtifactError(f"{path}: the sidecar's metadata has no labels, so the number of classes is unknown")
    return ArtifactInfo(path, "plan", sidecar.metadata, classes, sidecar.profile.batch, sidecar.profile.frames)
