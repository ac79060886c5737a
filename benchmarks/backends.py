"""One small runner per backend (torch, torch-compile, onnxruntime, openvino, tensorrt), and why a combination is skipped.

A runner is opened once per (model, precision) and hands out, per batch size, a `step` that runs
one forward pass on inputs already in place, plus the clock that times it correctly ("cuda": events,
for torch on a GPU; "host": perf_counter, for calls that return host arrays). Every runner uses
random weights: throughput does not depend on them.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from runtime import contract

BACKENDS = ("torch", "torch-compile", "onnxruntime", "openvino", "tensorrt")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
DEVICES = ("cpu", "cuda")

Step = Callable[[], Any]


class Skip(Exception):
    """A combination that cannot run here; the message is the reason printed in the report."""


class Runner(abc.ABC):
    """A model loaded on one backend at one precision."""

    clock = "host"

    def __init__(self, model_name: str, frames: int):
        self.model_name = model_name
        self.frames = frames

    @abc.abstractmethod
    def prepare(self, batch: int) -> Step:
        """Place a random input of `batch` videos and return the call to time."""

    def close(self) -> None:  # noqa: B027 (a runner that holds nothing need not override it)
        """Release what the runner holds (sessions, engines, device memory)."""

    def host_input(self, batch: int) -> np.ndarray:
        shape = contract.input_shape(batch, self.frames)
        return np.random.default_rng(0).random(shape, dtype=np.float32)


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
COMPILE_MODE_NOTES = {
    "default": "Inductor fusion, library matmuls",
    "reduce-overhead": "Inductor fusion + CUDA graphs, library matmuls",
    "max-autotune": "Triton matmul autotuning + CUDA graphs",
    "max-autotune-no-cudagraphs": "Triton matmul autotuning",
}


def uses_cuda_graphs(compile_mode: str | None, device: str) -> bool:
    """Whether compiled calls replay CUDA graphs, whose outputs the next replay may overwrite."""
    return device == "cuda" and compile_mode in ("reduce-overhead", "max-autotune")


def default_compile_mode(device: str) -> str:
    """max-autotune on a GPU (the fastest code torch.compile makes; minutes of autotuning per shape), else default."""
    return "max-autotune" if device == "cuda" else "default"


def describe_backends(device: str, compile_mode: str | None = None) -> dict[str, str]:
    """How each backend runs on `device`: printed under the tables so that a number can be reproduced."""
    gpu = device == "cuda"
    mode = compile_mode or default_compile_mode(device)
    return {
        "torch": "eager, inference_mode; fp16/bf16 = autocast (mixed precision)"
        + (", fp32 without TF32" if gpu else ""),
        "torch-compile": f"torch.compile mode {mode} ({COMPILE_MODE_NOTES[mode]}), static shapes, same autocast",
        "onnxruntime": ("CUDA" if gpu else "CPU") + " execution provider, all graph optimizations, host arrays in/out; "
        "int8 = Q/DQ ONNX calibrated (min-max) on 2 random 8-frame clips: data sets scales, not speed",
        "openvino": "runtime.open_model(backend='openvino'): CPU plugin, latency hint, inference precision set "
        "explicitly (f32, or bf16 for bf16), no model cache; int8 = the same Q/DQ ONNX as onnxruntime",
        "tensorrt": "runtime.open_model on a plan built per batch (min = opt = max), host arrays in/out",
    }


def static_skip_reason(backend: str, precision: str, device: str) -> str | None:
    """Reasons known before any work: unsupported combinations and libraries that are absent."""
    if precision == "int8" and backend in ("torch", "torch-compile"):
        return "no int8 path in PyTorch here; int8 runs from the calibrated Q/DQ ONNX on onnxruntime/tensorrt"
    if precision == "fp16" and device == "cpu" and backend in ("torch", "torch-compile"):
        return "not on CPU: autocast fp16 has few fast CPU kernels (slower than fp32); bf16 is the CPU's half type"
    if precision == "bf16" and backend in ("onnxruntime", "tensorrt"):
        return "no bf16 artifact: exports are fp32, fp16 (export/fp16.py) or int8 (calibration) only"
    if backend == "openvino":
        return _openvino_reason(precision, device)
    if precision == "fp16" and device == "cpu" and backend == "onnxruntime":
        return (
            "not on CPU: the CPU provider lacks fp16 kernels for most ops (it inserts casts to fp32); use --device cuda"
        )
    if backend == "tensorrt":
        return _tensorrt_reason(device)
    return None


def _tensorrt_reason(device: str) -> str | None:
    if device != "cuda":
        return "needs --device cuda"
    if not _importable("tensorrt"):
        return "not installed (pip install '.[gpu]')"
    if not _importable("export.tensorrt"):
        return "engine builder (export/tensorrt.py) not available"
    return None


def _openvino_reason(precision: str, device: str) -> str | None:
    if device != "cpu":
        return "runs on the CPU only here (--device cpu)"
    if not _importable("openvino"):
        return "not installed (pip install '.[openvino]')"
    if precision == "fp16":
        return "not on this path: the CPU plugin computes an fp16 graph in f32 or bf16; bf16 is the CPU's half type"
    if precision == "bf16":
        from runtime.cpu import has_bf16

        if not has_bf16():
            return "CPU has no bf16 (avx512_bf16/AMX): runtime refuses it rather than run fp32 under a bf16 label"
    return None


def _importable(module: str) -> bool:
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def open_runner(
    backend: str, model_name: str, precision: str, device: str, workdir: Path, compile_mode: str | None = None
) -> Runner:
    """The runner of one combination; raises Skip when it cannot run (the reason says why)."""
    reason = static_skip_reason(backend, precision, device)
    if reason:
        raise Skip(reason)
    if backend == "torch":
        return TorchRunner(model_name, precision, device)
    if backend == "torch-compile":
        return TorchRunner(model_name, precision, device, compile_mode=compile_mode or default_compile_mode(device))
    onnx_path = onnx_artifact(model_name, "fp32" if precision == "bf16" else precision, workdir)
    if backend == "onnxruntime":
        return OrtRunner(onnx_path, device)
    if backend == "openvino":
        return OpenVinoRunner(onnx_path, precision)
    return TensorRTRunner(onnx_path, workdir)


# --- PyTorch -----------------------------------------------------------------------------------------


class TorchRunner(Runner):
    """Eager or `torch.compile`d PyTorch; fp16/bf16 through autocast (mixed precision, as in the paper).

    Compiled (when `compile_mode` is given) with static shapes: one compilation per batch size. Modes
    with CUDA graphs need a new-iteration mark before each call, since a replay may overwrite outputs.
    """

    def __init__(self, model_name: str, precision: str, device: str, compile_mode: str | None = None):
        import torch

        from export.model import create_model

        self.torch = torch
        self.device = device
        self.precision = precision
        self.compiled = compile_mode is not None
        self.cuda_graphs = uses_cuda_graphs(compile_mode, device)
        self.clock = "cuda" if device == "cuda" else "host"
        model = create_model(model_name).to(device)
        super().__init__(model_name, model.config.frames_trained)
        self.forward: Callable[..., Any] | None  # None once closed
        if self.compiled:
            torch._dynamo.reset()  # the compile cache is per code object: start each model afresh
            self.forward = torch.compile(model, mode=compile_mode, dynamic=False)
        else:
            self.forward = model

    def autocast(self) -> contextlib.AbstractContextManager:
        dtypes = {"fp16": self.torch.float16, "bf16": self.torch.bfloat16}
        if self.precision not in dtypes:
            return contextlib.nullcontext()
        return self.torch.autocast(device_type=self.device, dtype=dtypes[self.precision])

    def prepare(self, batch: int) -> Step:
        torch = self.torch
        frames = torch.from_numpy(self.host_input(batch)).to(self.device)
        new_graph_step = self.cuda_graphs
        forward = self.forward
        if forward is None:
            raise RuntimeError(f"{self.model_name}: the runner is closed")

        def step() -> Any:
            if new_graph_step:  # CUDA graphs: each call is a new iteration, outputs may be overwritten
                torch.compiler.cudagraph_mark_step_begin()
            with torch.inference_mode(), self.autocast():
                return forward(frames)

        if self.compiled:  # compile here, whatever --warmup says; CUDA graph trees record on the third call
            for _ in range(3 if new_graph_step else 1):
                step()
        return step

    def close(self) -> None:
        self.forward = None
        if self.compiled:
            self.torch._dynamo.reset()  # drops compiled graphs and their CUDA graph memory pools
        if self.device == "cuda":
            self.torch.cuda.empty_cache()


# --- ONNX artifacts ----------------------------------------------------------------------------------


def onnx_artifact(model_name: str, precision: str, workdir: Path) -> Path:
    """`workdir/MODEL.PRECISION.onnx`, exported (or calibrated) unless already there."""
    path = workdir / f"{model_name}.{precision}.onnx"
    if path.is_file():
        return path
    if precision == "int8":
        return calibrate_int8(onnx_artifact(model_name, "fp32", workdir), path)
    if precision == "fp16" and not _importable("export.fp16"):
        raise Skip("fp16 ONNX export not available (export/fp16.py missing)")
    from export.model import create_model
    from export.onnx import export_onnx

    return export_onnx(create_model(model_name), path, precision=precision)


def calibrate_int8(fp32_path: Path, out: Path, clips: int = 2, frames: int = 8) -> Path:
    """INT8 Q/DQ ONNX from `calibration.quantize.calibrate`, on a few short random clips (min-max ranges).

    Calibration data only sets the quantization scales: the graph, and so its speed, is the same for
    any data. Short clips keep the calibrator's memory low (it holds every activation of a clip), which
    matters for STAM-64; the exported graph takes any frame count.
    """
    if not _importable("calibration.quantize"):
        raise Skip("calibration not available (calibration/quantize.py missing)")
    from calibration.quantize import calibrate

    rng = np.random.default_rng(0)
    data = (rng.random(contract.input_shape(1, frames)[1:], dtype=np.float32) for _ in range(clips))
    return calibrate(fp32_path, data, out, precision="int8", method="minmax", total=clips).path


# --- runtime backends (ONNX Runtime, TensorRT) -------------------------------------------------------


class RuntimeRunner(Runner):
    """A `runtime.Model`: its `run` takes and returns host arrays and is timed on the host."""

    def __init__(self, model: Any):
        super().__init__(model.name, model.frames_trained)
        self.model = model

    def prepare(self, batch: int) -> Step:
        frames = self.host_input(batch)
        return lambda: self.model.run(frames)

    def close(self) -> None:
        self.model.close()


class OrtRunner(RuntimeRunner):
    """ONNX Runtime: the CPU provider, or the CUDA provider (onnxruntime-gpu) with --device cuda."""

    def __init__(self, onnx_path: Path, device: str):
        import onnxruntime as ort

        from runtime.backends.ort import OrtModel

        if device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
            raise Skip("CUDA execution provider not installed (needs onnxruntime-gpu)")
        wanted = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
        providers = [wanted, "CPUExecutionProvider"] if device == "cuda" else [wanted]
        model = OrtModel(onnx_path, providers=providers)  # the class itself: `providers` is ONNX Runtime's
        if model.providers[0] != wanted:
            model.close()
            raise Skip(f"{wanted} failed to load (session uses {model.providers[0]})")
        super().__init__(model)


class OpenVinoRunner(RuntimeRunner):
    """OpenVINO's CPU plugin through the runtime; bf16 = the fp32 graph compiled with a bf16 inference precision."""

    def __init__(self, onnx_path: Path, precision: str):
        from runtime import open_model
        from runtime.backends.openvino import OpenVinoSettings

        execution = "bf16" if precision == "bf16" else "fp32"
        super().__init__(
            open_model(onnx_path, backend="openvino", precision=execution, openvino=OpenVinoSettings(cache_dir=None))
        )


class TensorRTRunner(Runner):
    """TensorRT through `export.tensorrt.build_engine` and `runtime.open_model`: one plan per batch (opt = it)."""

    def __init__(self, onnx_path: Path, workdir: Path):
        from runtime.artifact import describe

        info = describe(onnx_path)
        super().__init__(info.metadata[contract.META_MODEL], info.frames_trained)
        self.onnx_path = onnx_path
        self.precision = info.precision
        self.workdir = workdir
        self.model: Any = None

    def prepare(self, batch: int) -> Step:
        from export.tensorrt import BuildOptions, build_engine
        from runtime import open_model
        from runtime.contract import DimRange

        self.close()
        plan = self.workdir / f"{self.onnx_path.stem}.b{batch}.plan"
        if not plan.is_file():
            build_engine(
                self.onnx_path,
                BuildOptions(
                    plan_path=plan,
                    precision=self.precision,
                    batch=DimRange(batch, batch, batch),
                    frames=DimRange(self.frames, self.frames, self.frames),
                ),
            )
        self.model = open_model(plan)
        frames = self.host_input(batch)
        return lambda: self.model.run(frames)

    def close(self) -> None:
        if self.model is not None:
            self.model.close()
            self.model = None
