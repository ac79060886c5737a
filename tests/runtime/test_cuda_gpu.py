"""The TensorRT backend's CUDA side on a real GPU: cuda-python's cudart, the driver check, and the runner's
buffers, copies and stream, with only the engine a stand-in.

Marked `gpu`: they need an NVIDIA driver, a GPU and cuda-python, not TensorRT, so they run on a GPU
machine where TensorRT is not installed (the stand-in tests in test_trt_backend.py fake cudart; here
every allocation, copy and synchronisation is real, and the stand-in engine reads and writes the
runner's device buffers through cudart).
"""

from __future__ import annotations

import numpy as np
import pytest

from export.tensorrt import gpu_description
from runtime import open_model
from runtime.backends import trt as trt_backend
from runtime.backends.cuda import Cuda, CudaError, DeviceBuffer, HostBuffer, Stream, driver_problem, import_cudart
from tests.runtime.conftest import mean_rgb_logits
from tests.runtime.fake_trt import WHOLE_IO, FakeEngine, fake_tensorrt, frames_of, write_plan

pytestmark = pytest.mark.gpu

MiB = 1 << 20


@pytest.fixture(scope="module")
def cuda() -> Cuda:
    cuda = Cuda(import_cudart())
    cuda.call("cudaFree", 0)  # create the context now, so that memory readings below exclude it
    return cuda


def free_device_memory(cuda: Cuda) -> int:
    free, _total = cuda.call("cudaMemGetInfo")
    return int(free)


class DeviceMemory:
    """The stand-in engine's access to the runner's device buffers: synchronous cudart copies.

    cudaMemcpy runs on the legacy default stream, which waits for the runner's (blocking) stream:
    the engine sees the input only if the runner's host-to-device copy was enqueued correctly.
    """

    def __init__(self, cuda: Cuda):
        self.cuda = cuda
        self.kinds = cuda.cudart.cudaMemcpyKind

    def read(self, ptr: int, shape: tuple) -> np.ndarray:
        values = np.empty(shape, np.float32)
        self.cuda.call("cudaMemcpy", values.ctypes.data, ptr, values.nbytes, self.kinds.cudaMemcpyDeviceToHost)
        return values

    def write(self, ptr: int, values: np.ndarray) -> None:
        values = np.ascontiguousarray(values, np.float32)
        self.cuda.call("cudaMemcpy", ptr, values.ctypes.data, values.nbytes, self.kinds.cudaMemcpyHostToDevice)

    @staticmethod
    def stream_ok(stream: int) -> bool:
        return isinstance(stream, int) and stream != 0  # a created stream, passed as TensorRT takes it


def test_the_driver_check_and_the_sidecars_gpu_description_see_the_gpu(cuda):
    assert driver_problem() is None
    name, capability = gpu_description()
    assert (name, capability) == cuda.device_description()
    assert name.startswith("NVIDIA") and not name.startswith("unknown")
    major, minor = capability.split(".")
    assert int(major) >= 5 and minor.isdigit()


def test_pinned_to_device_and_back_on_one_stream(cuda):
    values = np.random.default_rng(1).random((3, 1000, 7), dtype=np.float32)
    source, target = HostBuffer(cuda, values.nbytes), HostBuffer(cuda, values.nbytes)
    device, stream = DeviceBuffer(cuda, values.nbytes), Stream(cuda)
    try:
        source.view(values.shape, np.float32)[...] = values
        target.view(values.shape, np.float32)[...] = np.nan  # poisoned: every element must be written back
        stream.copy_to_device(device, source, values.nbytes)
        stream.copy_to_host(target, device, values.nbytes)
        stream.synchronize()
        np.testing.assert_array_equal(target.view(values.shape, np.float32), values)
    finally:
        for owned in (source, target, device, stream):
            owned.free()
            owned.free()  # twice is safe


def test_a_failed_call_is_a_cuda_error_naming_the_call(cuda):
    with pytest.raises(CudaError, match=r"CUDA call cudaMalloc failed: .*memory"):
        DeviceBuffer(cuda, 1 << 50)


def test_the_runner_on_a_real_gpu_computes_grows_and_frees_everything(cuda, tmp_path, monkeypatch):
    engine = FakeEngine(WHOLE_IO, mean_rgb_logits, memory=DeviceMemory(cuda))
    monkeypatch.setattr(trt_backend, "import_tensorrt", lambda library: fake_tensorrt(library, engine))
    before = free_device_memory(cuda)
    with open_model(write_plan(tmp_path)) as model:
        for batch, frames in [(1, 2), (2, 4), (1, 4), (4, 8), (3, 2)]:  # grows twice, then reuses
            inputs = frames_of(batch, frames, seed=batch * frames)
            np.testing.assert_allclose(model.run(inputs), mean_rgb_logits(inputs), rtol=1e-5, atol=1e-6)
        runner = model._runner
        assert runner.inputs.capacity >= frames_of(4, 8).nbytes and runner.inputs.device.ptr and runner.inputs.host.ptr
        assert before - free_device_memory(cuda) >= frames_of(4, 8).nbytes  # the largest input lives on the GPU
    assert free_device_memory(cuda) >= before - 2 * MiB  # closing gave every device buffer back
