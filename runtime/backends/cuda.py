"""cuda-python helpers for the TensorRT backend: one checked-call helper, owned buffers, one stream.

Every allocation is an object with `free()` (safe to call twice), so a runner can release all it
holds in `deactivate`. The cudart module is passed in rather than imported here, which keeps this
file importable without cuda-python and lets tests drive it with a stand-in module.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from runtime.errors import MissingDependencyError, StamError

GPU_EXTRA_HINT = (
    "pip install -e '.[gpu]' (CUDA 13 driver) or '.[gpu-cu12]' (CUDA 12 driver) on a machine with an NVIDIA GPU"
)
DRIVER_LIBRARY = "nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1"
Scalar = TypeVar("Scalar", bound=np.generic)


class CudaError(StamError):
    """A CUDA runtime call failed (out of memory, no device, driver too old)."""

    exit_code = 1


class GpuUnavailableError(StamError):
    """No NVIDIA driver or GPU on this machine: a plan cannot run here at all (exit 2, like a wrong artifact)."""


def driver_problem(library: str = DRIVER_LIBRARY) -> str | None:
    """Why nothing can run on a GPU here (no driver, driver error, no device), or None.

    Asks the CUDA driver API through ctypes, so it needs neither cuda-python nor TensorRT and
    allocates nothing: the runtime can refuse a plan in one line before loading anything.
    """
    try:
        driver = ctypes.CDLL(library)
    except OSError:
        return f"no NVIDIA driver: {library} cannot be loaded"
    status = driver.cuInit(0)
    if status != 0:
        return f"an NVIDIA driver that does not start (cuInit: {_driver_error_name(driver, status)})"
    count = ctypes.c_int(0)
    status = driver.cuDeviceGetCount(ctypes.byref(count))
    if status != 0 or count.value == 0:
        return "no NVIDIA GPU visible to the driver (check nvidia-smi and CUDA_VISIBLE_DEVICES)"
    return None


def _driver_error_name(driver: ctypes.CDLL, status: int) -> str:
    name = ctypes.c_char_p()
    if driver.cuGetErrorName(status, ctypes.byref(name)) == 0 and name.value:
        return f"{name.value.decode(errors='replace')} ({status})"
    return f"error {status}"


def import_cudart() -> Any:
    """cuda-python's runtime module: `cuda.bindings.runtime` (>= 12.6), else the older `cuda.cudart`.

    `Any`: cuda-python ships no type information, and tests pass a stand-in object.
    """
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            raise MissingDependencyError(
                f"cuda-python is not installed: {GPU_EXTRA_HINT}; with the rtx extra: pip install cuda-python"
            ) from None
    return cudart


class Cuda:
    """Calls into cudart and checks each return code in one place."""

    def __init__(self, cudart: Any):
        self.cudart = cudart

    def call(self, name: str, *args: Any) -> Any:
        """cudart.NAME(*args); raise CudaError unless it succeeded; return its values (None, one, or a tuple)."""
        err, *values = getattr(self.cudart, name)(*args)
        if err != self.cudart.cudaError_t.cudaSuccess:
            raise CudaError(f"CUDA call {name} failed: {self.error_string(err)}")
        if not values:
            return None
        return values[0] if len(values) == 1 else tuple(values)

    def error_string(self, err: Any) -> str:
        _, text = self.cudart.cudaGetErrorString(err)
        return text.decode() if isinstance(text, bytes) else str(text)

    def device_description(self, device: int = 0) -> tuple[str, str]:
        """(GPU name, compute capability "major.minor") of a device, as the sidecar records them."""
        props = self.call("cudaGetDeviceProperties", device)
        name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
        return name.rstrip("\x00"), f"{props.major}.{props.minor}"


class DeviceBuffer:
    """`nbytes` of device memory (cudaMalloc)."""

    def __init__(self, cuda: Cuda, nbytes: int):
        self.cuda, self.nbytes = cuda, nbytes
        self.ptr: int = int(cuda.call("cudaMalloc", nbytes))

    def free(self) -> None:
        if self.ptr:
            self.cuda.call("cudaFree", self.ptr)
            self.ptr = 0


class HostBuffer:
    """`nbytes` of page-locked host memory (cudaMallocHost), which asynchronous copies need."""

    def __init__(self, cuda: Cuda, nbytes: int):
        self.cuda, self.nbytes = cuda, nbytes
        self.ptr: int = int(cuda.call("cudaMallocHost", nbytes))

    def view(self, shape: tuple[int, ...], dtype: np.dtype[Scalar] | type[Scalar]) -> NDArray[Scalar]:
        """A numpy array over the first bytes of the buffer (no copy); valid until `free()`."""
        dtype = np.dtype(dtype)
        count = int(np.prod(shape)) * dtype.itemsize
        if not self.ptr or count > self.nbytes:
            raise ValueError(f"view of {count} bytes on a host buffer of {self.nbytes} (freed: {not self.ptr})")
        raw = (ctypes.c_ubyte * count).from_address(self.ptr)
        return np.frombuffer(memoryview(raw), dtype=dtype).reshape(shape)

    def free(self) -> None:
        if self.ptr:
            self.cuda.call("cudaFreeHost", self.ptr)
            self.ptr = 0


class Stream:
    """One CUDA stream: all copies and the engine run on it, with one synchronisation per request."""

    def __init__(self, cuda: Cuda):
        self.cuda = cuda
        self.handle: Any = cuda.call("cudaStreamCreate")

    @property
    def ptr(self) -> int:
        return int(self.handle)

    def copy_to_device(self, device: DeviceBuffer, host: HostBuffer, nbytes: int) -> None:
        kind = self.cuda.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        self.cuda.call("cudaMemcpyAsync", device.ptr, host.ptr, nbytes, kind, self.handle)

    def copy_to_host(self, host: HostBuffer, device: DeviceBuffer, nbytes: int) -> None:
        kind = self.cuda.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self.cuda.call("cudaMemcpyAsync", host.ptr, device.ptr, nbytes, kind, self.handle)

    def synchronize(self) -> None:
        self.cuda.call("cudaStreamSynchronize", self.handle)

    def free(self) -> None:
        if self.handle is not None:
            self.cuda.call("cudaStreamDestroy", self.handle)
            self.handle = None
