"""The TensorRT backend: a plan plus its sidecar, run with the v3 API on one cuda-python stream.

`TrtRunner` owns the engine, context, stream and buffers (activate / infer / deactivate); `TrtModel`
wraps it in the `Model` interface. Requests are checked against the sidecar's profile before any
CUDA call. tensorrt and cuda-python are imported on activation only, so this module (and the sizing
and profile logic in it) works without them.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from runtime import contract
from runtime.backends.base import Model
from runtime.backends.cuda import GPU_EXTRA_HINT, Cuda, CudaError, DeviceBuffer, HostBuffer, Stream, import_cudart
from runtime.contract import Sidecar
from runtime.errors import ArtifactError, MissingDependencyError, ShapeError

IO_DTYPE = np.dtype(np.float32)  # every precision keeps float32 I/O (DESIGN.md, Artifacts)


def import_tensorrt() -> ModuleType:
    try:
        import tensorrt
    except ImportError:
        raise MissingDependencyError(
            f"TensorRT is not installed ({GPU_EXTRA_HINT}); or run the .onnx artifact with ONNX Runtime"
        ) from None
    return tensorrt


def tensor_nbytes(shape: tuple[int, ...], dtype: np.dtype = IO_DTYPE) -> int:
    """Bytes of a dense tensor of `shape`."""
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


def grown_capacity(current: int, needed: int, limit: int) -> int:
    """Buffer size after a request of `needed` bytes: unchanged if it fits, else at least doubled
    (few reallocations over a run of growing shapes) but never beyond the profile's largest request."""
    if needed <= current:
        return current
    return max(needed, min(2 * current, limit))


def input_limit(sidecar: Sidecar) -> int:
    """Bytes of the largest input the profile admits."""
    profile = sidecar.profile
    return tensor_nbytes(contract.input_shape(profile.batch.max, profile.frames.max))


def mismatch_message(path: str, sidecar: Sidecar, trt_version: str, gpu_name: str, capability: str) -> str:
    """Why a plan failed to deserialize, in terms the user can act on."""
    return (
        f"{path}: cannot load the plan: it was built with TensorRT {sidecar.tensorrt_version} for "
        f"{sidecar.gpu_name} (compute capability {sidecar.compute_capability}); this machine has "
        f"TensorRT {trt_version} and {gpu_name} (compute capability {capability}). "
        f"Rebuild it here with stam-build"
    )


class PinnedTensor:
    """A page-locked host buffer and a device buffer of the same size, grown on demand and reused."""

    def __init__(self, cuda: Cuda, limit: int):
        self.cuda, self.limit = cuda, limit
        self.host: HostBuffer | None = None
        self.device: DeviceBuffer | None = None

    @property
    def capacity(self) -> int:
        return self.host.nbytes if self.host is not None else 0

    def reserve(self, nbytes: int) -> None:
        """Make room for `nbytes`; reallocates (both sides) only when it does not fit."""
        size = grown_capacity(self.capacity, nbytes, self.limit)
        if size == self.capacity:
            return
        self.free()
        self.host = HostBuffer(self.cuda, size)
        self.device = DeviceBuffer(self.cuda, size)

    def free(self) -> None:
        for buffer in (self.host, self.device):
            if buffer is not None:
                buffer.free()
        self.host = self.device = None


class TrtRunner:
    """Runs one plan: activate (load, allocate), infer (any number of times), deactivate (free all)."""

    def __init__(self, plan_path: str | Path, sidecar: Sidecar):
        self.path = str(plan_path)
        self.sidecar = sidecar
        self._state: dict[str, Any] = {}

    @property
    def is_active(self) -> bool:
        return bool(self._state)

    def activate(self) -> "TrtRunner":
        if self.is_active:
            return self
        trt = import_tensorrt()
        cuda = Cuda(import_cudart())
        runtime, engine = self._load_engine(trt, cuda)
        check_engine_io(trt, engine, self.path)
        context = engine.create_execution_context()
        if context is None:
            raise CudaError(f"{self.path}: TensorRT could not create an execution context (GPU memory?)")
        self._state = {"runtime": runtime, "engine": engine, "context": context, "cuda": cuda}
        self._state["stream"] = Stream(cuda)
        self._state["input"] = PinnedTensor(cuda, input_limit(self.sidecar))
        num_classes = engine.get_tensor_shape(contract.OUTPUT_NAME)[1]
        output_limit = tensor_nbytes((self.sidecar.profile.batch.max, num_classes))
        self._state["output"] = PinnedTensor(cuda, output_limit)
        return self

    def _load_engine(self, trt: ModuleType, cuda: Cuda) -> tuple[Any, Any]:
        try:
            data = Path(self.path).read_bytes()
        except OSError as error:
            raise ArtifactError(f"{self.path}: cannot read the plan ({error.strerror})") from None
        runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
        engine = runtime.deserialize_cuda_engine(data)
        if engine is None:
            gpu_name, capability = cuda.device_description()
            raise ArtifactError(mismatch_message(self.path, self.sidecar, trt.__version__, gpu_name, capability))
        return runtime, engine

    def infer(self, frames: np.ndarray) -> np.ndarray:
        """Logits for float32 frames (B, T, 3, 224, 224), C-contiguous; one stream sync per call."""
        batch, num_frames = frames.shape[:2]
        self.sidecar.profile.check(batch, num_frames)  # before any CUDA call
        if not self.is_active:
            raise RuntimeError("TrtRunner.infer called before activate()")
        state = self._state
        context, stream = state["context"], state["stream"]
        if not context.set_input_shape(contract.INPUT_NAME, tuple(frames.shape)):
            raise ShapeError(f"TensorRT refused input shape {tuple(frames.shape)} for {self.path}")
        output_shape = tuple(context.get_tensor_shape(contract.OUTPUT_NAME))
        inputs, outputs = state["input"], state["output"]
        inputs.reserve(frames.nbytes)
        outputs.reserve(tensor_nbytes(output_shape))
        inputs.host.view(frames.shape, IO_DTYPE)[...] = frames
        stream.copy_to_device(inputs.device, inputs.host, frames.nbytes)
        context.set_tensor_address(contract.INPUT_NAME, inputs.device.ptr)
        context.set_tensor_address(contract.OUTPUT_NAME, outputs.device.ptr)
        if not context.execute_async_v3(stream.ptr):
            raise CudaError(f"TensorRT failed to enqueue {self.path} (see the TensorRT log above)")
        stream.copy_to_host(outputs.host, outputs.device, tensor_nbytes(output_shape))
        stream.synchronize()
        return outputs.host.view(output_shape, IO_DTYPE).copy()

    def deactivate(self) -> None:
        """Free buffers and stream, then drop context, engine and runtime (in that order)."""
        state, self._state = self._state, {}
        for key in ("input", "output", "stream"):
            if key in state:
                state[key].free()
        for key in ("context", "engine", "runtime"):
            state.pop(key, None)

    def __enter__(self) -> "TrtRunner":
        return self.activate()

    def __exit__(self, *exc_info: object) -> None:
        self.deactivate()


def check_engine_io(trt: ModuleType, engine: Any, source: str) -> None:
    """The engine must take `frames` and return `logits`, both float32, looked up by name."""
    tensors = {}
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        tensors[name] = (engine.get_tensor_mode(name), engine.get_tensor_dtype(name))
    expected = {
        contract.INPUT_NAME: (trt.TensorIOMode.INPUT, trt.DataType.FLOAT),
        contract.OUTPUT_NAME: (trt.TensorIOMode.OUTPUT, trt.DataType.FLOAT),
    }
    if tensors != expected:
        found = ", ".join(f"{name} ({mode}, {dtype})" for name, (mode, dtype) in tensors.items())
        expectation = "expected float32 frames -> logits"
        raise ArtifactError(f"{source}: not a stam-deploy engine ({expectation}; found {found})")


class TrtModel(Model):
    """A TensorRT plan behind the `Model` interface; ranges and precision come from the sidecar."""

    backend = "tensorrt"

    def __init__(self, path: str | Path):
        sidecar = Sidecar.read(path)
        super().__init__(str(path), sidecar.metadata, sidecar.profile.batch, sidecar.profile.frames)
        self.sidecar = sidecar
        self._runner = TrtRunner(path, sidecar).activate()

    @property
    def precision(self) -> str:
        return self.sidecar.precision

    def check_request(self, batch: int, frames: int) -> None:
        self.sidecar.profile.check(batch, frames)

    def _run(self, frames: np.ndarray) -> np.ndarray:
        return self._runner.infer(frames)

    def close(self) -> None:
        self._runner.deactivate()
