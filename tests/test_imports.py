"""The package surface: other packages use the runtime's declared API, and the runtime uses none of them.

Read from the source (AST), so a violation is found without importing anything: every import of
`runtime` outside it names `runtime` itself or a submodule listed in `runtime/__init__.py`'s
docstring, takes only public names (those in `__all__` where the module declares one), and
never a command-line module. `import runtime` must not load a backend's library.
"""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import runtime

ROOT = Path(__file__).resolve().parents[1]
CONSUMERS = ("export", "calibration", "batch", "serve", "benchmarks")
CLI_MODULES = ("runtime.infer",)
HEAVY_LIBRARIES = ("onnxruntime", "openvino", "tensorrt", "tensorrt_rtx", "torch", "ray")


def documented_submodules() -> set[str]:
    """Every `runtime.x[.y]` the package docstring names."""
    return set(re.findall(r"`(runtime(?:\.\w+)+)`", runtime.__doc__ or ""))


def python_files(*packages: str) -> Iterator[Path]:
    for package in packages:
        yield from sorted((ROOT / package).rglob("*.py"))


def imports(path: Path) -> Iterator[tuple[int, str, list[str]]]:
    """(line, module, names imported from it) for every import in the file, nested ones included."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module, [alias.name for alias in node.names]


def declared_names(module: str) -> set[str] | None:
    """A documented submodule's `__all__` (read from its source), or None when it declares none."""
    parts = module.split(".")
    source = ROOT.joinpath(*parts).with_suffix(".py")
    if not source.is_file():
        source = ROOT.joinpath(*parts, "__init__.py")
    for node in ast.parse(source.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return set(ast.literal_eval(node.value))
    return None


def runtime_import_problems(path: Path) -> Iterator[str]:
    documented = documented_submodules()
    for line, module, names in imports(path):
        if module != "runtime" and not module.startswith("runtime."):
            continue
        where = f"{path.relative_to(ROOT)}:{line}"
        if module in CLI_MODULES:
            yield f"{where}: imports the command-line module {module}"
        elif module != "runtime" and module not in documented:
            yield f"{where}: {module} is not a documented submodule (runtime/__init__.py's docstring)"
        private = [name for name in names if name.startswith("_")]
        if private:
            yield f"{where}: imports private names {private} from {module}"
        if module == "runtime":
            unknown = [n for n in names if n not in runtime.__all__ and f"runtime.{n}" not in documented]
            if unknown:
                yield f"{where}: {unknown} are neither in runtime.__all__ nor documented submodules"
        elif module in documented and (public := declared_names(module)) is not None:
            undeclared = [name for name in names if name not in public and f"{module}.{name}" not in documented]
            if undeclared:
                yield f"{where}: {undeclared} are not in {module}.__all__"


def test_other_packages_use_only_the_declared_runtime_api():
    problems = [problem for path in python_files(*CONSUMERS) for problem in runtime_import_problems(path)]
    assert not problems, "\n".join(problems)


def test_the_runtime_imports_no_other_package_of_this_project():
    problems = [
        f"{path.relative_to(ROOT)}:{line}: imports {module}"
        for path in python_files("runtime")
        for line, module, _ in imports(path)
        if module.split(".")[0] in (*CONSUMERS, "torch", "ray")
    ]
    assert not problems, "\n".join(problems)


def test_documented_submodules_exist():
    missing = [name for name in documented_submodules() if not _exists(name)]
    assert not missing, missing


def _exists(module: str) -> bool:
    parts = module.split(".")
    return ROOT.joinpath(*parts).with_suffix(".py").is_file() or ROOT.joinpath(*parts, "__init__.py").is_file()


@pytest.mark.parametrize("name", runtime.__all__)
def test_every_public_name_says_what_it_is(name):
    obj = getattr(runtime, name)
    doc = inspect.getdoc(obj) or ""
    assert doc and not doc.startswith(f"{name}("), f"runtime.{name} has no docstring of its own"


def test_import_runtime_loads_no_backend_library():
    code = f"import sys, runtime\nprint(','.join(m for m in {HEAVY_LIBRARIES!r} if m in sys.modules))\n"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"import runtime loaded {result.stdout.strip()}"
