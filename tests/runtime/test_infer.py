"""`python -m runtime.infer`: results equal PyTorch's, bad videos fail alone, bad artifacts exit 2."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runtime import contract
from runtime.decode import read_frames
from runtime.infer import main
from runtime.preprocess import preprocess
from runtime.results import VideoResult, render_table, softmax
from tests.runtime.conftest import LABELS, contract_metadata, mean_rgb_logits
from tests.videos import write_video


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """Real videos (two sizes and lengths) and broken files, written once for this module."""
    root = tmp_path_factory.mktemp("clips")
    good = {
        "a": write_video(root / "a.mp4", num_frames=20, width=96, height=64),
        "b": write_video(root / "nested" / "b.mp4", num_frames=11, width=64, height=80),
        "c": write_video(root / "nested" / "deeper" / "c.mp4", num_frames=9, width=72, height=72),
    }
    bad = root.parent / f"{root.name}_bad"
    bad.mkdir()
    (bad / "random.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    (bad / "text.mp4").write_text("not a video\n")
    (bad / "empty.mp4").write_bytes(b"")
    data = good["a"].read_bytes()
    (bad / "truncated.mp4").write_bytes(data[: len(data) // 3])
    return {**good, **{p.stem: p for p in bad.iterdir()}, "root": root, "missing": bad / "missing.mp4"}


OPENVINO = importlib.util.find_spec("openvino") is not None  # what `--backend auto` runs an .onnx on


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "runtime.infer", *map(str, args)], capture_output=True, text=True, timeout=300
    )


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def expected_mean_rgb(path: Path, frames: int) -> np.ndarray:
    return mean_rgb_logits(preprocess(read_frames(str(path), frames))[None])[0]


# --- end to end against PyTorch --------------------------------------------------------------


def test_json_results_equal_pytorch_on_the_same_frames(tiny_model, tiny_onnx, tiny_labels, clips):
    torch = pytest.importorskip("torch")
    videos = [clips["a"], clips["b"], clips["c"]]
    result = run_cli(tiny_onnx, *videos, "--json", "--logits", "--batch-size", "2", "--topk", "3")
    assert result.returncode == 0, result.stderr
    lines = json_lines(result.stdout)
    assert [line["path"] for line in lines] == [str(v) for v in videos]
    batch = np.stack([preprocess(read_frames(str(v), 8)) for v in videos])  # trained T is the default
    with torch.no_grad():
        expected = tiny_model.eval()(torch.from_numpy(batch)).numpy()
    for line, logits in zip(lines, expected):
        np.testing.assert_allclose(line["logits"], logits, atol=contract.FP32_MAX_ABS_DIFF, rtol=0)
        probabilities = softmax(logits)
        top = np.argsort(-probabilities)[:3]
        assert [p["index"] for p in line["topk"]] == top.tolist()
        assert [p["label"] for p in line["topk"]] == [tiny_labels[i] for i in top]
        np.testing.assert_allclose([p["probability"] for p in line["topk"]], probabilities[top], atol=1e-5)


def test_frames_option_changes_the_sampling(tiny_onnx, clips, capsys):
    assert main([str(tiny_onnx), str(clips["a"]), "--json", "--logits", "--frames", "5"]) == 0
    five = json_lines(capsys.readouterr().out)[0]["logits"]
    assert main([str(tiny_onnx), str(clips["a"]), "--json", "--logits"]) == 0
    eight = json_lines(capsys.readouterr().out)[0]["logits"]
    assert not np.allclose(five, eight)


# --- output formats --------------------------------------------------------------------------


def test_table_lists_topk_per_video_and_errors(mean_rgb_onnx, clips, capsys):
    code = main([str(mean_rgb_onnx), str(clips["a"]), str(clips["missing"]), "--topk", "2"])
    out, err = capsys.readouterr()
    assert code == 1 and err == "1 of 2 videos failed\n"
    lines = out.splitlines()
    width = len(str(clips["missing"]))
    assert lines[0] == f"{'video':<{width}}   #    prob  label"
    assert lines[1].startswith(f"{str(clips['a']):<{width}}   1  0.")
    assert lines[2].startswith(f"{'':<{width}}   2  0.")
    assert lines[3] == f"{str(clips['missing'])}   -       -  error: {clips['missing']}: no such file"
    probabilities = softmax(expected_mean_rgb(clips["a"], 4))
    top = np.argsort(-probabilities)[:2]
    assert [line.split()[-1] for line in lines[1:3]] == [LABELS[i].split()[-1] for i in top]
    assert [float(line.split()[-2 - (" " in LABELS[i])]) for line, i in zip(lines[1:3], top)] == pytest.approx(
        probabilities[top], abs=1e-4
    )


def test_json_line_shape(mean_rgb_onnx, clips, capsys):
    assert main([str(mean_rgb_onnx), str(clips["b"]), "--json", "--topk", "1"]) == 0
    (line,) = json_lines(capsys.readouterr().out)
    index = int(np.argmax(expected_mean_rgb(clips["b"], 4)))
    assert line.keys() == {"path", "backend", "topk", "notes"} and line["notes"] == []
    assert line["topk"][0]["index"] == index and line["topk"][0]["label"] == LABELS[index]


def test_softmax_is_stable_and_labels_fall_back_to_indices():
    np.testing.assert_allclose(softmax(np.array([1000.0, 0.0, -1000.0])), [1.0, 0.0, 0.0])
    assert np.isfinite(softmax(np.array([-1e30, -1e30]))).all()
    result = VideoResult.from_logits("v.mp4", np.array([0.0, 2.0, 1.0], np.float32), [], topk=2)
    assert [(p.label, p.index) for p in result.predictions] == [("#1", 1), ("#2", 2)]
    failed = VideoResult("x.mp4", error="x.mp4: bad")
    assert json.loads(failed.to_json()) == {"path": "x.mp4", "error": "x.mp4: bad"}
    assert render_table([VideoResult("x.mp4", error="bad")]).splitlines()[1] == "x.mp4   -       -  error: bad"


# --- bad videos ------------------------------------------------------------------------------


BAD = ["missing", "random", "text", "empty", "truncated"]


def test_bad_videos_fail_alone_and_are_counted(mean_rgb_onnx, clips, capsys):
    videos = [clips["a"], *(clips[name] for name in BAD), clips["b"]]
    code = main([str(mean_rgb_onnx), *map(str, videos), "--json", "--batch-size", "2", "--workers", "2"])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.splitlines()[-1] == f"{len(BAD)} of {len(videos)} videos failed"
    lines = json_lines(out)
    assert [line["path"] for line in lines] == list(map(str, videos))  # input order kept
    assert [("error" in line) for line in lines] == [False, *[True] * len(BAD), False]
    for line in lines[1:-1]:
        assert line["error"] and "\n" not in line["error"] and "Traceback" not in line["error"]
    assert lines[0]["topk"][0]["index"] == int(np.argmax(expected_mean_rgb(clips["a"], 4)))


def test_directories_are_searched_recursively(mean_rgb_onnx, clips, capsys, tmp_path):
    (tmp_path / "empty_dir").mkdir()
    code = main([str(mean_rgb_onnx), str(clips["root"]), str(tmp_path / "empty_dir"), "--json"])
    lines = json_lines(capsys.readouterr().out)
    assert code == 1
    assert sorted(line["path"] for line in lines[:-1]) == sorted(str(clips[k]) for k in "abc")
    empty = tmp_path / "empty_dir"
    assert lines[-1] == {
        "path": str(empty),
        "backend": "openvino" if OPENVINO else "onnxruntime",
        "error": f"{empty}: no video files in this directory",
    }


# --- artifact and usage errors: one line, exit 2 ---------------------------------------------


def assert_one_line_error(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_text_file_named_onnx_exits_2(tmp_path, clips):
    artifact = tmp_path / "model.onnx"
    artifact.write_text("hello\n")
    assert_one_line_error(run_cli(artifact, clips["a"]), "not a loadable ONNX model")


def test_onnx_without_metadata_exits_2(onnx_factory, clips, capsys):
    metadata = contract_metadata()
    del metadata[contract.META_MODEL]
    assert main([str(onnx_factory("bare.onnx", metadata=metadata)), str(clips["a"])]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: ") and "metadata lacks stam.model" in err and err.count("\n") == 1


def test_plan_without_sidecar_exits_2(tmp_path, clips, capsys):
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"plan")
    assert main([str(plan), str(clips["a"])]) == 2
    assert "no sidecar model.plan.json" in capsys.readouterr().err


def test_frames_outside_the_model_range_exits_2(onnx_factory, clips, capsys):
    artifact = onnx_factory("fixed.onnx", dims=("batch", 4, 3, 224, 224))
    assert main([str(artifact), str(clips["a"]), "--frames", "6"]) == 2
    assert capsys.readouterr().err == "error: frames=6 is outside the model's range 4..4\n"
    assert main([str(artifact), str(clips["a"])]) == 0  # default: the trained T (4)


def test_batch_size_is_clamped_to_the_model_range(onnx_factory, clips, capsys):
    artifact = onnx_factory("batch2.onnx", dims=(2, "frames", 3, 224, 224))
    videos = [clips["a"], clips["b"], clips["c"]]
    assert main([str(artifact), *map(str, videos), "--json", "--batch-size", "8"]) == 0  # 2 + 1 padded to 2
    lines = json_lines(capsys.readouterr().out)
    expected = [int(np.argmax(expected_mean_rgb(video, 4))) for video in videos]
    assert [line["topk"][0]["index"] for line in lines] == expected


def test_usage_errors_exit_2(mean_rgb_onnx, clips):
    assert run_cli(mean_rgb_onnx, clips["a"], "--topk", "0").returncode == 2
    result = run_cli(mean_rgb_onnx)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_logits_without_json_is_a_usage_error(mean_rgb_onnx, clips):
    assert_one_line_error(run_cli(mean_rgb_onnx, clips["a"], "--logits"), "--logits adds the raw logits")


def test_frames_far_from_the_trained_count_warn_in_one_line(mean_rgb_onnx, clips):
    result = run_cli(mean_rgb_onnx, clips["b"], "--frames", "17", "--json")  # trained 4: measured up to 16
    assert result.returncode == 0 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("warning: --frames 17 is far outside the model's trained 4 frames")
    assert run_cli(mean_rgb_onnx, clips["b"], "--frames", "16", "--json").stderr == ""


def test_sampling_notes_come_in_the_table_and_the_json(mean_rgb_onnx, clips):
    """A clip shorter than the reference's 10 s is sampled uniformly instead, and says so per video."""
    videos = [clips["a"], clips["missing"], clips["c"]]
    lines = json_lines(run_cli(mean_rgb_onnx, *videos, "--json", "--sampling", "reference").stdout)
    assert [line["path"] for line in lines] == [str(video) for video in videos]
    assert all(len(lines[i]["notes"]) == 1 and "10 s" in lines[i]["notes"][0] for i in (0, 2))
    table = run_cli(mean_rgb_onnx, *videos, "--sampling", "reference", "--topk", "2").stdout.splitlines()
    note_rows = [i for i, row in enumerate(table) if row.strip().startswith("note: ")]
    assert len(note_rows) == 2 and table[note_rows[0] - 1].strip().startswith("2 ")  # after a's top-k rows


@pytest.mark.parametrize("argv, videos, expected", [([], 1, "all"), ([], 2, "shared"), (["--decoders", "3"], 2, 3)])
def test_decoders_per_video_follow_the_videos_in_flight(mean_rgb_onnx, clips, monkeypatch, argv, videos, expected):
    """A lone video gets every CPU's decoder, several share them, --decoders overrides both."""
    from runtime import clips as clip_loader
    from runtime.decode import decoders_per_video

    seen = []
    load = clip_loader.load_clip
    monkeypatch.setattr(clip_loader, "load_clip", lambda *a, **k: seen.append(k["decoders"]) or load(*a, **k))
    paths = [str(clips["a"]), str(clips["b"])][:videos]
    assert main([str(mean_rgb_onnx), *paths, "--json", "--workers", "2", *argv]) == 0
    wanted = {"all": decoders_per_video(1), "shared": decoders_per_video(2)}.get(expected, expected)
    assert seen == [wanted] * videos
