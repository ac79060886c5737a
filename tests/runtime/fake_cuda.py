"""A stand-in for cuda-python's cudart: its calling convention over real host memory, for tests without a GPU."""

from __future__ import annotations

import ctypes
from types import SimpleNamespace


class FakeCudart:
    """cudart's calling convention ((err, *values) tuples) over real host memory."""

    class cudaError_t:  # noqa: N801 - cudart's spelling
        cudaSuccess = 0
        cudaErrorMemoryAllocation = 2

    class cudaMemcpyKind:  # noqa: N801
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2

    def __init__(self):
        self.calls: list[str] = []
        self.memory: dict[int, ctypes.Array] = {}
        self.fail_next: str | None = None

    def __getattr__(self, name: str):
        if not name.startswith("cuda"):
            raise AttributeError(name)
        implementation = getattr(self, f"_{name}")

        def call(*args):
            self.calls.append(name)
            if self.fail_next == name:
                return (self.cudaError_t.cudaErrorMemoryAllocation, None)
            return implementation(*args)

        return call

    def _alloc(self, nbytes: int):
        buffer = ctypes.create_string_buffer(nbytes)
        self.memory[ctypes.addressof(buffer)] = buffer
        return (0, ctypes.addressof(buffer))

    _cudaMalloc = _cudaMallocHost = _alloc

    def _release(self, ptr: int):
        del self.memory[ptr]
        return (0,)

    _cudaFree = _cudaFreeHost = _release

    def _cudaMemcpyAsync(self, dst: int, src: int, nbytes: int, kind: int, stream: int):
        ctypes.memmove(dst, src, nbytes)
        return (0,)

    def _cudaStreamCreate(self):
        return (0, 77)

    def _ok(self, *args):
        return (0,)

    _cudaStreamSynchronize = _cudaStreamDestroy = _ok

    def _cudaGetErrorString(self, err: int):
        return (0, b"out of memory")

    def _cudaGetDeviceProperties(self, device: int):
        return (0, SimpleNamespace(name=b"NVIDIA A100-SXM4-40GB", major=8, minor=0))
