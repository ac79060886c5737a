"""Timing primitives: warm-up, per-iteration clocks (host perf_counter or CUDA events), latency statistics.

A CUDA kernel launch returns before the GPU has finished, so host timers around torch CUDA calls
measure launch overhead, not work: on the GPU each iteration is bracketed by CUDA events on the
current stream and the device is synchronised once at the end. Backends whose `run` returns host
arrays (ONNX Runtime, TensorRT through `runtime`) are synchronous and are timed on the host.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Per-iteration latency of one configuration, in milliseconds."""

    iters: int
    median_ms: float
    mean_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float


def summarize(latencies_s: Sequence[float]) -> LatencyStats:
    """Median and tail percentiles (linear interpolation) of per-iteration seconds."""
    if not latencies_s:
        raise ValueError("no latencies to summarize")
    ms = np.asarray(latencies_s, dtype=np.float64) * 1e3
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return LatencyStats(len(ms), float(p50), float(ms.mean()), float(p90), float(p99), float(ms.min()), float(ms.max()))


def time_host(step: Callable[[], Any], iters: int, warmup: int) -> list[float]:
    """Seconds per call of a synchronous `step`, after `warmup` untimed calls."""
    for _ in range(warmup):
        step()
    latencies = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        latencies.append(time.perf_counter() - start)
    return latencies


def time_cuda(step: Callable[[], Any], iters: int, warmup: int) -> list[float]:
    """Seconds per call of an asynchronous CUDA `step`, from events recorded around each call."""
    import torch

    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(iters)]
    for start, end in events:
        start.record()
        step()
        end.record()
    torch.cuda.synchronize()
    return [start.elapsed_time(end) / 1e3 for start, end in events]


CLOCKS = {"host": time_host, "cuda": time_cuda}


def time_step(step: Callable[[], Any], iters: int, warmup: int, clock: str) -> list[float]:
    """Time `step` with the clock its runner declares: "host" or "cuda"."""
    if clock not in CLOCKS:
        raise ValueError(f"unknown clock {clock!r}; expected one of {', '.join(CLOCKS)}")
    return CLOCKS[clock](step, iters, warmup)


@dataclass(frozen=True)
class MatmulPeak:
    """Achieved throughput of one large square matmul: the ceiling a model's TFLOP/s is compared with."""

    device: str
    dtype: str
    size: int
    tflops: float


def matmul_peak(device: str, dtype: str, size: int | None = None, iters: int | None = None) -> MatmulPeak:
    """Time `torch.matmul` of two size x size matrices (2 size^3 FLOPs) with the device's clock.

    fp32 on CUDA runs with torch's default precision (no TF32), as the fp32 model runs do. The fastest
    iteration counts: a peak is what the hardware can do, and on a shared CPU the median is too low.
    """
    import torch

    size = size or (8192 if device == "cuda" else 2048)
    iters = iters or (50 if device == "cuda" else 10)
    torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    a = torch.randn(size, size, device=device, dtype=torch_dtype)
    b = torch.randn(size, size, device=device, dtype=torch_dtype)
    with torch.inference_mode():
        latencies = time_step(lambda: torch.matmul(a, b), iters, warmup=3, clock="cuda" if device == "cuda" else "host")
    return MatmulPeak(device, dtype, size, 2.0 * size**3 / min(latencies) / 1e12)
