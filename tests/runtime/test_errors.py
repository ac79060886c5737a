"""`run_cli`, every command line's error contract: one line and an exit code, never a traceback."""

from __future__ import annotations

import warnings

import pytest

from runtime import errors
from runtime.errors import MissingDependencyError, ShapeError, require_extra, run_cli


def fails_with(error: BaseException):
    def run(_args) -> int:
        raise error

    return run


def test_user_errors_are_one_line(capsys):
    assert run_cli(fails_with(ShapeError("frames=9 is outside 1..8")), None) == 2
    assert capsys.readouterr().err == "error: frames=9 is outside 1..8\n"


@pytest.mark.parametrize(
    "module, extra",
    [
        ("torch", "export"),
        ("ray.data", "ray"),
        ("openvino", "openvino"),
        ("pytriton", "serve"),
        ("tensorrt_rtx", "rtx"),
    ],
)
def test_a_missing_optional_library_names_its_extra(module, extra, capsys, monkeypatch):
    monkeypatch.setattr(errors, "installed", lambda name: False)  # as on an install without the extra
    assert run_cli(fails_with(ModuleNotFoundError(f"No module named {module!r}", name=module)), None) == 2
    root = module.split(".")[0]
    assert capsys.readouterr().err == (
        f"error: this needs the {extra} extra ({root} is not installed): pip install -e '.[{extra}]'\n"
    )


def test_an_installed_library_whose_submodule_is_missing_is_that_failure(capsys):
    """ray is installed here (or not): a missing piece of it is reported as such, never as a missing extra."""
    pytest.importorskip("ray")
    error = ModuleNotFoundError("No module named 'ray.data.gone'", name="ray.data.gone")
    assert run_cli(fails_with(error), None) == 2
    assert capsys.readouterr().err == (
        "error: ray.data.gone failed to import: ModuleNotFoundError: No module named 'ray.data.gone' "
        "(`pip check` lists versions that do not fit together)\n"
    )


def write_module(folder, name: str, body: str) -> None:
    (folder / f"{name}.py").write_text(body)


def test_require_extra_tells_missing_from_broken(tmp_path, monkeypatch):
    """Absent: the extra to install. Present but failing (any exception, here numpy's binary-size
    ValueError): that failure. Present but needing an absent library: the extra that brings it."""
    monkeypatch.syspath_prepend(str(tmp_path))
    write_module(
        tmp_path,
        "stam_broken_lib",
        "raise ValueError('numpy.dtype size changed, may indicate binary incompatibility')\n",
    )
    write_module(tmp_path, "stam_needs_absent", "import stam_absent_dependency\n")
    with pytest.raises(MissingDependencyError) as missing:
        require_extra("stam_absent_lib", "stam-x", "x")
    assert str(missing.value) == "stam-x needs the x extra: pip install -e '.[x]'"
    with pytest.raises(MissingDependencyError) as broken:
        require_extra("stam_broken_lib", "stam-x", "x")
    assert str(broken.value) == (
        "stam_broken_lib failed to import: ValueError: numpy.dtype size changed, may indicate binary "
        "incompatibility (`pip check` lists versions that do not fit together)"
    )
    with pytest.raises(MissingDependencyError) as dependency:
        require_extra("stam_needs_absent", "stam-x", "x")
    assert str(dependency.value) == "stam-x needs the x extra: pip install -e '.[x]'"


def test_a_missing_module_of_our_own_is_a_bug_and_propagates():
    with pytest.raises(ModuleNotFoundError):
        run_cli(fails_with(ModuleNotFoundError("No module named 'runtime.nope'", name="runtime.nope")), None)


def test_warnings_print_as_one_line_during_the_command_only():
    before = warnings.formatwarning
    seen = []

    def run(_args) -> int:
        seen.append(warnings.formatwarning("frames repeated", UserWarning, "x.py", 3, "source line"))
        return 0

    assert run_cli(run, None) == 0
    assert seen == ["warning: frames repeated\n"]
    assert warnings.formatwarning is before
