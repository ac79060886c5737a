"""benchmarks.trt_selftest: its shapes, agreement, timing and table (the run itself needs a GPU)."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from benchmarks import timing, trt_selftest


def test_shape_points_cover_min_opt_max():
    profile = trt_selftest.selftest_profile(16)
    assert trt_selftest.shape_points(profile) == [(1, 8), (2, 16), (4, 32)]


def test_agreement_is_max_abs_diff_and_top1():
    assert trt_selftest.agreement(np.array([[0.0, 1.0]]), np.array([[0.5, 0.4]])) == (0.6, 0.0)
    assert trt_selftest.agreement(np.array([[0.0, 1.0], [2.0, 0.0]]), np.array([[0.0, 1.5], [1.0, 0.0]])) == (1.0, 1.0)


def test_median_latency_times_only_the_measured_calls(monkeypatch):
    """A clock that each call advances by a known step: warm-up calls are not timed, the median is exact."""
    steps = iter([0.5, 0.5, 0.005, 0.001, 0.003, 0.009, 0.002])  # two slow warm-up calls, then five timed ones
    clock = [0.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])

    def run():
        clock[0] += next(steps)

    assert trt_selftest.median_latency(run, warmup=2, iterations=5) == pytest.approx(0.003)


def test_table_shows_every_row():
    row = trt_selftest.Row("stam_tiny", "fp16", 2, 8, 1e-3, 2e-3, 1.0, 1.0, 1.5, 1333.3)
    table = trt_selftest.render_table([row])
    assert "stam_tiny" in table and "1333.3" in table and "1.00e-03" in table


def test_selftest_refuses_in_one_line_before_any_export(monkeypatch, capsys):
    """No library: the extra to install; a library but no GPU: the missing driver. Exit 2 either way."""
    from runtime.backends import cuda

    monkeypatch.setattr(cuda, "driver_problem", lambda: "no NVIDIA driver: libcuda.so.1 cannot be loaded")
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    assert trt_selftest.main(["--models", "stam_tiny"]) == 2
    assert capsys.readouterr().err.startswith("error: TensorRT (tensorrt) is not installed: this needs the gpu extra")
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))
    assert trt_selftest.main(["--models", "stam_tiny"]) == 2
    assert capsys.readouterr().err == (
        "error: the self-test: a TensorRT plan needs an NVIDIA GPU and driver to run, "
        "and this machine has no NVIDIA driver: libcuda.so.1 cannot be loaded; run the "
        ".onnx artifact with ONNX Runtime instead\n"
    )
