"""runtime/ works without torch: every module imports with torch blocked, and none names torch or export/.

Without openvino too: the runtime imports, `auto` runs an .onnx on ONNX Runtime, and asking for
OpenVINO names the extra to install.
"""

from __future__ import annotations

import ast
from pathlib import Path

import runtime
from tests.blocking import import_blocking, python_blocking, run_module_blocking

RUNTIME_DIR = Path(runtime.__file__).parent
FORBIDDEN = ("torch", "torchvision", "export")  # never named in runtime/ source, even lazily
# Optional libraries that a backend or command imports when used, never at import time.
OPTIONAL = ("ray", "pytriton", "tritonclient", "openvino", "tensorrt", "tensorrt_rtx", "polygraphy", "cuda")


def test_every_runtime_module_imports_without_torch_or_optional_libraries():
    result = import_blocking(FORBIDDEN + OPTIONAL, "runtime")
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.split()[-1]) >= 8  # the walk really found the package's modules


def test_calibration_imports_without_torch_or_export():
    """Calibration uses the runtime only (the design's layering), so it installs without torch."""
    result = import_blocking(FORBIDDEN + OPTIONAL, "calibration")
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.split()[-1]) >= 5


def test_the_blocker_does_block():
    result = import_blocking(("torch",), "export", "export.onnx")
    assert result.returncode != 0 and "torch is blocked" in result.stderr


def forbidden_imports(source: str) -> list[str]:
    """Module names of every import statement (top-level or inside functions) naming a forbidden package."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.split(".")[0] in FORBIDDEN]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [node.module] if node.module.split(".")[0] in FORBIDDEN else []
    return found


def test_no_runtime_source_names_torch_or_export_even_lazily():
    offenders = {
        str(path.relative_to(RUNTIME_DIR)): names
        for path in sorted(RUNTIME_DIR.rglob("*.py"))
        if (names := forbidden_imports(path.read_text()))
    }
    assert offenders == {}


def test_the_source_scan_finds_lazy_imports():
    source = "def f():\n    import torch.nn\n    from export.model import Stam\n"
    assert forbidden_imports(source) == ["torch.nn", "export.model"]


def test_runtime_imports_and_auto_runs_without_openvino(mean_rgb_onnx):
    code = f"import runtime\nmodel = runtime.open_model({str(mean_rgb_onnx)!r})\nprint(model.backend)\n"
    result = python_blocking(("openvino",), code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["onnxruntime"]


def test_cli_backend_openvino_without_openvino_names_the_extra(mean_rgb_onnx, tmp_path):
    result = run_module_blocking(
        ("openvino",), "runtime.infer", str(mean_rgb_onnx), str(tmp_path / "v.mp4"), "--backend", "openvino"
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "error: the OpenVINO backend needs the openvino extra: pip install -e '.[openvino]'\n"
