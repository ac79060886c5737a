"""The OpenVINO backend: stam-deploy ONNX graphs on the CPU with OpenVINO's kernels (fp32, bf16, INT8 Q/DQ).

Why a second CPU backend: OpenVINO's CPU plugin ran STAM-16 fp32 faster than ONNX Runtime on the
same cores (docs/performance.md, "CPU"), and it executes the Q/DQ graphs of `stam-calibrate` as they are.

Exactness first. The CPU plugin picks bf16 by itself on CPUs that have it (AMX, avx512_bf16), which
moves logits by ~1e-2; so the inference precision is always set explicitly: f32 unless bf16 is asked
for, and bf16 on a CPU without it is refused in one line rather than silently run at f32 under a
bf16 label. Dynamic activation quantization is switched off for the same reason.

Compiled models are cached (OpenVINO's CACHE_DIR, under the user cache) so that a second start skips
compilation. `openvino` is imported on first use only: the runtime works without the extra.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from runtime import contract
from runtime.artifact import load_onnx
from runtime.backends.base import Model
from runtime.backends.signature import check_signature, dim_range, onnx_inputs
from runtime.errors import ArtifactError, MissingDependencyError, StamError, error_line

EXTRA_HINT = "pip install -e '.[openvino]'"
DEVICE = "CPU"
PRECISIONS = ("fp32", "bf16", "auto")  # auto: bf16 where the CPU has it, else fp32
HINTS = ("latency", "throughput")
_INFERENCE_PRECISION = {"fp32": "f32", "bf16": "bf16"}


def import_openvino() -> Any:
    """The `openvino` module (`Any`: it ships no type information), or one line naming the extra."""
    try:
        import openvino
    except ImportError:
        raise MissingDependencyError(f"the OpenVINO backend needs the openvino extra: {EXTRA_HINT}") from None
    return openvino


@lru_cache(maxsize=1)
def is_available() -> bool:
    """Whether `openvino` imports here (what `--backend auto` asks)."""
    try:
        import_openvino()
    except MissingDependencyError:
        return False
    return True


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "stam-deploy" / "openvino"


@dataclass(frozen=True)
class OpenVinoSettings:
    """How the model is compiled: latency (one stream, all cores on one request) or throughput
    (several streams; `run` splits a batch over them), thread and stream counts, the model cache."""

    hint: str = "latency"
    threads: int | None = None  # INFERENCE_NUM_THREADS; None: one per core
    streams: int | None = None  # NUM_STREAMS; None: the hint's choice
    cache_dir: Path | None = field(default_factory=default_cache_dir)  # None: compile every time

    def __post_init__(self) -> None:
        if self.hint not in HINTS:
            raise StamError(f"OpenVINO hint must be one of {', '.join(HINTS)}, got {self.hint!r}")
        for name in ("threads", "streams"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise StamError(f"OpenVINO {name} must be a positive integer, got {value}")


def resolve_precision(requested: str, capabilities: Sequence[str]) -> str:
    """fp32 or bf16 from the request and the CPU plugin's OPTIMIZATION_CAPABILITIES; bf16 refused without BF16."""
    if requested not in PRECISIONS:
        raise StamError(f"precision must be one of {', '.join(PRECISIONS)} on OpenVINO, got {requested!r}")
    has_bf16 = "BF16" in capabilities
    if requested == "auto":
        return "bf16" if has_bf16 else "fp32"
    if requested == "bf16" and not has_bf16:
        raise StamError(
            f"bf16 needs a CPU with avx512_bf16 or AMX; OpenVINO's CPU plugin offers only "
            f"{', '.join(capabilities)} here (use --precision fp32)"
        )
    return requested


def compile_config(precision: str, settings: OpenVinoSettings) -> dict[str, str]:
    """The CPU plugin's properties for one compile: every choice that changes results is explicit."""
    config = {
        "INFERENCE_PRECISION_HINT": _INFERENCE_PRECISION[precision],
        "PERFORMANCE_HINT": settings.hint.upper(),
        "DYNAMIC_QUANTIZATION_GROUP_SIZE": "0",
    }
    if settings.threads is not None:
        config["INFERENCE_NUM_THREADS"] = str(settings.threads)
    if settings.streams is not None:
        config["NUM_STREAMS"] = str(settings.streams)
    if settings.cache_dir is not None and _usable_cache(settings.cache_dir):
        config["CACHE_DIR"] = str(settings.cache_dir)
    return config


def _usable_cache(folder: Path) -> bool:
    """A cache folder that cannot be created only costs start-up time: compile without it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


class OpenVinoModel(Model):
    """A stam-deploy ONNX model compiled by OpenVINO for the CPU, at fp32 (default) or bf16."""

    backend = "openvino"

    def __init__(self, path: str | Path, precision: str = "fp32", settings: OpenVinoSettings | None = None):
        ov = import_openvino()
        path = Path(path)
        proto = load_onnx(path, weights=False)
        check_signature(onnx_inputs(proto.graph), [o.name for o in proto.graph.output], str(path))
        batch, frames = onnx_inputs(proto.graph)[0].shape[:2]
        super().__init__(str(path), {p.key: p.value for p in proto.metadata_props}, dim_range(batch), dim_range(frames))
        del proto
        core = ov.Core()
        self.settings = settings or OpenVinoSettings()
        self.execution = resolve_precision(precision, core.get_property(DEVICE, "OPTIMIZATION_CAPABILITIES"))
        try:
            self._compiled: Any = core.compile_model(str(path), DEVICE, compile_config(self.execution, self.settings))
        except RuntimeError as error:
            raise ArtifactError(f"{path}: OpenVINO cannot compile this model ({error_line(error)})") from None
        self._logits = self._compiled.output(contract.OUTPUT_NAME)
        self._request = self._compiled.create_infer_request()
        self._queue: Any = None

    @property
    def compiled(self) -> Any:
        if self._compiled is None:
            raise ArtifactError(f"{self.path}: model is closed")
        return self._compiled

    @property
    def inference_precision(self) -> str:
        """What the compiled model really runs its float math in: "f32" or "bf16" (read back from OpenVINO)."""
        return str(self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name())

    @property
    def streams(self) -> int:
        return int(self.compiled.get_property("NUM_STREAMS"))

    @property
    def threads(self) -> int:
        return int(self.compiled.get_property("INFERENCE_NUM_THREADS"))

    def _run(self, frames: NDArray[np.float32]) -> NDArray[np.float32]:
        compiled = self.compiled
        if self.settings.hint == "throughput" and len(frames) > 1 and self.streams > 1:
            return self._run_on_streams(compiled, frames)
        result = self._request.infer({0: frames}, share_inputs=True)
        return np.array(result[self._logits], dtype=np.float32)

    def _run_on_streams(self, compiled: Any, frames: NDArray[np.float32]) -> NDArray[np.float32]:
        """One video per request, as many requests in flight as the compiled model has streams."""
        from openvino import AsyncInferQueue

        if self._queue is None:
            self._queue = AsyncInferQueue(compiled, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        rows: dict[int, NDArray[np.float32]] = {}  # video index -> its logits (1, C)

        def keep(request: Any, index: int) -> None:
            rows[index] = np.array(request.get_tensor(self._logits).data, dtype=np.float32)

        self._queue.set_callback(keep)
        for index in range(len(frames)):
            self._queue.start_async({0: frames[index : index + 1]}, userdata=index, share_inputs=True)
        self._queue.wait_all()
        return np.concatenate([rows[index] for index in range(len(frames))])

    def close(self) -> None:
        self._queue = None
        self._request = None
        self._compiled = None
