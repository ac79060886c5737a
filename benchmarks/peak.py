"""The CPU's matrix-multiply peak, measured with every library present, and the theoretical one where known.

Why: "% of peak" is only honest against the best the machine can do. One library's matmul is not
the machine's peak (PyTorch's 2048x2048 fp32 matmul reached 0.21 TFLOP/s on a CPU where ONNX
Runtime then ran STAM-16 at "139% of peak"), so each available engine multiplies the same square
matrices: PyTorch, numpy (its BLAS), ONNX Runtime and OpenVINO (a one-MatMul ONNX graph, the second
operand a constant as a model's weights are). fp32 everywhere; bf16 where the CPU has it; int8 as a
Q/DQ graph (the form `stam-calibrate` writes), which both ONNX engines turn into integer kernels.
The best iteration of each counts (a peak is what the hardware can do; on a shared machine the
median is too low), and the best library per dtype is the peak the model runs are compared with.

The theoretical peak is cores x clock x FLOPs per cycle. FLOPs per cycle follow from the
microarchitecture (vendor, family, model in /proc/cpuinfo); the clock is the maximum one the kernel
reports (cpufreq). Under a hypervisor that hides it, only the nominal clock is known: the peak at
that clock is reported as such, with the clock the best measurement implies.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime.cpu import cpu_flags, cpu_info, has_bf16, usable_cpus

SIZE = 2048
ITERS = 5
WARMUP = 2
LIBRARIES = ("torch", "numpy", "onnxruntime", "openvino")
DTYPES = ("fp32", "bf16", "int8")


@dataclass(frozen=True)
class PeakMeasurement:
    """One library's best square-matmul throughput at one dtype, or why it was not measured."""

    library: str
    dtype: str
    size: int
    tflops: float | None
    note: str = ""


# --- measuring -----------------------------------------------------------------------------------


def best_seconds(step: Callable[[], Any], iters: int = ITERS, warmup: int = WARMUP) -> float:
    for _ in range(warmup):
        step()
    best = float("inf")
    for _ in range(iters):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    return best


def measure_cpu_peaks(
    dtypes: tuple[str, ...] = DTYPES,
    size: int = SIZE,
    flags: frozenset[str] | None = None,
    log: Callable[[str], None] = print,
) -> list[PeakMeasurement]:
    """Every library x dtype; a combination that cannot run here is kept with its reason (tflops None)."""
    flags = cpu_flags() if flags is None else flags
    results = []
    with tempfile.TemporaryDirectory(prefix="stam-peak-") as folder:
        for dtype in dtypes:
            for library in LIBRARIES:
                result = _measure_one(library, dtype, size, flags, Path(folder))
                log(
                    f"matmul peak {library} {dtype} ({size}x{size}): "
                    + (f"{result.tflops:.3f} TFLOP/s" if result.tflops else f"not measured ({result.note})")
                )
                results.append(result)
    return results


def _measure_one(library: str, dtype: str, size: int, flags: frozenset[str], folder: Path) -> PeakMeasurement:
    if dtype == "bf16" and not has_bf16(flags):
        return PeakMeasurement(library, dtype, size, None, "CPU has no bf16 (avx512_bf16/AMX)")
    measure = MEASURES.get((library, dtype))
    if measure is None:
        return PeakMeasurement(library, dtype, size, None, UNSUPPORTED.get((library, dtype), "no such kernel"))
    try:
        seconds = measure(size, folder)
    except ImportError as error:
        return PeakMeasurement(library, dtype, size, None, f"not installed ({error.name})")
    return PeakMeasurement(library, dtype, size, 2.0 * size**3 / seconds / 1e12)


def _operands(size: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((size, size), dtype=np.float32), rng.standard_normal((size, size), dtype=np.float32)


def _torch(dtype: str) -> Callable[[int, Path], float]:
    def measure(size: int, folder: Path) -> float:
        import torch

        a, b = (torch.from_numpy(x).to({"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]) for x in _operands(size))
        with torch.inference_mode():
            return best_seconds(lambda: torch.matmul(a, b))

    return measure


def _numpy(size: int, folder: Path) -> float:
    a, b = _operands(size)
    return best_seconds(lambda: a @ b)


def matmul_graph(size: int, quantized: bool, path: Path) -> Path:
    """Y = A @ W with W a constant; quantized: A and W through QuantizeLinear/DequantizeLinear (int8, symmetric)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    a, w = _operands(size)
    nodes, inits = [], []
    if quantized:
        scale_w = np.abs(w).max(axis=0) / 127
        inits += [
            numpy_helper.from_array(np.round(w / scale_w).astype(np.int8), "w_q"),
            numpy_helper.from_array(scale_w.astype(np.float32), "w_scale"),
            numpy_helper.from_array(np.array(np.abs(a).max() / 127, dtype=np.float32), "a_scale"),
            numpy_helper.from_array(np.array(0, dtype=np.int8), "zero"),
        ]
        nodes += [
            helper.make_node("QuantizeLinear", ["a", "a_scale", "zero"], ["a_q"]),
            helper.make_node("DequantizeLinear", ["a_q", "a_scale", "zero"], ["a_dq"]),
            helper.make_node("DequantizeLinear", ["w_q", "w_scale"], ["w_dq"], axis=1),
            helper.make_node("MatMul", ["a_dq", "w_dq"], ["y"]),
        ]
    else:
        inits.append(numpy_helper.from_array(w, "w"))
        nodes.append(helper.make_node("MatMul", ["a", "w"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "matmul",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size, size])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def _onnxruntime(dtype: str) -> Callable[[int, Path], float]:
    def measure(size: int, folder: Path) -> float:
        import onnxruntime as ort

        path = matmul_graph(size, dtype == "int8", folder / f"matmul_{dtype}.onnx")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        a = _operands(size)[0]
        return best_seconds(lambda: session.run(None, {"a": a}))

    return measure


def _openvino(dtype: str) -> Callable[[int, Path], float]:
    def measure(size: int, folder: Path) -> float:
        import openvino

        path = matmul_graph(size, dtype == "int8", folder / f"matmul_{dtype}.onnx")
        precision = "bf16" if dtype == "bf16" else "f32"
        compiled = openvino.Core().compile_model(
            str(path), "CPU", {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
        )
        request, a = compiled.create_infer_request(), _operands(size)[0]
        return best_seconds(lambda: request.infer({0: a}, share_inputs=True))

    return measure


MEASURES: dict[tuple[str, str], Callable[[int, Path], float]] = {
    ("torch", "fp32"): _torch("fp32"),
    ("torch", "bf16"): _torch("bf16"),
    ("numpy", "fp32"): _numpy,
    ("onnxruntime", "fp32"): _onnxruntime("fp32"),
    ("onnxruntime", "int8"): _onnxruntime("int8"),
    ("openvino", "fp32"): _openvino("fp32"),
    ("openvino", "bf16"): _openvino("bf16"),
    ("openvino", "int8"): _openvino("int8"),
}
UNSUPPORTED = {
    ("numpy", "bf16"): "numpy has no bf16",
    ("numpy", "int8"): "numpy's integer matmul is not BLAS",
    ("torch", "int8"): "no int8 matmul in eager PyTorch on CPU",
    ("onnxruntime", "bf16"): "no bf16 MatMul on the CPU provider",
}


def best_per_dtype(measurements: list[PeakMeasurement]) -> dict[str, PeakMeasurement]:
    """dtype -> the fastest library's measurement (the peak the model runs are compared with)."""
    best: dict[str, PeakMeasurement] = {}
    for m in measurements:
        if m.tflops is None:
            continue
        held = best.get(m.dtype)
        if held is None or m.tflops > (held.tflops or 0.0):  # only measured ones are held
            best[m.dtype] = m
    return best


# --- theoretical ---------------------------------------------------------------------------------


def fp32_flops_per_cycle(info: dict[str, str]) -> tuple[int | None, str]:
    """fp32 FLOPs per cycle per core from the microarchitecture, and its name; None where not known.

    AMD: Zen and Zen+ (family 0x17, model < 0x30) have two 128-bit FMA pipes (16); Zen 2, 3 and 4
    two 256-bit ones (32; Zen 4 runs AVX-512 on them in two halves); Zen 5 (family 0x1A) two 512-bit
    ones (64). Intel without AVX-512: two 256-bit FMA ports (32) from Haswell on; with AVX-512 the
    count of 512-bit FMA units varies by SKU (1 or 2), so it is not guessed.
    """
    vendor, flags = info.get("vendor_id", ""), set(info.get("flags", "").split())
    try:
        family, model = int(info.get("cpu family", "")), int(info.get("model", ""))
    except ValueError:
        return None, "unknown"
    if vendor == "AuthenticAMD":
        if family == 0x17:
            return (32, "AMD Zen 2") if model >= 0x30 else (16, "AMD Zen/Zen+")
        if family == 0x19:
            zen4 = 0x10 <= model <= 0x1F or 0x60 <= model <= 0xAF
            return 32, "AMD Zen 4" if zen4 else "AMD Zen 3"
        if family == 0x1A:
            return 64, "AMD Zen 5"
    if vendor == "GenuineIntel" and "fma" in flags and "avx512f" not in flags:
        return 32, "Intel AVX2 + FMA (2 ports)"
    return None, f"{vendor} family {family} model {model}"


def max_clock_ghz(cpu: int = 0) -> float | None:
    path = Path(f"/sys/devices/system/cpu/cpu{cpu}/cpufreq/cpuinfo_max_freq")
    try:
        return int(path.read_text()) / 1e6
    except (OSError, ValueError):
        return None


def theoretical_peak(
    best_fp32_tflops: float | None,
    info: dict[str, str] | None = None,
    max_ghz: float | None = None,
    cores: int | None = None,
) -> dict[str, Any]:
    """The fp32 peak from cores x clock x FLOPs per cycle, saying which clock it used and what is unknown."""
    info = cpu_info() if info is None else info
    per_cycle, arch = fp32_flops_per_cycle(info)
    cores = cores or usable_cpus()
    nominal = float(info["cpu MHz"]) / 1e3 if info.get("cpu MHz") else None
    result: dict[str, Any] = {
        "microarchitecture": arch,
        "fp32_flops_per_cycle_per_core": per_cycle,
        "cores": cores,
        "max_clock_ghz": max_ghz,
        "nominal_clock_ghz": nominal,
        "tflops": None,
        "clock_used": None,
        "implied_clock_ghz": None,
    }
    if per_cycle is None:
        result["note"] = "FLOPs per cycle unknown for this CPU"
        return result
    if best_fp32_tflops:
        result["implied_clock_ghz"] = best_fp32_tflops * 1e3 / (cores * per_cycle)
    clock, which = (max_ghz, "max") if max_ghz else (nominal, "nominal")
    if clock:
        result.update(tflops=cores * clock * per_cycle / 1e3, clock_used=which)
    result["note"] = "at the maximum clock the kernel reports" if which == "max" else "at the nominal clock"
    return result


def peaks_document(measurements: list[PeakMeasurement], theory: dict[str, Any]) -> dict[str, Any]:
    return {
        "measured": [asdict(m) for m in measurements],
        "best": {dtype: asdict(m) for dtype, m in best_per_dtype(measurements).items()},
        "theoretical_fp32": theory,
    }
