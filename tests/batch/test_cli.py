"""stam-batch's command line: every bad request is one line and exit 2, before Ray starts."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from batch.cli import main
from batch.extra import RAY_EXTRA_HINT
from runtime.limits import BATCH_LIMITS
from tests.blocking import import_blocking
from tests.runtime.conftest import build_mean_rgb

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_ray_start(monkeypatch):
    """These requests must fail before Ray: starting it is an error here (needs the ray extra)."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray started for a request that is wrong"))


def run(capsys, *args) -> tuple[int, str]:
    code = main([str(arg) for arg in args])
    return code, capsys.readouterr().err


def test_a_missing_or_broken_model_is_one_line(no_ray_start, capsys, corpus, tmp_path):
    code, err = run(capsys, tmp_path / "none.onnx", corpus["videos"], "--out", tmp_path / "out")
    assert (code, err) == (2, f"error: {tmp_path / 'none.onnx'}: no such file\n")
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    code, err = run(capsys, tmp_path / "junk.onnx", corpus["videos"], "--out", tmp_path / "out")
    assert code == 2 and err.startswith("error: ") and "not a loadable ONNX model" in err and err.count("\n") == 1
    code, err = run(capsys, tmp_path / "model.plan", corpus["videos"], "--out", tmp_path / "out")
    assert (code, err) == (2, f"error: {tmp_path / 'model.plan'}: no such file\n")


def test_no_videos_in_the_input_is_one_line(no_ray_start, capsys, mean_rgb_model, tmp_path):
    (tmp_path / "empty").mkdir()
    code, err = run(capsys, mean_rgb_model, tmp_path / "empty", "--out", tmp_path / "out")
    assert (code, err) == (2, f"error: no videos in {tmp_path / 'empty'}\n")


def test_frames_outside_the_model_range_is_one_line(no_ray_start, capsys, corpus, tmp_path):
    model = build_mean_rgb(tmp_path / "fixed.onnx", dims=("batch", 4, 3, 224, 224))
    code, err = run(capsys, model, corpus["videos"], "--out", tmp_path / "out", "--frames", "8")
    assert (code, err) == (2, "error: frames=8 is outside the model's range 4..4\n")


def test_a_folder_of_another_job_is_refused(no_ray_start, capsys, corpus, mean_rgb_model, tmp_path):
    from batch.output import OutputDir

    OutputDir(str(tmp_path / "out")).prepare({"model": {"file": "other.onnx", "sha256": "0"}})
    code, err = run(capsys, mean_rgb_model, corpus["videos"], "--out", tmp_path / "out")
    assert code == 2 and "holds results of another job" in err and err.count("\n") == 1


def test_without_the_ray_extra_one_line_names_it():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'ray': raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
    )
    result = run_with_finder(code)
    assert (result.returncode, result.stderr) == (2, f"error: {RAY_EXTRA_HINT}\n")


def run_with_finder(finder: str) -> subprocess.CompletedProcess:
    """stam-batch in a fresh interpreter whose imports `finder` (code installing a meta path finder) changes."""
    code = finder + "from batch.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run(
        [sys.executable, "-c", code, "m.onnx", "videos/", "--out", "o"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_installed_ray_data_that_fails_to_import_is_that_failure_not_a_missing_extra():
    """numpy 1 under a pandas built for numpy 2: ray.data is present but raises on import."""
    code = (
        "import sys, importlib.abc, importlib.util\n"
        "class Broken(importlib.abc.MetaPathFinder, importlib.abc.Loader):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        return importlib.util.spec_from_loader(name, self) if name == 'ray.data' else None\n"
        "    def create_module(self, spec): return None\n"
        "    def exec_module(self, module):\n"
        "        raise ValueError('numpy.dtype size changed, may indicate binary incompatibility')\n"
        "sys.meta_path.insert(0, Broken())\n"
    )
    result = run_with_finder(code)
    assert (result.returncode, result.stderr) == (
        2,
        "error: ray.data failed to import: ValueError: numpy.dtype size changed, may indicate binary "
        "incompatibility (`pip check` lists versions that do not fit together)\n",
    )


def test_the_runtime_imports_without_ray():
    result = import_blocking(("torch", "export", "ray", "batch"), "runtime")
    assert result.returncode == 0, result.stderr


openvino_backend = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None, reason="the [openvino] extra is not installed"
)


@openvino_backend
def test_backend_and_precision_open_the_model_and_are_recorded(corpus, mean_rgb_model, tmp_path):
    """`--backend openvino` reaches the driver's check, `_job.json` and every model actor."""
    from batch.cli import build_parser
    from batch.job import JobConfig, plan_job
    from batch.output import JOB_FILE
    from batch.steps import Classify, ClassifyOptions, decode_video
    from runtime import options
    from tests.batch.test_steps import MODEL_ID, as_batch

    args = build_parser().parse_args(
        [str(mean_rgb_model), str(corpus["a"]), "--out", str(tmp_path / "out"), "--backend", "openvino"]
    )
    config = options.config_from(JobConfig, args, with_logits=args.logits)
    assert (config.backend, config.precision, config.limits) == ("openvino", "fp32", BATCH_LIMITS)
    plan_job(config)
    record = json.loads((tmp_path / "out" / JOB_FILE).read_text())
    assert (record["backend"], record["precision"]) == ("openvino", "fp32")
    step = Classify(str(mean_rgb_model), MODEL_ID, ClassifyOptions(2, False, None, config.backend, config.precision))
    assert step.model.backend == "openvino"
    row = step(as_batch([decode_video({"path": str(corpus["a"])}, 4, "uniform", config.limits)])).to_pylist()[0]
    assert row["error"] is None and len(row["topk"]) == 2


def test_a_plan_on_another_backend_is_refused_before_ray(no_ray_start, capsys, corpus, tmp_path):
    from tests.runtime.fake_trt import write_plan

    plan = write_plan(tmp_path)
    code, err = run(capsys, plan, corpus["videos"], "--out", tmp_path / "out", "--backend", "openvino")
    assert (code, err) == (2, f"error: {plan}: a TensorRT plan runs on TensorRT only, not on openvino\n")
