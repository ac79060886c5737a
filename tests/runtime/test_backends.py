"""open_model and the ONNX backends (ONNX Runtime, OpenVINO): contract checks, ranges, metadata, shape validation.

Tests that are about the artifact contract run on every ONNX backend present (`onnx_backend`), so
that `--backend` never changes what is accepted, refused, or computed.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from runtime import contract, open_model
from runtime.backends.base import check_input
from runtime.backends.ort import OrtModel, choose_providers
from runtime.contract import DimRange
from runtime.errors import ArtifactError, MissingDependencyError, ShapeError, StamError
from tests.runtime.conftest import LABELS, contract_metadata, mean_rgb_logits
from tests.runtime.fake_trt import write_plan

ONNX_BACKENDS = [
    "onnxruntime",
    pytest.param(
        "openvino",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("openvino") is None, reason="openvino is not installed (the [openvino] extra)"
        ),
    ),
]


def random_frames(batch: int, frames: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(contract.input_shape(batch, frames), dtype=np.float32)


@pytest.fixture(params=ONNX_BACKENDS)
def onnx_backend(request) -> str:
    return request.param


def test_onnx_model_runs_and_reports_its_contract(mean_rgb_onnx):
    with open_model(mean_rgb_onnx, backend="onnxruntime") as model:
        assert isinstance(model, OrtModel)
        assert model.labels == LABELS
        assert model.metadata[contract.META_MODEL] == "mean_rgb"
        assert model.precision == "fp32" and model.frames_trained == 4
        assert model.batch_range is None and model.frames_range is None
        assert model.providers == ["CPUExecutionProvider"]
        for batch, frames in [(1, 1), (3, 4), (2, 9)]:
            inputs = random_frames(batch, frames, seed=batch)
            logits = model.run(inputs)
            assert logits.dtype == np.float32 and logits.shape == (batch, len(LABELS))
            np.testing.assert_allclose(logits, mean_rgb_logits(inputs), atol=1e-5)


def test_fixed_graph_dims_become_ranges(onnx_factory, onnx_backend):
    path = onnx_factory("fixed.onnx", dims=(2, 4, 3, 224, 224))
    with open_model(path, backend=onnx_backend) as model:
        assert model.batch_range == DimRange(2, 2, 2) and model.frames_range == DimRange(4, 4, 4)
        assert model.run(random_frames(2, 4)).shape == (2, len(LABELS))
        with pytest.raises(ShapeError, match=r"frames=5 is outside the model's range 4\.\.4"):
            model.run(random_frames(2, 5))
        with pytest.raises(ShapeError, match=r"batch=1 is outside"):
            model.check_request(1, 4)


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (np.zeros((1, 4, 3, 224, 224), np.float64), "must be float32, got float64"),
        (np.zeros((4, 3, 224, 224), np.float32), r"shape \(batch, frames, 3, 224, 224\), got \(4, 3, 224, 224\)"),
        (np.zeros((1, 4, 3, 112, 112), np.float32), r"got \(1, 4, 3, 112, 112\)"),
        (np.zeros((0, 4, 3, 224, 224), np.float32), "batch=0 is outside"),
        ([[0.0]], "must be a numpy array, got list"),
    ],
)
def test_run_validates_shape_and_dtype_before_running(mean_rgb_onnx, frames, message, onnx_backend):
    with open_model(mean_rgb_onnx, backend=onnx_backend) as model, pytest.raises(ShapeError, match=message):
        model.run(frames)


def test_non_contiguous_input_is_accepted(mean_rgb_onnx, onnx_backend):
    inputs = random_frames(2, 3).transpose(1, 0, 2, 3, 4).copy().transpose(1, 0, 2, 3, 4)
    assert not inputs.flags.c_contiguous
    with open_model(mean_rgb_onnx, backend=onnx_backend) as model:
        np.testing.assert_allclose(model.run(inputs), mean_rgb_logits(inputs), atol=1e-5)


def test_check_input_returns_batch_and_frames():
    assert check_input(np.zeros((2, 7, 3, 224, 224), np.float32)) == (2, 7)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("model.txt", b"x", r"unknown artifact type '\.txt'"),
        ("model", b"x", r"unknown artifact type \(no suffix\)"),
        ("text.onnx", b"this is not a model\n", "not a loadable ONNX model"),
        ("empty.onnx", b"", "not a loadable ONNX model"),
    ],
)
def test_unreadable_artifacts_give_one_line_artifact_errors(tmp_path, name, content, message, onnx_backend):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ArtifactError, match=message) as info:
        open_model(path, backend=onnx_backend)
    assert "\n" not in str(info.value)


def test_missing_artifact(tmp_path):
    with pytest.raises(ArtifactError, match="no such file"):
        open_model(tmp_path / "absent.onnx")
    (tmp_path / "dir.onnx").mkdir()
    with pytest.raises(ArtifactError, match="not a file"):
        open_model(tmp_path / "dir.onnx")


def test_onnx_without_metadata_is_refused(onnx_factory, onnx_backend):
    metadata = contract_metadata()
    del metadata[contract.META_LABELS], metadata[contract.META_FRAMES_TRAINED]
    path = onnx_factory("bare.onnx", metadata=metadata)
    with pytest.raises(ArtifactError, match="not a stam-deploy artifact .*stam.frames_trained, stam.labels"):
        open_model(path, backend=onnx_backend)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_name": "pixel_values"}, r"not a stam-deploy model .*found inputs \['pixel_values'\]"),
        ({"dims": ("batch", "frames", 3, 112, 112)}, r"has shape \['batch', 'frames', 3, 112, 112\]"),
    ],
)
def test_onnx_with_the_wrong_input_is_refused(onnx_factory, kwargs, message, onnx_backend):
    with pytest.raises(ArtifactError, match=message):
        open_model(onnx_factory("wrong.onnx", **kwargs), backend=onnx_backend)


def test_rank_four_input_is_refused(onnx_factory, onnx_backend):
    with pytest.raises(ArtifactError, match="expected input 'frames'"):
        open_model(onnx_factory("rank4.onnx", dims=("batch", 3, 224, 224)), backend=onnx_backend)


def test_provider_choice():
    available = ["AzureExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(None, available) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(["CPUExecutionProvider"], available) == ["CPUExecutionProvider"]
    all_three = ["TensorrtExecutionProvider", *available]
    assert choose_providers(None, all_three)[0] == "TensorrtExecutionProvider"
    with pytest.raises(MissingDependencyError, match="TensorrtExecutionProvider is not available"):
        choose_providers(["TensorrtExecutionProvider"], available)


def test_providers_override_and_plan_refuses_providers(mean_rgb_onnx, tmp_path):
    with pytest.raises(MissingDependencyError, match="not available"):
        open_model(mean_rgb_onnx, providers=["NoSuchExecutionProvider"])
    plan = write_plan(tmp_path)
    with pytest.raises(StamError, match="providers apply to ONNX Runtime"):
        open_model(plan, providers=["CPUExecutionProvider"])


def test_close_is_idempotent_and_closed_model_refuses_to_run(mean_rgb_onnx, onnx_backend):
    model = open_model(mean_rgb_onnx, backend=onnx_backend)
    model.close()
    model.close()
    with pytest.raises(StamError, match="closed"):
        model.run(random_frames(1, 2))


def test_tiny_stam_export_matches_pytorch_in_process(tiny_model, tiny_onnx, tiny_labels, onnx_backend):
    torch = pytest.importorskip("torch")
    inputs = random_frames(2, 6, seed=3)
    with open_model(tiny_onnx, backend=onnx_backend) as model:
        assert model.labels == tiny_labels and model.frames_trained == 8
        assert model.batch_range is None and model.frames_range is None
        logits = model.run(inputs)
    with torch.no_grad():
        expected = tiny_model.eval()(torch.from_numpy(inputs)).numpy()
    np.testing.assert_allclose(logits, expected, atol=contract.FP32_MAX_ABS_DIFF, rtol=0)
