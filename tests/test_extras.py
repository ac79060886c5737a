"""The [ray] and [serve] extras share one environment, installed in either order.

Each order gets a fresh venv (`python -m venv`) and two `pip install` calls of the extras'
requirement strings as pyproject.toml declares them (with the project's numpy bound, the one base
requirement they meet), then `pip check` and the imports stam-batch and stam-serve need. pip's
cache (filled by `make venv`) makes the downloads local; the installs still take minutes, hence
the marker. Skipped with the reason when pip cannot reach its package index.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

pytestmark = pytest.mark.extras
ROOT = Path(__file__).resolve().parents[1]
IMPORTS = {"ray": "import ray.data, pyarrow, pandas", "serve": "import pytriton.triton, tritonclient.http"}
INSTALL_TIMEOUT_S = 900


def requirements() -> tuple[list[str], dict[str, list[str]]]:
    """(the base requirements the extras share, each extra's requirement strings) from pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    shared = [r for r in project["dependencies"] if r.startswith("numpy")]
    return shared, project["optional-dependencies"]


def pip(env: Path, *args: str, timeout: float = INSTALL_TIMEOUT_S) -> subprocess.CompletedProcess:
    command = [str(env / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def index_reachable(tmp_path_factory) -> None:
    """Skip (with pip's reason) when the package index cannot be reached."""
    folder = tmp_path_factory.mktemp("probe")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(folder), "six"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        pytest.skip(f"pip cannot reach its package index: {lines[-1] if lines else 'no output'}")


@pytest.mark.parametrize("order", [("ray", "serve"), ("serve", "ray")], ids="-then-".join)
def test_two_extras_install_into_one_working_environment_in_either_order(index_reachable, order, tmp_path):
    shared, extras = requirements()
    env = tmp_path / "env"
    venv.EnvBuilder(with_pip=True).create(env)
    for extra in order:
        result = pip(env, "install", "-q", "--no-compile", *shared, *extras[extra])
        assert result.returncode == 0, f"pip install [{extra}]: {result.stderr[-3000:]}"
    check = pip(env, "check", timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    code = "; ".join(IMPORTS[extra] for extra in order)
    imported = subprocess.run([str(env / "bin" / "python"), "-c", code], capture_output=True, text=True, timeout=300)
    assert imported.returncode == 0, imported.stderr[-3000:]
