"""`stam-calibrate`: arguments, output, one-line errors (decoding stubbed; the gate test decodes for real)."""

from __future__ import annotations

import onnx
import pytest

from calibration.cli import main
from runtime import contract
from runtime.onnx_io import proto_metadata
from tests.calibration.conftest import make_video_tree


@pytest.fixture
def videos(tmp_path):
    return make_video_tree(tmp_path / "videos", {"class 0": 2, "class 1": 2})


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_calibrates_with_a_summary_and_no_bar_in_logs(tiny_onnx, videos, tmp_path, capsys, fake_decode):
    output = tmp_path / "out.int8.onnx"
    code, out, err = run(
        capsys,
        tiny_onnx,
        "--videos",
        videos,
        "--clips",
        3,
        "--method",
        "minmax",
        "--cache",
        tmp_path / "cache",
        "-o",
        output,
    )
    assert code == 0, err
    assert f"wrote {output} (int8, minmax, 3 clips of 8 frames" in out
    assert "calibrating" not in err and "\r" not in err  # no progress bar in a log (see test_progress.py)
    assert proto_metadata(onnx.load(str(output)))[contract.META_PRECISION] == "int8"
    assert len(fake_decode) == 3
    code, _, err = run(
        capsys,
        tiny_onnx,
        "--videos",
        videos,
        "--clips",
        3,
        "--method",
        "minmax",
        "--cache",
        tmp_path / "cache",
        "-o",
        output,
    )
    assert code == 0 and len(fake_decode) == 3  # second run: every clip from the cache


def test_fewer_videos_than_clips_warns_and_uses_them(tiny_onnx, videos, tmp_path, capsys, fake_decode):
    code, out, err = run(
        capsys,
        tiny_onnx,
        "--videos",
        videos,
        "--clips",
        50,
        "--frames",
        4,
        "--method",
        "minmax",
        "--precision",
        "fp8",
        "--no-cache",
        "-o",
        tmp_path / "out.fp8.onnx",
    )
    assert code == 0, err
    assert "warning: asked for 50 clips" in err and "using 4" in err
    assert "(fp8, minmax, 4 clips of 4 frames" in out


def test_eval_prints_agreement_and_top1_from_class_folders(tiny_onnx, videos, tmp_path, capsys, fake_decode):
    code, out, err = run(
        capsys,
        tiny_onnx,
        "--videos",
        videos,
        "--clips",
        2,
        "--method",
        "minmax",
        "--no-cache",
        "--eval",
        videos,
        "-o",
        tmp_path / "out.onnx",
    )
    assert code == 0, err
    assert "top-1 agreement" in out and "fp32 top-1" in out and "max |logit diff|" in out


@pytest.mark.parametrize(
    "case, message",
    [
        ("no_videos", "no videos found"),
        ("not_stam", "not a stam-deploy artifact"),
        ("unwritable", "does not exist"),
        ("bad_clips", "--clips must be at least 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(case, message, tiny_onnx, videos, tmp_path, capsys, fake_decode):
    from tests.calibration.test_quantize import _write_plain_onnx

    model, source, output, clips = tiny_onnx, videos, tmp_path / "out.onnx", 4
    if case == "no_videos":
        source = tmp_path / "empty"
        source.mkdir()
    elif case == "not_stam":
        model = _write_plain_onnx(tmp_path / "plain.onnx")
    elif case == "unwritable":
        output = tmp_path / "missing" / "out.onnx"
    else:
        clips = 0
    code, out, err = run(capsys, model, "--videos", source, "--clips", clips, "--frames", 8, "--no-cache", "-o", output)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not output.exists()
