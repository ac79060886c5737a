"""Run Python in a fresh interpreter where some packages cannot be imported, as on a lean install.

A meta path finder refuses the named top-level packages, so the code under test sees exactly the
ModuleNotFoundError (with its `name`) that a user without that extra would see.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

BLOCKER = """
import sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"{{name}} is blocked: runtime/ must not import it", name=name)
        return None

sys.meta_path.insert(0, Block())
"""

IMPORT_MODULES = """
import importlib, pkgutil
package = importlib.import_module(sys.argv[1])
names = sys.argv[2:] or [m.name for m in pkgutil.walk_packages(package.__path__, sys.argv[1] + ".")]
for name in names:
    importlib.import_module(name)
print("imported", len(names))
"""

RUN_MODULE = """
import runpy
module = sys.argv[1]
sys.argv = [module, *sys.argv[2:]]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def python_blocking(blocked: Sequence[str], code: str, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    script = BLOCKER.format(blocked=tuple(blocked)) + code
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=timeout)


def import_blocking(blocked: Sequence[str], package: str, *modules: str) -> subprocess.CompletedProcess:
    """Import `modules` (default: every module of `package`) with `blocked` unimportable."""
    return python_blocking(blocked, IMPORT_MODULES, package, *modules)


def run_module_blocking(blocked: Sequence[str], module: str, *args: str) -> subprocess.CompletedProcess:
    """`python -m module args...` with `blocked` unimportable."""
    return python_blocking(blocked, RUN_MODULE, module, *args)
