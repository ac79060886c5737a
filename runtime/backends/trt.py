"""The TensorRT backend: a plan plus its sidecar, run with the v3 API on one cuda-python stream.

One backend for both libraries: the sidecar's `target` names the module (`tensorrt` or
`tensorrt_rtx`, the same v3 Python API) and the runner is handed that module. `TrtRunner` owns the
engine, context, stream and buffers (activate / infer / deactivate); `TrtModel` wraps a whole-model
plan in the `Model` interface, and the runner alone runs the parts of a split pair (tensor names
come from the engine, checked against the sidecar). Requests are checked against the sidecar's
profile, and the machine for a driver and GPU, before anything is loaded or allocated. tensorrt
and cuda-python are imported on activation only, so this module works without them.
"""

from __future__ import annotations

import functools
import importlib
import logging
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from runtime import contract
from runtime.backends.base import Model
from runtime.backends.cuda import (
    Cuda,
    CudaError,
    DeviceBuffer,
    GpuUnavailableError,
    HostBuffer,
    Stream,
    driver_problem,
    import_cudart,
)
from runtime.contract import Profile, Sidecar
from runtime.errors import ArtifactError, MissingDependencyError, ShapeError, StamError

LOG = logging.getLogger("stam.tensorrt")
LOG.addHandler(logging.NullHandler())  # the library's warnings reach users who configure logging
IO_DTYPE = np.dtype(np.float32)  # every precision keeps float32 I/O (docs/architecture.md, "Artifacts")
# module -> (what users call it, the extra that installs it, the oldest version with the v3 API used here)
LIBRARIES = {
    "tensorrt": ("TensorRT", "gpu", (10, 0)),
    "tensorrt_rtx": ("TensorRT-RTX", "rtx", (1, 0)),
}
EXTRA_NOTES = {"gpu": " (CUDA 13 driver; '.[gpu-cu12]' for a CUDA 12 driver)"}


def import_tensorrt(library: str = "tensorrt") -> ModuleType:
    """The TensorRT library for a target (`tensorrt`, `rtx`) or module name (`tensorrt`, `tensorrt_rtx`).

    The one import of either library in the package; a missing one is a single line naming the extra.
    """
    module_name = contract.TRT_TARGETS.get(library, library)
    if module_name not in LIBRARIES:
        raise StamError(f"unknown TensorRT library {library!r} (known: {', '.join(contract.TRT_TARGETS)})")
    title, extra, _ = LIBRARIES[module_name]
    try:
        return importlib.import_module(module_name)
    except ImportError:
        raise MissingDependencyError(
            f"{title} ({module_name}) is not installed: this needs the {extra} extra: "
            f"pip install -e '.[{extra}]'{EXTRA_NOTES.get(extra, '')}"
        ) from None


@functools.cache
def library_logger(trt: ModuleType) -> Any:
    """The process's one `trt.ILogger` for this library: it keeps errors for the failing step's message
    and sends warnings to logging. One per library because TensorRT keeps the first logger a process
    registers and ignores later ones; `start()` forgets the errors of earlier builds."""

    # TensorRT ships no type information, so its ILogger is Any to mypy; the library requires a subclass
    logger_base: Any = trt.ILogger

    class BuildLog(logger_base):  # type: ignore[misc]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def start(self) -> BuildLog:
            self.errors.clear()
            return self

        def log(self, severity: Any, message: str) -> None:
            if severity in (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR):
                self.errors.append(" ".join(message.split()))
            elif severity == trt.ILogger.Severity.WARNING:
                LOG.warning(message)
            else:
                LOG.debug(message)

        def reason(self) -> str:
            """The library's first error that is not CUDA's "no driver" (a CPU-only RTX build logs those and goes on)."""
            useful = [text for text in self.errors if "Cuda Runtime" not in text] or self.errors
            return useful[0] if useful else "no detail given"

    return BuildLog()


def library_name(trt: ModuleType) -> str:
    """`tensorrt` or `tensorrt_rtx`: the module's own name (its bindings report the same)."""
    return trt.__name__.split(".")[0]


def target_of(trt: ModuleType) -> str:
    """The `stam-build --target` whose plans this library builds and runs."""
    name = library_name(trt)
    return next((target for target, module in contract.TRT_TARGETS.items() if module == name), name)


def version_tuple(version: str) -> tuple[int, int]:
    """(major, minor) of a version string such as "10.4.0.26"."""
    parts = (version.split(".") + ["0"])[:2]
    try:
        return int(parts[0]), int(parts[1])
    except ValueError:
        raise StamError(f"cannot read the TensorRT version {version!r}") from None


def check_library_version(trt: ModuleType) -> tuple[int, int]:
    """The library's (major, minor); refuse one older than the v3 API this package is written for."""
    title, extra, oldest = LIBRARIES.get(library_name(trt), ("TensorRT", "gpu", (10, 0)))
    version = version_tuple(trt.__version__)
    if version < oldest:
        raise MissingDependencyError(
            f"{title} {trt.__version__} is too old (needs >= {'.'.join(map(str, oldest))}): pip install -e '.[{extra}]'"
        )
    return version


def check_plan_library(trt: ModuleType, sidecar: Sidecar, path: str) -> None:
    """A plan opens only with the library that built it (plans of TensorRT and TensorRT-RTX are not interchangeable)."""
    if library_name(trt) != sidecar.library:
        raise ArtifactError(
            f"{path}: the plan was built for target {sidecar.target} ({sidecar.library} "
            f"{sidecar.tensorrt_version}) and cannot be opened with {library_name(trt)}"
        )


def require_gpu(path: str, problem: str | None = None) -> None:
    """One line, before anything is loaded, when this machine cannot run any plan."""
    problem = problem if problem is not None else driver_problem()
    if problem:
        raise GpuUnavailableError(
            f"{path}: a TensorRT plan needs an NVIDIA GPU and driver to run, and this machine "
            f"has {problem}; run the .onnx artifact with ONNX Runtime instead"
        )


def tensor_nbytes(shape: tuple[int, ...], dtype: DTypeLike = IO_DTYPE) -> int:
    """Bytes of a dense tensor of `shape`."""
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


def grown_capacity(current: int, needed: int, limit: int) -> int:
    """Buffer size after a request of `needed` bytes: unchanged if it fits, else at least doubled
    (few reallocations over a run of growing shapes) but never beyond the profile's largest request."""
    if needed <= current:
        return current
    return max(needed, min(2 * current, limit))


def input_limit(profile: Profile) -> int:
    """Bytes of the largest input the profile admits."""
    return tensor_nbytes(profile.shapes()["max"])


def mismatch_message(path: str, sidecar: Sidecar, trt_version: str, gpu_name: str, capability: str) -> str:
    """Why a plan failed to deserialize, in terms the user can act on."""
    return (
        f"{path}: cannot load the plan: it was built with {sidecar.library} {sidecar.tensorrt_version} for "
        f"{sidecar.gpu_name} (compute capability {sidecar.compute_capability}); this machine has "
        f"{sidecar.library} {trt_version} and {gpu_name} (compute capability {capability}). "
        f"Rebuild it here with stam-build"
    )


def runtime_cache_path(plan_path: str | Path) -> Path:
    return Path(f"{plan_path}.runtime_cache")


class PinnedTensor:
    """A page-locked host buffer and a device buffer of the same size, grown on demand and reused."""

    def __init__(self, cuda: Cuda, limit: int):
        self.cuda, self.limit = cuda, limit
        self.host: HostBuffer | None = None
        self.device: DeviceBuffer | None = None

    @property
    def capacity(self) -> int:
        return self.host.nbytes if self.host is not None else 0

    def reserve(self, nbytes: int) -> tuple[HostBuffer, DeviceBuffer]:
        """The (host, device) buffers with room for `nbytes`; reallocated (both sides) only when it does not fit."""
        size = grown_capacity(self.capacity, nbytes, self.limit)
        if self.host is None or self.device is None or size != self.capacity:
            self.free()
            self.host = HostBuffer(self.cuda, size)
            self.device = DeviceBuffer(self.cuda, size)
        return self.host, self.device

    def free(self) -> None:
        for buffer in (self.host, self.device):
            if buffer is not None:
                buffer.free()
        self.host = self.device = None


class RuntimeCache:
    """TensorRT-RTX compiles its kernels for the GPU at hand when a context is created (JIT); the
    runtime cache keeps them for the next process. Loaded from `NAME.plan.runtime_cache` when present
    (a cache from another GPU, driver or version is rejected by the library and rebuilt), written
    whole on deactivate; a cache that cannot be written costs only start-up time, so it warns."""

    def __init__(self, engine: Any, path: Path):
        self.path = path
        self.config = engine.create_runtime_config()
        self.cache = self.config.create_runtime_cache()
        if path.is_file() and not self.cache.deserialize(path.read_bytes()):
            warnings.warn(
                f"{path}: runtime cache rejected (another GPU, driver or TensorRT-RTX version); "
                "kernels are compiled again",
                RuntimeWarning,
                stacklevel=2,
            )
        if self.config.set_runtime_cache(self.cache) is False:
            warnings.warn(f"{path}: TensorRT-RTX refused the runtime cache", RuntimeWarning, stacklevel=2)

    def save(self) -> None:
        try:
            contract.write_atomic(self.path, bytes(memoryview(self.cache.serialize())))
        except ArtifactError as error:
            warnings.warn(f"runtime cache not saved: {error}", RuntimeWarning, stacklevel=2)


class TrtRunner:
    """Runs one plan: activate (load, allocate), infer (any number of times), deactivate (free all).

    `library` is the TensorRT module to run it with; None imports the one the sidecar names.
    """

    def __init__(self, plan_path: str | Path, sidecar: Sidecar, library: ModuleType | None = None):
        self.path = str(plan_path)
        self.sidecar = sidecar
        self.library = library
        self.input_name = sidecar.profile.input_name
        self.output_name = sidecar.profile.output_name
        self.cuda: Cuda | None = None
        self.runtime: Any = None
        self.engine: Any = None
        self.runtime_cache: RuntimeCache | None = None
        self.context: Any = None
        self.stream: Stream | None = None
        self.inputs: PinnedTensor | None = None
        self.outputs: PinnedTensor | None = None

    @property
    def is_active(self) -> bool:
        return self.context is not None

    def activate(self) -> TrtRunner:
        if self.is_active:
            return self
        require_gpu(self.path)
        trt = self.library or import_tensorrt(self.sidecar.library)
        check_plan_library(trt, self.sidecar, self.path)
        cuda = Cuda(import_cudart())
        try:
            self._open(trt, cuda)
        except BaseException:
            self.deactivate()
            raise
        return self

    def _open(self, trt: ModuleType, cuda: Cuda) -> None:
        self.cuda = cuda
        self.runtime, self.engine = load_engine(trt, cuda, self.path, self.sidecar)
        output_dims = check_engine_io(trt, self.engine, self.path, self.sidecar.profile)
        if self.sidecar.target == "rtx" and hasattr(self.engine, "create_runtime_config"):
            self.runtime_cache = RuntimeCache(self.engine, runtime_cache_path(self.path))
            context = self.engine.create_execution_context(self.runtime_cache.config)
        else:
            context = self.engine.create_execution_context()
        if context is None:
            raise CudaError(f"{self.path}: TensorRT could not create an execution context (GPU memory?)")
        self.stream = Stream(cuda)
        self.inputs = PinnedTensor(cuda, input_limit(self.sidecar.profile))
        self.outputs = PinnedTensor(cuda, tensor_nbytes((self.sidecar.profile.max_rows(), *output_dims)))
        self.context = context

    @property
    def _io(self) -> tuple[Stream, PinnedTensor, PinnedTensor]:
        """The stream and the (input, output) buffers, which only an active runner holds."""
        if not self.is_active or self.stream is None or self.inputs is None or self.outputs is None:
            raise RuntimeError("TrtRunner.infer called before activate()")
        return self.stream, self.inputs, self.outputs

    def infer(self, inputs: NDArray[np.float32]) -> NDArray[np.float32]:
        """The plan's output for a float32, C-contiguous input of its part (frames (B, T, 3, 224, 224)
        for a whole model), checked against the profile before any CUDA call."""
        self.sidecar.profile.check_shape(tuple(inputs.shape))
        return self.execute(inputs)

    def execute(self, inputs: NDArray[np.float32]) -> NDArray[np.float32]:
        """`infer` without the profile check, for callers that made it already; one stream sync per call."""
        stream, input_buffers, output_buffers = self._io
        if not self.context.set_input_shape(self.input_name, tuple(inputs.shape)):
            raise ShapeError(f"TensorRT refused input shape {tuple(inputs.shape)} for {self.path}")
        output_shape = tuple(self.context.get_tensor_shape(self.output_name))
        output_bytes = tensor_nbytes(output_shape)
        input_host, input_device = input_buffers.reserve(inputs.nbytes)
        output_host, output_device = output_buffers.reserve(output_bytes)
        input_host.view(inputs.shape, IO_DTYPE)[...] = inputs
        stream.copy_to_device(input_device, input_host, inputs.nbytes)
        self._bind(self.input_name, input_device.ptr)
        self._bind(self.output_name, output_device.ptr)
        if not self.context.execute_async_v3(stream.ptr):
            raise CudaError(f"TensorRT failed to enqueue {self.path}")
        stream.copy_to_host(output_host, output_device, output_bytes)
        stream.synchronize()
        return output_host.view(output_shape, IO_DTYPE).copy()

    def _bind(self, name: str, pointer: int) -> None:
        if not self.context.set_tensor_address(name, pointer):
            raise CudaError(f"{self.path}: TensorRT refused the device address of tensor {name!r}")

    def deactivate(self) -> None:
        """Free buffers and stream, save the runtime cache, then drop context, engine and runtime (in that order)."""
        for owner in (self.inputs, self.outputs, self.stream):
            if owner is not None:
                owner.free()
        self.inputs = self.outputs = self.stream = None
        if self.runtime_cache is not None and self.context is not None:
            self.runtime_cache.save()
        self.context = self.runtime_cache = self.engine = self.runtime = self.cuda = None

    def __enter__(self) -> TrtRunner:
        return self.activate()

    def __exit__(self, *exc_info: object) -> None:
        self.deactivate()


def load_engine(trt: ModuleType, cuda: Cuda, path: str, sidecar: Sidecar) -> tuple[Any, Any]:
    """(runtime, engine) of a plan file; a plan from another version or GPU names both builds."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ArtifactError(f"{path}: cannot read the plan ({error.strerror})") from None
    runtime = trt.Runtime(library_logger(trt).start())
    engine = runtime.deserialize_cuda_engine(data)
    if engine is None:
        gpu_name, capability = cuda.device_description()
        raise ArtifactError(mismatch_message(path, sidecar, trt.__version__, gpu_name, capability))
    return runtime, engine


def check_engine_io(trt: ModuleType, engine: Any, source: str, profile: Profile) -> tuple[int, ...]:
    """The engine must take and return the float32 tensors its sidecar's part names; returns the
    output's dims after the leading (batch or image) one, e.g. (num_classes,)."""
    tensors = {}
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        tensors[name] = (engine.get_tensor_mode(name), engine.get_tensor_dtype(name))
    expected = {
        profile.input_name: (trt.TensorIOMode.INPUT, trt.DataType.FLOAT),
        profile.output_name: (trt.TensorIOMode.OUTPUT, trt.DataType.FLOAT),
    }
    if tensors != expected:
        found = ", ".join(f"{name} ({mode}, {dtype})" for name, (mode, dtype) in tensors.items())
        expectation = f"expected float32 {profile.input_name} -> {profile.output_name}"
        raise ArtifactError(f"{source}: not a stam-deploy engine ({expectation}; found {found})")
    return tuple(int(dim) for dim in engine.get_tensor_shape(profile.output_name))[1:]


class TrtModel(Model):
    """A whole-model TensorRT plan behind the `Model` interface; ranges and precision come from the sidecar."""

    backend = "tensorrt"

    def __init__(self, path: str | Path, library: ModuleType | None = None):
        sidecar = Sidecar.read(path)
        if sidecar.profile.part != contract.PART_WHOLE:
            raise ArtifactError(
                f"{path}: the {sidecar.profile.part} part of a split pair takes "
                f"{sidecar.profile.input_name}, not videos; run it with TrtRunner or the timeline"
            )
        super().__init__(str(path), sidecar.metadata, sidecar.profile.batch, sidecar.profile.frames)
        self.sidecar = sidecar
        self._runner = TrtRunner(path, sidecar, library).activate()

    @property
    def precision(self) -> str:
        return self.sidecar.precision

    def check_request(self, batch: int, frames: int) -> None:
        """The one profile check of a request (the runner is then called without its own)."""
        self.sidecar.profile.check(batch, frames)

    def _run(self, frames: NDArray[np.float32]) -> NDArray[np.float32]:
        return self._runner.execute(frames)

    def close(self) -> None:
        self._runner.deactivate()
