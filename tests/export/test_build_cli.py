"""stam-build as a user runs it: a real RTX build, every bad input as one line + exit 2 + nothing on disk,
and --check with the real parser or the shipped table (saying which)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from export import build_cli
from runtime.backends.trt import target_of
from runtime.contract import Sidecar
from tests.export.trt_graphs import custom_op_graph
from tests.runtime.conftest import build_mean_rgb


def _cli(capsys, *argv) -> tuple[int, str, str]:
    code = build_cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out.strip(), captured.err.strip()


@pytest.mark.trt_builder
def test_build_from_the_command_line(trt_library, tiny_onnx, tmp_path):
    """A user's build, --inspect included: without a GPU to read the plan back, one warning line and the plan."""
    from runtime.backends.cuda import driver_problem

    plan = tmp_path / "tiny.plan"
    target = target_of(trt_library)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "export.build_cli",
            "--target",
            target,
            str(tiny_onnx),
            "-o",
            str(plan),
            "--batch",
            "1:2:4",
            "--frames",
            "2:8:16",
            "--inspect",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"built {plan} (fp32, {trt_library.__name__} {trt_library.__version__}, ")
    assert run.stdout.splitlines()[0].endswith("profile batch 1:2:4, frames 2:8:16")
    if driver_problem():
        assert run.stderr.startswith("warning: cannot inspect the plan on this machine") and run.stderr.count("\n") == 1
    else:
        assert run.stderr == "" and "output precision" in run.stdout
    sidecar = Sidecar.read(plan)
    assert sidecar.target == target and str(sidecar.profile.frames) == "2:8:16"


@pytest.mark.trt_builder
def test_bad_inputs_are_one_line_exit_2_and_leave_nothing(trt_library, tiny_onnx, tmp_path, capsys):
    work = tmp_path / "work"
    work.mkdir()
    truncated = work / "truncated.onnx"
    truncated.write_bytes(Path(tiny_onnx).read_bytes()[:50_000])
    not_frames = build_mean_rgb(work / "video_input.onnx", input_name="video")
    unsupported = custom_op_graph(work / "custom.onnx")
    good = build_mean_rgb(work / "m.onnx")
    target = ["--target", target_of(trt_library)]
    cases = [
        ((truncated,), "not a readable ONNX file"),
        ((not_frames,), "its one graph input must be 'frames'; found 'video'"),
        ((unsupported,), "node frobnicate_logits (Frobnicate):"),
        ((good, "--frames", "8:4:16"), "frames range must satisfy 1 <= min <= opt <= max, got 8:4:16"),
        ((good, "--workspace", "1e-9"), "could not build the engine with --workspace 1e-09 GiB"),
        ((work / "missing.onnx",), "no such file"),
        ((good, "--batch", "a:b"), "--batch must be MIN:OPT:MAX"),
        ((good, "-o", work / "nodir" / "m.plan"), "does not exist"),
        ((good, "--workspace", "0"), "--workspace must be a positive"),
    ]
    if target[1] == "rtx":
        cases += [
            ((good, "--timing-cache", work / "t.cache"), "--timing-cache does nothing with TensorRT-RTX"),
            ((good, "--compute-capability", "9.0"), "cannot target compute capability 9.0 (it offers 7.5,"),
            ((good, "--compute-capability", "eight"), "--compute-capability takes MAJOR.MINOR values"),
            ((good, "--compare"), "--compare runs the plan through Polygraphy"),
        ]
    before = sorted(work.iterdir())
    for argv, message in cases:
        code, _, err = _cli(capsys, *target, *argv)
        assert code == 2 and err.startswith("error: ") and message in err and "\n" not in err, (argv, err)
        assert sorted(work.iterdir()) == before, argv


def test_compute_capability_needs_the_rtx_target(tmp_path, capsys):
    code, _, err = _cli(capsys, build_mean_rgb(tmp_path / "m.onnx"), "--compute-capability", "8.6")
    assert code == 2 and err == "error: --compute-capability needs --target rtx: TensorRT builds for the GPU it runs on"


@pytest.mark.parametrize("library, extra", [("tensorrt", "gpu"), ("tensorrt_rtx", "rtx")])
def test_a_missing_library_names_its_extra(library, extra, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, library, None)  # `import library` now raises ImportError
    target = "rtx" if library == "tensorrt_rtx" else "tensorrt"
    code, _, err = _cli(capsys, build_mean_rgb(tmp_path / "m.onnx"), "--target", target, "-o", tmp_path / "m.plan")
    assert (
        code == 2 and f"({library}) is not installed: this needs the {extra} extra: pip install -e '.[{extra}]'" in err
    )
    assert "\n" not in err and not (tmp_path / "m.plan").exists()


@pytest.mark.trt_builder
def test_check_asks_the_real_parser(trt_library, tmp_path, capsys):
    code, out, _ = _cli(capsys, "--check", build_mean_rgb(tmp_path / "m.onnx"), "--target", target_of(trt_library))
    assert (
        code == 0
        and out
        == f"PASSED: checked with the {trt_library.__name__} {trt_library.__version__} ONNX parser (2 nodes, 0 errors)"
    )
    code, out, _ = _cli(capsys, "--check", custom_op_graph(tmp_path / "bad.onnx"))
    lines = out.splitlines()
    assert (
        code == 1
        and lines[0].startswith("error: node frobnicate_logits (Frobnicate): ")
        and lines[-1].startswith("FAILED")
    )


def test_check_without_a_library_uses_the_table_and_says_so(monkeypatch, tmp_path, capsys):
    for library in ("tensorrt", "tensorrt_rtx"):
        monkeypatch.setitem(sys.modules, library, None)
    code, out, _ = _cli(capsys, "--check", build_mean_rgb(tmp_path / "m.onnx"))
    assert code == 0 and out.splitlines()[-1] == (
        "checked with the shipped operator table (TensorRT 10); install the rtx extra to ask the real ONNX parser"
    )
