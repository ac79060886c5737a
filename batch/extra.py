"""The `[ray]` extra (ray[data] and pyarrow), imported on demand with one line naming it when absent.

Kept free of pyarrow and ray imports itself, so the command line can check before loading anything.
A library that is installed but fails to import (e.g. pandas built for numpy 2 beside numpy 1) is
reported as that failure, not as a missing extra.
"""

from __future__ import annotations

from types import ModuleType

from runtime.errors import require_extra

COMMAND = "stam-batch"
EXTRA = "ray"
RAY_EXTRA_HINT = f"{COMMAND} needs the {EXTRA} extra: pip install -e '.[{EXTRA}]'"


def import_ray() -> ModuleType:
    """`ray` with Ray Data and pyarrow importable, or MissingDependencyError (exit 2) naming the extra
    or the import that failed."""
    for module in ("pyarrow", "ray", "ray.data"):  # ray without its data extra fails at ray.data
        require_extra(module, COMMAND, EXTRA)
    return require_extra("ray", COMMAND, EXTRA)
