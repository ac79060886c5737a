"""What the host CPU can do, as the kernels that run STAM care about it (x86 feature flags).

ONNX Runtime's fused INT8 kernels on x86 CPUs without VNNI multiply unsigned by signed bytes with
an instruction (vpmaddubsw) whose 16-bit sums saturate; on STAM's Q/DQ graphs that moved logits by
10% of their range on stam_tiny. The backends ask here before choosing a kernel path.
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")  # 8-bit dot products with 32-bit sums
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


CPUINFO = Path("/proc/cpuinfo")


def cpu_info(path: Path = CPUINFO) -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (model name, flags, family...); empty where there is
    none (macOS, Windows). The one reader of that file, for the backends and the benchmarks' machine records."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    fields = {}
    for line in text.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The host's `flags` (`cpu_info()`); empty where there are none."""
    return frozenset(cpu_info().get("flags", "").split())


def cpu_model() -> str:
    """The CPU's model name, e.g. `AMD EPYC 9654 96-Core Processor`; the platform's word where unknown."""
    return cpu_info().get("model name") or platform.processor() or platform.machine()


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, which containers and taskset narrow), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")


def int8_saturates(flags: frozenset[str] | None = None, x86: bool | None = None) -> bool:
    """True on x86 without an 8-bit dot-product instruction (ARM's sdot/udot kernels do not saturate)."""
    flags = cpu_flags() if flags is None else flags
    x86 = is_x86() if x86 is None else x86
    return x86 and not any(flag in flags for flag in INT8_DOT_FLAGS)


def has_bf16(flags: frozenset[str] | None = None) -> bool:
    """Native bf16 arithmetic (AVX-512 BF16 or AMX)."""
    flags = cpu_flags() if flags is None else flags
    return any(flag in flags for flag in BF16_FLAGS)
