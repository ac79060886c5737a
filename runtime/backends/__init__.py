"""Backend dispatch: `open_model(path)` runs a `.onnx` on OpenVINO or ONNX Runtime and a plan on TensorRT.

`backend="auto"` (the default) picks, for an ONNX model: ONNX Runtime when it has a GPU provider or
`providers` are given; ONNX Runtime for FP8 Q/DQ graphs (no CPU has FP8 math: ONNX Runtime simulates
the quantization exactly as written, the reference the README's FP8 notes describe); INT8 Q/DQ
graphs on ONNX Runtime where the CPU lacks VNNI/AMX int8 dot products (`runtime.cpu`): both engines'
integer kernels lose accuracy there (max logit error 2.8 with OpenVINO on stam_tiny), and ONNX
Runtime then runs the graph as simulated quantization, exact (0.14); else OpenVINO when installed
(fp32 within 1e-4 of ONNX Runtime because its precision is set explicitly; 1.08-1.15x faster on an
idle AVX2 Zen 3, 1.47x on AVX-512); else ONNX Runtime. A plan always runs on TensorRT.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from runtime import cpu
from runtime.artifact import KIND_PLAN, ONNX_SUFFIXES, PLAN_SUFFIXES, ArtifactInfo, describe
from runtime.backends.base import Model, check_input
from runtime.errors import StamError

if TYPE_CHECKING:
    from runtime.backends.openvino import OpenVinoSettings

BACKENDS = ("auto", "onnxruntime", "openvino", "tensorrt")
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
ONNX_RUNTIME_PRECISIONS = ("fp8",)  # artifact precisions `auto` keeps on ONNX Runtime


def open_model(
    path: str | Path,
    *,
    backend: str = "auto",
    precision: str = "fp32",
    providers: Sequence[str] | None = None,
    openvino: OpenVinoSettings | None = None,
) -> Model:
    """Open an artifact on `backend` ("auto", "onnxruntime", "openvino" or "tensorrt").

    `precision` is the float math the backend may run in: "fp32" (default: the artifact's own
    precision, nothing lowered), "bf16" or "auto" (bf16 where the CPU has it), the last two on
    OpenVINO only. `providers` choose ONNX Runtime's execution providers; `openvino` carries
    OpenVINO's latency/throughput hint, threads, streams and cache folder. Backends are imported
    here, on demand, so that using one never requires another's library. The file is described
    first (`runtime.artifact.describe`), so a damaged or foreign file fails with the same line
    whichever backend would have run it.
    """
    info = describe(path)
    path = info.path
    chosen = resolve_backend(info, backend, precision, providers)
    if providers and chosen != "onnxruntime":
        raise StamError(f"{path}: providers apply to ONNX Runtime; this artifact runs on {chosen}")
    if openvino is not None and chosen != "openvino":
        raise StamError(f"{path}: OpenVINO settings given, but the model runs on {chosen}")
    if precision != "fp32" and chosen != "openvino":
        raise StamError(
            f"precision {precision!r} runs on OpenVINO only ({chosen} runs the artifact's own "
            f"precision; use --backend openvino or --precision fp32)"
        )
    if chosen == "onnxruntime":
        from runtime.backends.ort import OrtModel

        return OrtModel(path, providers=providers)
    if chosen == "openvino":
        from runtime.backends.openvino import OpenVinoModel

        return OpenVinoModel(path, precision, openvino)
    from runtime.backends.trt import TrtModel

    return TrtModel(path)


def resolve_backend(
    artifact: str | Path | ArtifactInfo, backend: str, precision: str, providers: Sequence[str] | None
) -> str:
    """The backend that will run `artifact`: the requested one if it can, else `auto`'s choice (module docstring)."""
    if backend not in BACKENDS:
        raise StamError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    info = artifact if isinstance(artifact, ArtifactInfo) else describe(artifact)
    path, is_plan = info.path, info.kind == KIND_PLAN
    if is_plan and backend not in ("auto", "tensorrt"):
        raise StamError(f"{path}: a TensorRT plan runs on TensorRT only, not on {backend}")
    if not is_plan and backend == "tensorrt":
        raise StamError(f"{path}: TensorRT runs plans; build one first (stam-build {path})")
    if is_plan:
        return "tensorrt"
    if backend != "auto":
        return backend
    return _auto_for_onnx(info, precision, providers)


def _auto_for_onnx(info: ArtifactInfo, precision: str, providers: Sequence[str] | None) -> str:
    from runtime.backends.openvino import is_available

    if precision != "fp32":
        return "openvino"  # bf16 exists on OpenVINO only; it says so when not installed
    if providers or _ort_has_gpu() or not is_available():
        return "onnxruntime"
    artifact = info.precision
    if artifact in ONNX_RUNTIME_PRECISIONS or (artifact == "int8" and cpu.int8_saturates()):
        return "onnxruntime"
    return "openvino"


def _ort_has_gpu() -> bool:
    import onnxruntime

    return any(name in onnxruntime.get_available_providers() for name in GPU_PROVIDERS)


__all__ = ["BACKENDS", "ONNX_SUFFIXES", "PLAN_SUFFIXES", "Model", "check_input", "open_model", "resolve_backend"]
