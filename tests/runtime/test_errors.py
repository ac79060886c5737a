"""`run_cli`, every command line's error contract: one line and an exit code, never a traceback."""

from __future__ import annotations

import warnings

import pytest

from runtime.errors import ShapeError, run_cli


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
def test_a_missing_optional_library_names_its_extra(module, extra, capsys):
    assert run_cli(fails_with(ModuleNotFoundError(f"No module named {module!r}", name=module)), None) == 2
    root = module.split(".")[0]
    assert capsys.readouterr().err == (
        f"error: this needs the {extra} extra ({root} is not installed): pip install -e '.[{extra}]'\n"
    )


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
