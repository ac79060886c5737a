"""The `[ray]` extra (ray[data] and pyarrow), imported on demand with one line naming it when absent.

Kept free of pyarrow and ray imports itself, so the command line can check before loading anything.
"""

from __future__ import annotations

from types import ModuleType

from runtime.errors import MissingDependencyError

RAY_EXTRA_HINT = "stam-batch needs the ray extra: pip install -e '.[ray]'"


def import_ray() -> ModuleType:
    """`ray` with Ray Data and pyarrow importable, or MissingDependencyError (exit 2) naming the extra."""
    try:
        import pyarrow  # noqa: F401
        import ray
        import ray.data  # noqa: F401 - ray without its data extra fails here
    except ImportError:
        raise MissingDependencyError(RAY_EXTRA_HINT) from None
    return ray
