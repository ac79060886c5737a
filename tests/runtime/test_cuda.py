"""runtime.backends.cuda: the checked-call helper, owned buffers, the driver probe and a missing cuda-python."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from runtime.backends import cuda as cuda_module
from runtime.backends.cuda import Cuda, CudaError, HostBuffer, driver_problem
from runtime.errors import MissingDependencyError
from tests.runtime.fake_cuda import FakeCudart


def test_checked_call_raises_with_the_cuda_message():
    cudart = FakeCudart()
    cuda = Cuda(cudart)
    assert cuda.call("cudaStreamSynchronize", 77) is None
    assert cuda.device_description() == ("NVIDIA A100-SXM4-40GB", "8.0")
    cudart.fail_next = "cudaMalloc"
    with pytest.raises(CudaError, match="CUDA call cudaMalloc failed: out of memory"):
        cuda.call("cudaMalloc", 1024)


def test_host_buffer_view_and_free_twice():
    cudart = FakeCudart()
    buffer = HostBuffer(Cuda(cudart), 64)
    view = buffer.view((2, 4), np.float32)
    view[...] = np.arange(8).reshape(2, 4)
    np.testing.assert_array_equal(buffer.view((8,), np.float32), np.arange(8, dtype=np.float32))
    with pytest.raises(ValueError, match="view of 128 bytes"):
        buffer.view((32,), np.float32)
    buffer.free()
    buffer.free()
    assert cudart.calls.count("cudaFreeHost") == 1


def test_missing_cuda_python_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cuda", None)  # `from cuda import ...` now raises ImportError
    with pytest.raises(MissingDependencyError, match="cuda-python is not installed"):
        cuda_module.import_cudart()


def test_driver_probe_names_a_missing_driver_library():
    assert driver_problem("libcuda-not-here.so.1") == "no NVIDIA driver: libcuda-not-here.so.1 cannot be loaded"
