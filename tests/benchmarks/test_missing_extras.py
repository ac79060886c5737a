"""Benchmark commands run without the export extra (no torch) say so in one line, exit 2, before any work."""

from __future__ import annotations

import pytest

from tests.blocking import run_module_blocking


@pytest.mark.parametrize("module", ["benchmarks.accuracy_table", "benchmarks.timeline", "benchmarks.pipeline"])
def test_benchmark_without_torch_is_one_line(module):
    assert run_module_blocking(("torch",), module, "--help").returncode == 0  # the help needs nothing optional
    result = run_module_blocking(("torch",), module)
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"error: python -m {module} needs the export extra: pip install -e '.[export]'\n"
