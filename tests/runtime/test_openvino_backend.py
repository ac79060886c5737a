"""The OpenVINO backend: fp32 parity with ONNX Runtime, explicit precision, `auto`'s choice, hints, cache.

The contract checks shared with ONNX Runtime run on both backends in test_backends.py; this file
holds what is OpenVINO's own. Without the [openvino] extra the runtime must still work: the test_no_torch.py block its import in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runtime import contract, open_model
from runtime.backends import resolve_backend
from runtime.backends.openvino import OpenVinoSettings, compile_config, resolve_precision
from runtime.errors import StamError
from tests.runtime.conftest import contract_metadata, mean_rgb_logits
from tests.runtime.fake_trt import write_plan
from tests.runtime.test_backends import random_frames

openvino = pytest.importorskip("openvino", reason="the [openvino] extra is not installed")
CPU_HAS_BF16 = "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


@pytest.fixture
def no_cache() -> OpenVinoSettings:
    return OpenVinoSettings(cache_dir=None)


def test_mean_rgb_on_openvino_is_exact_and_says_how_it_ran(mean_rgb_onnx, no_cache):
    with open_model(mean_rgb_onnx, backend="openvino", openvino=no_cache) as model:
        assert model.backend == "openvino" and model.precision == "fp32"
        assert model.inference_precision == "f32"  # read back from the compiled model, not our request
        for batch, frames in [(1, 1), (3, 4), (2, 9)]:
            inputs = random_frames(batch, frames, seed=batch)
            np.testing.assert_allclose(model.run(inputs), mean_rgb_logits(inputs), atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 8), (2, 5), (3, 12)])
def test_stam_fp32_matches_onnx_runtime_within_1e_4(tiny_onnx, shape):
    """The issue's bar: OpenVINO fp32 == ONNX Runtime fp32 to 1e-4 max abs, at and away from T_trained."""
    inputs = random_frames(*shape, seed=sum(shape))
    with open_model(tiny_onnx, backend="onnxruntime") as ort_model, open_model(tiny_onnx, backend="openvino") as ov:
        reference, logits = ort_model.run(inputs), ov.run(inputs)
    print(f"{shape}: max |OpenVINO - ONNX Runtime| = {np.abs(logits - reference).max():.2e}")
    np.testing.assert_allclose(logits, reference, atol=contract.FP32_MAX_ABS_DIFF, rtol=0)
    assert (logits.argmax(1) == reference.argmax(1)).all()


def test_throughput_hint_splits_a_batch_over_streams_with_the_same_logits(tiny_onnx):
    inputs = random_frames(4, 8, seed=7)
    settings = OpenVinoSettings(hint="throughput", streams=2, cache_dir=None)
    with open_model(tiny_onnx, backend="openvino", openvino=settings) as parallel:
        assert parallel.streams == 2
        split = parallel.run(inputs)
    with open_model(tiny_onnx, backend="openvino", openvino=OpenVinoSettings(threads=1, cache_dir=None)) as single:
        assert single.threads == 1
        whole = single.run(inputs)
    assert split.shape == (4, 10)
    np.testing.assert_allclose(split, whole, atol=contract.FP32_MAX_ABS_DIFF, rtol=0)


def test_compiled_model_is_cached_and_reused(tiny_onnx, tmp_path):
    cache = tmp_path / "ov-cache"
    settings = OpenVinoSettings(cache_dir=cache)
    with open_model(tiny_onnx, backend="openvino", openvino=settings) as first:
        logits = first.run(random_frames(1, 8))
    blobs = sorted(cache.iterdir())
    assert blobs, "the compiled model was not written to the cache"
    with open_model(tiny_onnx, backend="openvino", openvino=settings) as second:  # loads the blob
        np.testing.assert_array_equal(second.run(random_frames(1, 8)), logits)
    assert sorted(cache.iterdir()) == blobs  # nothing recompiled into a new entry


def test_an_unusable_cache_folder_only_costs_compile_time(mean_rgb_onnx, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    settings = OpenVinoSettings(cache_dir=blocker / "cache")
    assert "CACHE_DIR" not in compile_config("fp32", settings)
    with open_model(mean_rgb_onnx, backend="openvino", openvino=settings) as model:
        assert model.run(random_frames(1, 2)).shape == (1, 4)


def test_fp32_is_requested_explicitly_whatever_the_cpu():
    config = compile_config("fp32", OpenVinoSettings(cache_dir=None))
    assert config["INFERENCE_PRECISION_HINT"] == "f32" and config["PERFORMANCE_HINT"] == "LATENCY"
    assert compile_config("bf16", OpenVinoSettings(hint="throughput", threads=2, streams=3, cache_dir=None)) == {
        "INFERENCE_PRECISION_HINT": "bf16",
        "PERFORMANCE_HINT": "THROUGHPUT",
        "DYNAMIC_QUANTIZATION_GROUP_SIZE": "0",
        "INFERENCE_NUM_THREADS": "2",
        "NUM_STREAMS": "3",
    }


def test_bf16_is_refused_without_bf16_hardware_and_auto_falls_back_to_fp32():
    without = ["FP32", "INT8", "BIN", "EXPORT_IMPORT"]
    with pytest.raises(StamError, match="bf16 needs a CPU with avx512_bf16 or AMX.*FP32, INT8") as info:
        resolve_precision("bf16", without)
    assert "\n" not in str(info.value)
    assert resolve_precision("auto", without) == "fp32"
    assert resolve_precision("auto", [*without, "BF16"]) == "bf16"
    assert resolve_precision("bf16", ["FP32", "BF16"]) == "bf16"
    with pytest.raises(StamError, match="precision must be one of"):
        resolve_precision("fp16", without)


def test_bf16_on_this_cpu_runs_within_its_tolerance_or_is_refused(tiny_onnx):
    inputs = random_frames(2, 8, seed=11)
    if not CPU_HAS_BF16:
        with pytest.raises(StamError, match="bf16 needs a CPU with avx512_bf16 or AMX"):
            open_model(tiny_onnx, backend="openvino", precision="bf16")
        return
    with (
        open_model(tiny_onnx, backend="onnxruntime") as ort_model,
        open_model(tiny_onnx, backend="openvino", precision="bf16") as ov,
    ):
        assert ov.inference_precision == "bf16"
        reference, logits = ort_model.run(inputs), ov.run(inputs)
    bound = contract.tolerance("bf16", float(np.abs(reference).max()))
    assert np.abs(logits - reference).max() <= bound and (logits.argmax(1) == reference.argmax(1)).all()


def test_settings_are_validated():
    with pytest.raises(StamError, match="hint must be one of latency, throughput"):
        OpenVinoSettings(hint="fast")
    with pytest.raises(StamError, match="threads must be a positive integer"):
        OpenVinoSettings(threads=0)


# --- what `auto` picks ---------------------------------------------------------------------------


def test_auto_runs_onnx_on_openvino_and_plans_on_tensorrt(mean_rgb_onnx, tmp_path):
    with open_model(mean_rgb_onnx) as model:
        assert model.backend == "openvino" and model.inference_precision == "f32"
    assert resolve_backend(write_plan(tmp_path), "auto", "fp32", None) == "tensorrt"
    assert resolve_backend(mean_rgb_onnx, "auto", "fp32", ["CPUExecutionProvider"]) == "onnxruntime"


def test_auto_keeps_fp8_graphs_on_onnx_runtime_and_int8_where_the_cpu_lacks_vnni(onnx_factory, monkeypatch):
    fp8 = onnx_factory("fp8.onnx", metadata=contract_metadata(**{contract.META_PRECISION: "fp8"}))
    int8 = onnx_factory("int8.onnx", metadata=contract_metadata(**{contract.META_PRECISION: "int8"}))
    assert resolve_backend(fp8, "auto", "fp32", None) == "onnxruntime"
    with open_model(fp8) as model:
        assert model.backend == "onnxruntime"
    from runtime import cpu

    for saturates, expected in ((True, "onnxruntime"), (False, "openvino")):
        monkeypatch.setattr(cpu, "int8_saturates", lambda saturates=saturates: saturates)
        assert resolve_backend(int8, "auto", "fp32", None) == expected


@pytest.mark.parametrize(
    ("backend", "precision", "suffix", "message"),
    [
        ("openvino", "fp32", ".plan", "a TensorRT plan runs on TensorRT only, not on openvino"),
        ("tensorrt", "fp32", ".onnx", r"TensorRT runs plans; build one first \(stam-build"),
        ("onnxruntime", "bf16", ".onnx", "precision 'bf16' runs on OpenVINO only"),
        ("tvm", "fp32", ".onnx", "unknown backend 'tvm'"),
    ],
)
def test_impossible_requests_are_one_line_errors(mean_rgb_onnx, tmp_path, backend, precision, suffix, message):
    path = mean_rgb_onnx if suffix == ".onnx" else write_plan(tmp_path)
    with pytest.raises(StamError, match=message) as info:
        open_model(path, backend=backend, precision=precision)
    assert "\n" not in str(info.value)


def test_openvino_settings_refused_when_another_backend_runs(mean_rgb_onnx):
    with pytest.raises(StamError, match="OpenVINO settings given, but the model runs on onnxruntime"):
        open_model(mean_rgb_onnx, backend="onnxruntime", openvino=OpenVinoSettings())


# --- the command line ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    from tests.videos import write_video

    return write_video(tmp_path_factory.mktemp("ov_videos") / "v.mp4", num_frames=12, width=80, height=64)


def infer(*args: str, prefix: str = "") -> subprocess.CompletedProcess:
    """`python -m runtime.infer ARGS`, after `prefix` (code run first in the same interpreter)."""
    code = (
        f"{prefix}\nimport runpy, sys\nsys.argv = ['runtime.infer', *{list(map(str, args))!r}]\n"
        "runpy.run_module('runtime.infer', run_name='__main__')"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_cli_json_says_which_backend_ran_and_backends_agree(tiny_onnx, video):
    lines = {}
    for backend in ("openvino", "onnxruntime", "auto"):
        result = infer(tiny_onnx, video, "--json", "--logits", "--backend", backend)
        assert result.returncode == 0, result.stderr
        (lines[backend],) = [json.loads(line) for line in result.stdout.splitlines()]
    assert [lines[b]["backend"] for b in ("openvino", "onnxruntime", "auto")] == ["openvino", "onnxruntime", "openvino"]
    np.testing.assert_allclose(
        lines["openvino"]["logits"], lines["onnxruntime"]["logits"], atol=contract.FP32_MAX_ABS_DIFF, rtol=0
    )


def test_cli_bf16_without_bf16_hardware_is_one_line(tiny_onnx, video):
    if CPU_HAS_BF16:
        pytest.skip("this CPU has bf16: the refusal cannot happen here (bf16 parity is tested above)")
    result = infer(tiny_onnx, video, "--backend", "openvino", "--precision", "bf16")
    assert result.returncode == 2 and result.stdout == ""
    assert (
        result.stderr.startswith("error: bf16 needs a CPU with avx512_bf16 or AMX") and result.stderr.count("\n") == 1
    )
