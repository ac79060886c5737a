"""TensorRT backend: sizing, growth, profile checks and the runner's CUDA call sequence.

Without TensorRT the runner is driven by a stand-in cudart (real host memory, memmove copies) and
a stand-in engine that computes the mean-RGB logits, so the data path, buffer reuse and frees are
checked here; the tests marked `tensorrt` build and run a real plan where TensorRT is present.
"""

from __future__ import annotations

import ctypes
import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from runtime import contract, open_model
from runtime.backends import cuda as cuda_module
from runtime.backends import trt as trt_backend
from runtime.backends.cuda import Cuda, CudaError, HostBuffer
from runtime.backends.trt import (
    PinnedTensor,
    TrtRunner,
    grown_capacity,
    input_limit,
    mismatch_message,
    tensor_nbytes,
)
from runtime.contract import DimRange, Profile, Sidecar
from runtime.errors import ArtifactError, MissingDependencyError, ShapeError
from tests.runtime.conftest import LABELS, NUM_CLASSES, contract_metadata, mean_rgb_logits

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
PROFILE = Profile(batch=DimRange(1, 2, 4), frames=DimRange(2, 4, 8))
GOOD_PLAN = b"stand-in plan"


def make_sidecar(profile: Profile = PROFILE) -> Sidecar:
    return Sidecar(
        metadata=contract_metadata(),
        profile=profile,
        precision="fp16",
        tensorrt_version="10.9.0",
        gpu_name="NVIDIA H100 80GB HBM3",
        compute_capability="9.0",
    )


def write_plan(tmp_path: Path, data: bytes = GOOD_PLAN, sidecar: Sidecar | None = None) -> Path:
    plan = tmp_path / "model.plan"
    plan.write_bytes(data)
    (sidecar or make_sidecar()).write(plan)
    return plan


def frames_of(batch: int, frames: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(contract.input_shape(batch, frames), dtype=np.float32)


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


class FakeContext:
    """Computes the mean-RGB logits from device memory, like the hand-built ONNX graph."""

    def __init__(self):
        self.shapes: dict[str, tuple] = {}
        self.addresses: dict[str, int] = {}

    def set_input_shape(self, name: str, shape: tuple) -> bool:
        self.shapes[name] = shape
        return name == contract.INPUT_NAME

    def get_tensor_shape(self, name: str) -> tuple:
        return (self.shapes[contract.INPUT_NAME][0], NUM_CLASSES)

    def set_tensor_address(self, name: str, ptr: int) -> None:
        self.addresses[name] = ptr

    def execute_async_v3(self, stream: int) -> bool:
        shape = self.shapes[contract.INPUT_NAME]
        frames = device_array(self.addresses[contract.INPUT_NAME], shape)
        logits = device_array(self.addresses[contract.OUTPUT_NAME], (shape[0], NUM_CLASSES))
        logits[...] = mean_rgb_logits(frames)
        return stream == 77


def device_array(ptr: int, shape: tuple) -> np.ndarray:
    count = int(np.prod(shape)) * 4
    return np.frombuffer((ctypes.c_ubyte * count).from_address(ptr), dtype=np.float32).reshape(shape)


class FakeEngine:
    num_io_tensors = 2
    io = {
        contract.INPUT_NAME: ("input", (-1, -1, 3, 224, 224)),
        contract.OUTPUT_NAME: ("output", (-1, NUM_CLASSES)),
    }

    def get_tensor_name(self, index: int) -> str:
        return list(self.io)[index]

    def get_tensor_mode(self, name: str) -> str:
        return self.io[name][0]

    def get_tensor_dtype(self, name: str) -> str:
        return "float"

    def get_tensor_shape(self, name: str) -> tuple:
        return self.io[name][1]

    def create_execution_context(self) -> FakeContext:
        return FakeContext()


class FakeLogger:
    ERROR = 3

    def __init__(self, level: int):
        self.level = level


def fake_tensorrt() -> SimpleNamespace:
    runtime = SimpleNamespace(deserialize_cuda_engine=lambda data: FakeEngine() if data == GOOD_PLAN else None)
    return SimpleNamespace(
        __version__="10.13.0",
        Logger=FakeLogger,
        Runtime=lambda logger: runtime,
        TensorIOMode=SimpleNamespace(INPUT="input", OUTPUT="output"),
        DataType=SimpleNamespace(FLOAT="float"),
    )


@pytest.fixture
def fake_gpu(monkeypatch) -> FakeCudart:
    cudart = FakeCudart()
    fake_trt = fake_tensorrt()
    monkeypatch.setattr(trt_backend, "import_tensorrt", lambda: fake_trt)
    monkeypatch.setattr(trt_backend, "import_cudart", lambda: cudart)
    return cudart


# --- plain functions -------------------------------------------------------------------------


def test_tensor_nbytes():
    assert tensor_nbytes(contract.input_shape(2, 16)) == 2 * 16 * 3 * 224 * 224 * 4
    assert tensor_nbytes((8, 400), np.float16) == 6400


def test_growth_policy_doubles_within_the_profile_limit():
    assert grown_capacity(0, 100, 1000) == 100
    assert grown_capacity(100, 80, 1000) == 100  # fits: never shrinks, never reallocates
    assert grown_capacity(100, 120, 1000) == 200  # grows by at least doubling
    assert grown_capacity(600, 700, 1000) == 1000  # doubling capped at the profile's largest request
    assert grown_capacity(600, 1200, 1000) == 1200  # a request is always met


def test_input_limit_is_the_profile_maximum():
    assert input_limit(make_sidecar()) == tensor_nbytes(contract.input_shape(4, 8))


def test_mismatch_message_names_both_builds():
    message = mismatch_message("m.plan", make_sidecar(), "10.13.0", "NVIDIA A100-SXM4-40GB", "8.0")
    assert message == (
        "m.plan: cannot load the plan: it was built with TensorRT 10.9.0 for NVIDIA H100 80GB HBM3 "
        "(compute capability 9.0); this machine has TensorRT 10.13.0 and NVIDIA A100-SXM4-40GB "
        "(compute capability 8.0). Rebuild it here with stam-build"
    )


def test_profile_is_checked_before_any_cuda_call(tmp_path):
    runner = TrtRunner(write_plan(tmp_path), make_sidecar())  # never activated: any CUDA use would fail
    with pytest.raises(ShapeError, match=r"frames=9 is outside the engine's profile 2\.\.8 .*stam-build --frames"):
        runner.infer(frames_of(1, 9))
    with pytest.raises(ShapeError, match=r"batch=5 is outside the engine's profile 1\.\.4"):
        runner.infer(np.zeros((5, 2, 3, 224, 224), np.float32))


# --- opening plans ---------------------------------------------------------------------------


@pytest.mark.skipif(HAS_TENSORRT, reason="checks the message shown where tensorrt is missing")
def test_missing_tensorrt_is_a_clear_error(tmp_path):
    message = r"^TensorRT is not installed \(pip install 'stam-deploy\[gpu\]'"
    with pytest.raises(MissingDependencyError, match=message):
        open_model(write_plan(tmp_path))


def test_plan_without_sidecar_is_refused_before_tensorrt(tmp_path):
    plan = tmp_path / "model.engine"
    plan.write_bytes(GOOD_PLAN)
    with pytest.raises(ArtifactError, match="no sidecar model.engine.json beside the plan"):
        open_model(plan)


def test_malformed_sidecar_is_refused(tmp_path):
    plan = write_plan(tmp_path)
    Sidecar.path_for(plan).write_text("{not json")
    with pytest.raises(ArtifactError, match="malformed sidecar"):
        open_model(plan)


def test_plan_from_another_build_names_both(tmp_path, fake_gpu):
    message = r"built with TensorRT 10\.9\.0 .* this machine has TensorRT 10\.13\.0 and NVIDIA A100"
    with pytest.raises(ArtifactError, match=message):
        open_model(write_plan(tmp_path, data=b"other plan"))


# --- the runner on the stand-in GPU ----------------------------------------------------------


def test_model_on_fake_gpu_reports_sidecar_ranges(tmp_path, fake_gpu):
    with open_model(write_plan(tmp_path)) as model:
        assert model.batch_range == PROFILE.batch and model.frames_range == PROFILE.frames
        assert model.precision == "fp16" and model.labels == LABELS and model.frames_trained == 4
        with pytest.raises(ShapeError, match="engine's profile"):
            model.run(frames_of(1, 1))


def test_runner_data_path_reuse_growth_and_frees(tmp_path, fake_gpu):
    model = open_model(write_plan(tmp_path))
    setup_calls = list(fake_gpu.calls)
    assert setup_calls == ["cudaStreamCreate"]  # buffers are allocated on the first request
    # (batch, frames, pinned tensors allocated, pinned tensors freed): input and output grow separately
    for batch, frames, allocated, freed in [(2, 4, 2, 0), (1, 4, 0, 0), (2, 4, 0, 0), (4, 8, 2, 2), (3, 2, 0, 0)]:
        fake_gpu.calls.clear()
        inputs = frames_of(batch, frames, seed=batch * frames)
        np.testing.assert_allclose(model.run(inputs), mean_rgb_logits(inputs), rtol=1e-5, atol=1e-6)
        calls = fake_gpu.calls
        assert calls.count("cudaStreamSynchronize") == 1 and calls.count("cudaMemcpyAsync") == 2
        assert calls.count("cudaMallocHost") == calls.count("cudaMalloc") == allocated
        assert calls.count("cudaFreeHost") == calls.count("cudaFree") == freed
    fake_gpu.calls.clear()
    model.close()
    model.close()
    assert sorted(fake_gpu.calls) == ["cudaFree", "cudaFree", "cudaFreeHost", "cudaFreeHost", "cudaStreamDestroy"]
    assert fake_gpu.memory == {}


def test_runner_context_manager_activates_and_frees(tmp_path, fake_gpu):
    plan = write_plan(tmp_path)
    with TrtRunner(plan, make_sidecar()) as runner:
        assert runner.is_active
        runner.infer(frames_of(1, 2))
    assert not runner.is_active and fake_gpu.memory == {}
    with pytest.raises(RuntimeError, match="before activate"):
        runner.infer(frames_of(1, 2))


# --- cuda helpers ----------------------------------------------------------------------------


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


def test_pinned_tensor_reallocates_both_sides_only_when_growing():
    cudart = FakeCudart()
    tensor = PinnedTensor(Cuda(cudart), limit=1000)
    for size in (100, 50, 100, 150, 400):
        tensor.reserve(size)
    assert tensor.capacity == 400 and len(cudart.memory) == 2
    assert cudart.calls.count("cudaMalloc") == cudart.calls.count("cudaMallocHost") == 3  # 100, 200, 400
    tensor.free()
    assert cudart.memory == {}


def test_missing_cuda_python_is_a_clear_error(monkeypatch):
    if importlib.util.find_spec("cuda") is not None:
        pytest.skip("cuda-python is installed here")
    with pytest.raises(MissingDependencyError, match="cuda-python is not installed"):
        cuda_module.import_cudart()


# --- real TensorRT (skipped where it is missing) ---------------------------------------------


def build_plan(onnx_path: Path, plan_path: Path, profile: Profile) -> Path:
    """A plan built with the TensorRT API directly, so this test does not depend on stam-build."""
    import tensorrt as trt

    from runtime.backends.cuda import import_cudart

    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse_from_file(str(onnx_path)), [parser.get_error(i) for i in range(parser.num_errors)]
    config = builder.create_builder_config()
    shapes = builder.create_optimization_profile()
    shapes.set_shape(contract.INPUT_NAME, *profile.shapes().values())
    config.add_optimization_profile(shapes)
    plan_path.write_bytes(bytes(builder.build_serialized_network(network, config)))
    gpu_name, capability = Cuda(import_cudart()).device_description()
    sidecar = Sidecar(
        metadata=contract_metadata(), profile=profile, precision="fp32",
        tensorrt_version=trt.__version__, gpu_name=gpu_name, compute_capability=capability,
    )
    sidecar.write(plan_path)
    return plan_path


@pytest.mark.tensorrt
def test_real_plan_matches_onnx_runtime(mean_rgb_onnx, tmp_path):
    pytest.importorskip("tensorrt", reason="tensorrt is not installed")
    plan = build_plan(mean_rgb_onnx, tmp_path / "mean_rgb.plan", PROFILE)
    with open_model(plan) as model, open_model(mean_rgb_onnx) as reference:
        for batch, frames in [(1, 2), (4, 8), (3, 5), (2, 4)]:
            inputs = frames_of(batch, frames, seed=frames)
            np.testing.assert_allclose(model.run(inputs), reference.run(inputs), atol=1e-5)
        with pytest.raises(ShapeError, match="frames=9"):
            model.run(frames_of(1, 9))


@pytest.mark.tensorrt
def test_corrupt_plan_is_an_artifact_error(tmp_path):
    pytest.importorskip("tensorrt", reason="tensorrt is not installed")
    with pytest.raises(ArtifactError, match="cannot load the plan"):
        open_model(write_plan(tmp_path, data=b"\x00" * 256))
