"""Torch-free ONNX file helpers shared by the exporter, `stam-build`, `stam-calibrate` and the runtime.

In `runtime/` (which imports neither torch nor `export/`) so that `export/` and `calibration/` may both use them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnx

from runtime.errors import ArtifactError

_TWO_GIB = 2**31


def set_metadata(proto: onnx.ModelProto, metadata: dict[str, str]) -> None:
    """Replace existing keys, keep others (a calibrated model keeps its source's labels)."""
    kept = [prop for prop in proto.metadata_props if prop.key not in metadata]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)


def proto_metadata(proto: onnx.ModelProto) -> dict[str, str]:
    """The metadata of a model already in memory (files are read by `runtime.artifact.describe`)."""
    return {prop.key: prop.value for prop in proto.metadata_props}


def save_single_file(proto: onnx.ModelProto, path: Path) -> None:
    """One file when it fits ONNX's 2 GiB protobuf limit, else weights beside it in `NAME.data`."""
    large = proto.ByteSize() >= _TWO_GIB if _has_no_external_data(proto) else True
    onnx.save_model(proto, str(path), save_as_external_data=large, location=f"{path.name}.data")
    onnx.checker.check_model(str(path))


def ensure_writable(path: Path) -> None:
    """Fail before minutes of export, not after; leaves no file behind."""
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ArtifactError(f"{path}: output directory {directory} does not exist")
    existed = path.exists()
    try:
        with open(path, "ab"):
            pass
    except OSError as error:
        raise ArtifactError(f"{path}: cannot write output ({error.strerror})") from None
    if not existed:
        path.unlink()


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of an artifact, read in blocks: names the exact model a result or a plan came from."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _has_no_external_data(proto: onnx.ModelProto) -> bool:
    return not any(init.data_location == onnx.TensorProto.EXTERNAL for init in proto.graph.initializer)
