"""Backend dispatch: `open_model(path)` picks ONNX Runtime or TensorRT from the artifact's suffix."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from runtime.backends.base import Model
from runtime.errors import ArtifactError, StamError

ONNX_SUFFIXES = (".onnx",)
PLAN_SUFFIXES = (".plan", ".engine")


def open_model(path: str | Path, *, providers: Sequence[str] | None = None) -> Model:
    """Open an artifact: `.onnx` on ONNX Runtime (`providers` overrides its choice), `.plan`/`.engine` on TensorRT.

    Backends are imported here, on demand, so that using one never requires the other's library.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in ONNX_SUFFIXES + PLAN_SUFFIXES:
        kind = repr(suffix) if suffix else "(no suffix)"
        raise ArtifactError(f"{path}: unknown artifact type {kind} (expected .onnx, .plan or .engine)")
    if not path.is_file():
        raise ArtifactError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    if suffix in ONNX_SUFFIXES:
        from runtime.backends.ort import OrtModel

        return OrtModel(path, providers=providers)
    if providers:
        raise StamError(f"{path}: providers apply to ONNX Runtime; a TensorRT plan runs on TensorRT only")
    from runtime.backends.trt import TrtModel

    return TrtModel(path)


__all__ = ["Model", "open_model"]
