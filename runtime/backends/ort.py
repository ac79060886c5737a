"""The ONNX Runtime backend: opens a stam-deploy `.onnx`, checks its contract, picks the best provider."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

from runtime import contract, cpu
from runtime.artifact import describe, not_loadable
from runtime.backends.base import Model
from runtime.backends.signature import TensorSpec, check_signature, dim_range
from runtime.errors import ArtifactError, MissingDependencyError, error_line

# Best first. Azure and other remote providers are never picked on their own.
PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")

_LOAD_ERRORS = (
    ort_errors.Fail,
    ort_errors.InvalidArgument,
    ort_errors.InvalidGraph,
    ort_errors.InvalidProtobuf,
    ort_errors.NoModel,
    ort_errors.NoSuchFile,
    ort_errors.NotImplemented,
    ort_errors.RuntimeException,
)


def choose_providers(requested: Sequence[str] | None, available: Sequence[str]) -> list[str]:
    """The requested providers (each must be present), else the preferred ones that are present."""
    if requested:
        missing = [name for name in requested if name not in available]
        if missing:
            raise MissingDependencyError(
                f"ONNX Runtime provider {', '.join(missing)} is not available here "
                f"(available: {', '.join(available)}; GPU providers need onnxruntime-gpu)"
            )
        return list(requested)
    return [name for name in PREFERRED_PROVIDERS if name in available]


def session_options(simulate_quantization: bool = False) -> ort.SessionOptions:
    """All graph optimizations; thread counts left to ONNX Runtime (one intra-op thread per core).

    `simulate_quantization` stops at the basic level, where Q/DQ pairs run as float arithmetic
    instead of being fused into integer kernels: exact, at fp32 speed.
    """
    options = ort.SessionOptions()
    level = "ORT_ENABLE_BASIC" if simulate_quantization else "ORT_ENABLE_ALL"
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    options.log_severity_level = 3  # errors only: provider fallbacks are reported by `providers`
    return options


def must_simulate_int8(path: Path, chosen: Sequence[str]) -> bool:
    """An INT8 graph on the CPU provider of an x86 CPU without VNNI: the fused kernels would saturate."""
    if chosen[:1] != ["CPUExecutionProvider"] or not cpu.int8_saturates():
        return False
    try:
        precision = describe(path).precision
    except ArtifactError:
        return False  # not readable: ONNX Runtime will say why
    if precision != "int8":
        return False
    warnings.warn(
        f"{path}: this CPU has no VNNI, where ONNX Runtime's INT8 kernels saturate; running the "
        "Q/DQ graph as simulated quantization (exact, fp32 speed)",
        stacklevel=4,
    )
    return True


def check_io(session: ort.InferenceSession, source: str) -> None:
    """The contract's I/O check (`signature.check_signature`) on what the session reports."""
    inputs = [TensorSpec(i.name, list(i.shape), i.type) for i in session.get_inputs()]
    check_signature(inputs, [o.name for o in session.get_outputs()], source)


def open_session(path: Path, providers: Sequence[str] | None) -> ort.InferenceSession:
    chosen = choose_providers(providers, ort.get_available_providers())
    try:
        options = session_options(simulate_quantization=must_simulate_int8(path, chosen))
        return ort.InferenceSession(str(path), sess_options=options, providers=chosen)
    except _LOAD_ERRORS as error:
        raise not_loadable(path, error_line(error)) from None


class OrtModel(Model):
    """A stam-deploy ONNX model on ONNX Runtime (TensorRT EP, CUDA EP or CPU, best present first)."""

    backend = "onnxruntime"

    def __init__(self, path: str | Path, providers: Sequence[str] | None = None):
        path = Path(path)
        self._session: ort.InferenceSession | None = open_session(path, providers)
        check_io(self._session, str(path))
        metadata = self._session.get_modelmeta().custom_metadata_map
        batch, frames = self._session.get_inputs()[0].shape[:2]
        super().__init__(str(path), metadata, dim_range(batch), dim_range(frames))

    @property
    def providers(self) -> list[str]:
        """The providers the session really uses (ONNX Runtime may drop one that fails to load)."""
        return list(self.session.get_providers())

    @property
    def session(self) -> ort.InferenceSession:
        if self._session is None:
            raise ArtifactError(f"{self.path}: model is closed")
        return self._session

    def _run(self, frames: NDArray[np.float32]) -> NDArray[np.float32]:
        (logits,) = self.session.run([contract.OUTPUT_NAME], {contract.INPUT_NAME: frames})
        return np.asarray(logits, dtype=np.float32)

    def close(self) -> None:
        self._session = None
