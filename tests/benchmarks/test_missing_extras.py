"""Benchmark commands run without the export extra (no torch) say so in one line, exit 2."""

from __future__ import annotations

import pytest

from tests.blocking import run_module_blocking

EXPECTED = "error: this needs the export extra (torch is not installed): pip install -e '.[export]'\n"


@pytest.mark.parametrize("argv", [["benchmarks.accuracy_table"], ["benchmarks.timeline", "--minutes", "1"]])
def test_benchmark_without_torch_is_one_line(argv, tmp_path):
    result = run_module_blocking(("torch",), *argv, "--help")
    assert result.returncode == 0  # the help needs nothing optional
    result = run_module_blocking(("torch",), *argv)
    assert result.returncode == 2, result.stderr
    assert result.stderr.endswith(EXPECTED) and "Traceback" not in result.stderr
