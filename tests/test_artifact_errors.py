"""One reader describes an artifact for every command, so one damaged file gets one error text everywhere."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest

from runtime import ArtifactError, contract, describe, open_model, open_window_model
from runtime.artifact import KIND_ONNX, KIND_PLAN
from tests.runtime.conftest import build_mean_rgb, contract_metadata
from tests.runtime.fake_trt import PROFILE, write_plan

DAMAGED = {
    "text": b"this is not a model\n",
    "empty": b"",
    "binary": b"\x00junk\xff\x10",
}
BACKENDS = ["onnxruntime"] + (["openvino"] if importlib.util.find_spec("openvino") else [])


def command_error(capsys, main: Callable[[list[str]], int], argv: list[str]) -> str:
    """The one `error:` line a command printed, without its prefix."""
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0].removeprefix("error: ")


@pytest.mark.parametrize("damage", DAMAGED)
def test_a_damaged_onnx_file_has_one_error_text_everywhere(damage, tmp_path, capsys):
    from batch import cli as batch_cli
    from benchmarks import accuracy
    from calibration import cli as calibrate_cli
    from runtime import infer

    path = tmp_path / "model.onnx"
    path.write_bytes(DAMAGED[damage])
    with pytest.raises(ArtifactError) as described:
        describe(path)
    expected = str(described.value)
    assert expected.startswith(f"{path}: not a loadable ONNX model (")
    texts = {}
    for backend in BACKENDS:
        with pytest.raises(ArtifactError) as opened:
            open_model(path, backend=backend)
        texts[f"open_model on {backend}"] = str(opened.value)
    with pytest.raises(ArtifactError) as windowed:
        open_window_model(path)
    texts["open_window_model"] = str(windowed.value)
    (tmp_path / "videos").mkdir()
    texts["runtime.infer"] = command_error(capsys, infer.main, [str(path), "v.mp4"])
    texts["stam-calibrate"] = command_error(
        capsys, calibrate_cli.main, [str(path), "--videos", str(tmp_path / "videos"), "-o", str(tmp_path / "q.onnx")]
    )
    texts["benchmarks.accuracy"] = command_error(capsys, accuracy.main, [str(path), "--val-dir", str(tmp_path)])
    if importlib.util.find_spec("ray"):
        texts["stam-batch"] = command_error(capsys, batch_cli.main, [str(path), "v.mp4", "--out", str(tmp_path / "o")])
    if importlib.util.find_spec("tritonclient"):
        from serve import repository

        texts["stam-triton-repo"] = command_error(capsys, repository.main, [str(path), "--out", str(tmp_path / "repo")])
    assert {where: text for where, text in texts.items() if text != expected} == {}


def test_describe_a_whole_onnx_model(tmp_path):
    info = describe(build_mean_rgb(tmp_path / "m.onnx"))
    assert (info.kind, info.part, info.partner, info.sidecar) == (KIND_ONNX, contract.PART_WHOLE, None, None)
    assert info.num_classes == len(info.labels) and info.precision == "fp32"
    assert (info.batch_range, info.frames_range) == (None, None) and info.frames_trained > 0


def test_describe_a_plan_reads_its_sidecar(tmp_path):
    info = describe(write_plan(tmp_path))
    assert (info.kind, info.batch_range, info.frames_range) == (KIND_PLAN, PROFILE.batch, PROFILE.frames)
    assert info.sidecar is not None and info.precision == contract_metadata()[contract.META_PRECISION]


def test_describe_a_split_part_names_its_partner_beside_it(tmp_path):
    metadata = contract_metadata(**{contract.META_PART: "temporal", contract.META_PARTNER: "m.frames.onnx"})
    info = describe(build_mean_rgb(tmp_path / "m.temporal.onnx", metadata=metadata))
    assert (info.part, info.partner, info.is_split) == ("temporal", tmp_path / "m.frames.onnx", True)
    with pytest.raises(ArtifactError, match="its partner m.frames.onnx is not beside it"):
        open_window_model(info.path)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing.onnx", "no such file"),
        ("model.txt", r"unknown artifact type '\.txt'"),
        ("missing.plan", "no such file"),
    ],
)
def test_describe_refuses_what_is_not_an_artifact(tmp_path, name, message):
    if name.endswith(".txt"):
        (tmp_path / name).write_text("x")
    with pytest.raises(ArtifactError, match=message):
        describe(Path(tmp_path / name))
