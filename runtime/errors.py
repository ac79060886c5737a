"""The user-facing errors: each one prints as a single line, and command lines exit non-zero on them."""

import importlib
import importlib.util
import sys
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import TypeVar

T = TypeVar("T")


class StamError(Exception):
    """A problem the user can act on (bad input, wrong artifact); never a bug in this package."""

    exit_code = 2


class VideoError(StamError):
    """A video that cannot be read, or has too few frames to sample."""


class ArtifactError(StamError):
    """A model file (ONNX, plan, sidecar, checkpoint) that is missing, corrupt or of the wrong kind."""


class ShapeError(StamError):
    """A request (batch, frames) outside what the model or engine accepts."""


class MissingDependencyError(StamError):
    """An optional library (tensorrt, cuda-python, polygraphy) that the requested path needs."""


E = TypeVar("E", bound=BaseException)


def detached(error: E) -> E:
    """`error` cut loose from its traceback and chained exceptions, for keeping as a value (a record, an answer).

    A kept exception keeps alive everything its traceback's frames held: for a refused video, the
    decoder with its threads and frame buffers (one 8192x8192 frame is 100 MB). The frame that keeps
    it usually sits in that traceback too, a cycle that only the garbage collector breaks, which in a
    long-lived server may be many requests later: memory then grows with every refused upload. The
    message and type are all a caller keeps, so the rest is dropped here.
    """
    error.__traceback__ = None
    error.__context__ = None
    error.__cause__ = None
    return error


# The extra that brings each optional library (pyproject.toml's optional-dependencies).
EXTRA_OF = {
    "torch": "export",
    "onnxscript": "export",
    "matplotlib": "bench",
    "openvino": "openvino",
    "ray": "ray",
    "pyarrow": "ray",
    "pytriton": "serve",
    "tritonclient": "serve",
    "tensorrt_rtx": "rtx",
    "tensorrt": "gpu",
    "cuda": "gpu",
    "polygraphy": "gpu",
}


def installed(module: str) -> bool:
    """Whether `module` is present (found on the path), whether or not it imports."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a submodule whose parent is missing or fails to import
        return False


def import_failure(module: str, error: BaseException) -> str:
    """`MODULE failed to import: ...`: one line for a library that is present but broken (most often
    versions that do not fit together, e.g. a pandas built for numpy 2 beside numpy 1)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reason = f"{type(error).__name__}: {lines[-1]}" if lines else type(error).__name__
    return f"{module} failed to import: {reason} (`pip check` lists versions that do not fit together)"


def missing_extra(error: ModuleNotFoundError) -> str | None:
    """The one-line answer to an optional library that is not installed, or that is installed but fails to
    import (a submodule or a dependency of it missing); None for anything else (a bug)."""
    name = error.name or ""
    root = name.split(".")[0]
    extra = EXTRA_OF.get(root)
    if extra is None:
        return None
    if installed(root):
        return import_failure(name, error)
    return f"this needs the {extra} extra ({root} is not installed): pip install -e '.[{extra}]'"


def require_extra(module: str, command: str, extra: str) -> ModuleType:
    """Import an optional library, or tell the user in one line which extra brings it; a library that is
    installed but fails to import (versions that do not fit together) is reported as that failure."""
    try:
        return importlib.import_module(module)
    except Exception as error:  # noqa: BLE001 - importing third-party code can raise anything
        missing = error.name if isinstance(error, ModuleNotFoundError) and error.name else module
        if not installed(missing):
            raise MissingDependencyError(f"{command} needs the {extra} extra: pip install -e '.[{extra}]'") from None
        raise MissingDependencyError(import_failure(module, error)) from None


def one_line_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, line: str | None = None
) -> str:
    """Warnings on a command line read like its errors: `warning: ...`, one line, no source excerpt."""
    return f"warning: {message}\n"


def run_cli(run: Callable[[T], int], args: T) -> int:
    """Every command line's contract: a user error is one `error:` line on stderr and its exit code.

    Warnings (random weights, sampling away from the trained frame count) print as one line each.
    """
    previous, warnings.formatwarning = warnings.formatwarning, one_line_warning
    try:
        return run(args)
    except StamError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except ModuleNotFoundError as error:
        message = missing_extra(error)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return MissingDependencyError.exit_code
    finally:
        warnings.formatwarning = previous  # a command run in-process (tests, the demo) leaves no trace


def error_line(error: BaseException, *, last: bool = False) -> str:
    """One line of an exception's message for a one-line report: the first non-empty line (the `last`
    for a traceback-like text, e.g. Ray's), else the exception's type name."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    return lines[-1] if last else lines[0]
