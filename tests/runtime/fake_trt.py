"""Stand-ins for a TensorRT library, engine and context: the v3 API pieces the runner uses, computing known outputs.

The engine reaches its tensors through a `memory` object: host memory under the stand-in cudart, or
real device memory (through cudart copies) in the GPU tests, where only the engine is a stand-in.
"""

from __future__ import annotations

import ctypes
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from runtime import contract
from runtime.contract import DimRange, Profile, Sidecar
from tests.runtime.conftest import NUM_CLASSES, contract_metadata, mean_rgb_logits

PROFILE = Profile(batch=DimRange(1, 2, 4), frames=DimRange(2, 4, 8))
GOOD_PLAN = b"stand-in plan"


def make_sidecar(profile: Profile = PROFILE, target: str = "tensorrt") -> Sidecar:
    return Sidecar(
        metadata=contract_metadata(),
        profile=profile,
        precision="fp16",
        tensorrt_version="10.9.0",
        gpu_name="NVIDIA H100 80GB HBM3",
        compute_capability="9.0",
        target=target,
    )


def write_plan(
    tmp_path: Path, data: bytes = GOOD_PLAN, sidecar: Sidecar | None = None, name: str = "model.plan"
) -> Path:
    plan = tmp_path / name
    plan.write_bytes(data)
    (sidecar or make_sidecar()).write(plan)
    return plan


def frames_of(batch: int, frames: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(contract.input_shape(batch, frames), dtype=np.float32)


WHOLE_IO = {contract.INPUT_NAME: ("input", (-1, -1, 3, 224, 224)), contract.OUTPUT_NAME: ("output", (-1, NUM_CLASSES))}
TEMPORAL_IO = {contract.EMBEDDINGS_NAME: ("input", (-1, -1, 6)), contract.OUTPUT_NAME: ("output", (-1, NUM_CLASSES))}


def first_values(inputs: np.ndarray) -> np.ndarray:
    """What the stand-in temporal engine computes: the first NUM_CLASSES values of each video's embeddings."""
    return inputs.reshape(inputs.shape[0], -1)[:, :NUM_CLASSES]


class HostMemory:
    """How the stand-in engine reaches "device" memory: the stand-in cudart's is host memory."""

    @staticmethod
    def read(ptr: int, shape: tuple) -> np.ndarray:
        return device_array(ptr, shape).copy()

    @staticmethod
    def write(ptr: int, values: np.ndarray) -> None:
        device_array(ptr, values.shape)[...] = values

    @staticmethod
    def stream_ok(stream: int) -> bool:
        return stream == 77  # the stand-in cudart's stream handle


class FakeContext:
    """Reads its input from device memory and writes `compute(input)` to its output, by tensor name."""

    def __init__(self, io: dict, compute, memory=HostMemory):
        (self.input_name, _), (self.output_name, _) = io.items()
        self.compute, self.memory = compute, memory
        self.shapes: dict[str, tuple] = {}
        self.addresses: dict[str, int] = {}
        self.refuse_address = False

    def set_input_shape(self, name: str, shape: tuple) -> bool:
        self.shapes[name] = shape
        return name == self.input_name

    def get_tensor_shape(self, name: str) -> tuple:
        return (self.shapes[self.input_name][0], NUM_CLASSES)

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.addresses[name] = ptr
        return not self.refuse_address

    def execute_async_v3(self, stream: int) -> bool:
        inputs = self.memory.read(self.addresses[self.input_name], self.shapes[self.input_name])
        self.memory.write(self.addresses[self.output_name], self.compute(inputs).astype(np.float32))
        return self.memory.stream_ok(stream)


def device_array(ptr: int, shape: tuple) -> np.ndarray:
    count = int(np.prod(shape)) * 4
    return np.frombuffer((ctypes.c_ubyte * count).from_address(ptr), dtype=np.float32).reshape(shape)


class FakeRuntimeCache:
    """TensorRT-RTX's IRuntimeCache: accepts only what it serialized itself."""

    def __init__(self):
        self.kernels = b""

    def deserialize(self, blob: bytes) -> bool:
        if not blob.startswith(b"kernels"):
            return False
        self.kernels = bytes(blob)
        return True

    def serialize(self) -> bytes:
        return self.kernels + b"+compiled"


class FakeEngine:
    def __init__(self, io: dict, compute, runtime_config: bool = False, memory=HostMemory):
        self.io, self.compute, self.memory = io, compute, memory
        self.contexts: list[FakeContext] = []
        self.runtime_configs: list[SimpleNamespace] = []
        if runtime_config:
            self.create_runtime_config = self._create_runtime_config

    @property
    def num_io_tensors(self) -> int:
        return len(self.io)

    def get_tensor_name(self, index: int) -> str:
        return list(self.io)[index]

    def get_tensor_mode(self, name: str) -> str:
        return self.io[name][0]

    def get_tensor_dtype(self, name: str) -> str:
        return "float"

    def get_tensor_shape(self, name: str) -> tuple:
        return self.io[name][1]

    def _create_runtime_config(self) -> SimpleNamespace:
        config = SimpleNamespace(cache=None, create_runtime_cache=FakeRuntimeCache)
        config.set_runtime_cache = lambda cache: setattr(config, "cache", cache) or True
        self.runtime_configs.append(config)
        return config

    def create_execution_context(self, runtime_config=None) -> FakeContext:
        self.contexts.append(FakeContext(self.io, self.compute, self.memory))
        return self.contexts[-1]


class FakeILogger:
    """trt.ILogger: subclassed by the runtime's one logger per library."""

    Severity = SimpleNamespace(INTERNAL_ERROR=0, ERROR=1, WARNING=2)

    def __init__(self):
        pass


def fake_tensorrt(name: str = "tensorrt", engine: FakeEngine | None = None) -> types.ModuleType:
    """A module (hashable, like the real one) with the v3 API pieces the runner uses."""
    engine = engine or FakeEngine(WHOLE_IO, mean_rgb_logits)
    runtime = SimpleNamespace(deserialize_cuda_engine=lambda data: engine if data == GOOD_PLAN else None)
    module = types.ModuleType(name)
    module.__version__ = "10.13.0"
    module.ILogger = FakeILogger
    module.Runtime = lambda logger: runtime
    module.TensorIOMode = SimpleNamespace(INPUT="input", OUTPUT="output")
    module.DataType = SimpleNamespace(FLOAT="float")
    module.engine = engine
    return module
