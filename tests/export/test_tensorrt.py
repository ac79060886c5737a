"""export.tensorrt (`build_engine`): real builds of every graph stam-build takes, sidecars, GPU support,
and no partial artifact after a failure. `trt_builder` tests build with tensorrt_rtx (no GPU needed)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import onnx
import pytest

from benchmarks.motion.generate import CLASSES
from export import tensorrt as tensorrt_module
from export.tensorrt import (
    BuildOptions,
    build_engine,
    check_gpu_support,
    default_plan_path,
    gpu_description,
    make_sidecar,
    plan_inputs,
    prepare_onnx,
    target_precision,
)
from export.trt_profile import default_profile, read_onnx_info
from runtime import contract
from runtime.backends.cuda import CudaError
from runtime.backends.trt import target_of
from runtime.contract import DimRange, Profile, Sidecar
from runtime.errors import ArtifactError, StamError
from tests.export.trt_graphs import EMBED_DIM, part_graph
from tests.runtime.conftest import build_mean_rgb


def test_target_precision_and_plan_names():
    info = SimpleNamespace(precision="fp32", path=Path("m.onnx"))
    assert target_precision(info, None) == "fp32" and target_precision(info, "fp16") == "fp16"
    with pytest.raises(StamError, match="fp16 graph"):
        target_precision(SimpleNamespace(precision="fp16", path=Path("m.onnx")), "fp32")
    assert default_plan_path(Path("d/m.onnx"), "fp32") == Path("d/m.plan")
    assert default_plan_path(Path("d/m.onnx"), "fp16") == Path("d/m.fp16.plan")
    assert default_plan_path(Path("d/m.fp16.onnx"), "fp16") == Path("d/m.fp16.plan")


def test_gpu_support():
    for version in ((10, 0), (10, 4), (10, 8), (11, 0)):  # nothing runs on Pascal or older
        with pytest.raises(StamError, match=r"compute capability 6\.1 \(Pascal or older\) is not supported"):
            check_gpu_support(version, "6.1")
    for volta in ("7.0", "7.2"):  # V100 and Xavier
        assert "deprecated" in check_gpu_support((10, 4), volta)
        with pytest.raises(StamError, match=r"Volta class.*tensorrt>=10.0,<10.5"):
            check_gpu_support((10, 5), volta)
        with pytest.raises(StamError, match="Volta class"):
            check_gpu_support((11, 0), volta)
    assert check_gpu_support((11, 0), "7.5") is None and check_gpu_support((10, 8), "unknown") is None


def test_gpu_description_never_stops_a_build(monkeypatch):
    monkeypatch.setattr(tensorrt_module, "driver_problem", lambda: "no NVIDIA driver: libcuda.so.1 cannot be loaded")
    assert gpu_description() == ("unknown GPU (no NVIDIA driver: libcuda.so.1 cannot be loaded)", "unknown")
    monkeypatch.setattr(tensorrt_module, "driver_problem", lambda: None)
    for error in (
        OSError("libcudart.so.13: cannot open shared object file"),
        CudaError("CUDA call cudaGetDeviceProperties failed: invalid device ordinal"),
    ):

        def failing(error: Exception = error) -> None:
            raise error

        monkeypatch.setattr(tensorrt_module, "import_cudart", failing)
        name, capability = gpu_description()
        assert name == f"unknown GPU ({error})" and capability == "unknown"


def test_sidecar_round_trip(tiny_onnx, tmp_path):
    info, profile, precision, plan_path = plan_inputs(
        tiny_onnx, BuildOptions(plan_path=tmp_path / "m.plan", precision="fp16")
    )
    sidecar = make_sidecar(
        info, profile, precision, "1.7.1", ("NVIDIA GeForce RTX 4090", "8.9"), {"build_seconds": 1.5}, target="rtx"
    )
    plan_path.write_bytes(b"plan")
    sidecar.write(plan_path)
    back = Sidecar.read(plan_path)
    assert back == sidecar and back.metadata[contract.META_PRECISION] == "fp16"
    assert back.profile == default_profile(8) and back.library == "tensorrt_rtx"


def test_fp16_conversion_for_the_builder(tiny_onnx, tmp_path):
    info = read_onnx_info(tiny_onnx)
    path = prepare_onnx(info, "fp16", tmp_path / "m.fp16.built.onnx")
    converted = read_onnx_info(path)
    assert converted.precision == "fp16" and converted.input_type == onnx.TensorProto.FLOAT
    assert converted.metadata[contract.META_LABELS] == info.metadata[contract.META_LABELS]
    assert prepare_onnx(info, "fp32", tmp_path / "unused.onnx") == info.path
    with pytest.raises(ArtifactError, match="overwrite the input"):
        prepare_onnx(info, "fp16", info.path)


# --- real builds --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def motion_qdq(motion_onnx_fp32, motion_model, tmp_path_factory):
    """The motion model calibrated (stam-calibrate's library call, minmax on random clips) to INT8 and FP8 Q/DQ."""
    from calibration.quantize import calibrate
    from tests.calibration.conftest import random_clips

    clips = random_clips(2, seed=3, frames=motion_model.config.frames_trained)
    folder = tmp_path_factory.mktemp("motion_qdq")
    return {
        precision: calibrate(
            motion_onnx_fp32, clips, folder / f"stam_motion.{precision}.onnx", precision=precision, method="minmax"
        ).path
        for precision in ("int8", "fp8")
    }


@pytest.mark.trt_builder
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8", "fp8"])
def test_motion_model_builds_at_every_precision(precision, trt_library, motion_onnx_fp32, motion_qdq, tmp_path):
    source = motion_qdq.get(precision, motion_onnx_fp32)
    options = BuildOptions(
        plan_path=tmp_path / f"motion.{precision}.plan",
        target=target_of(trt_library),
        precision="fp16" if precision == "fp16" else None,
    )
    result = build_engine(source, options)
    sidecar = Sidecar.read(result.plan_path)
    assert result.plan_path.stat().st_size > 100_000  # the weights are in the plan
    assert sidecar.precision == precision == sidecar.metadata[contract.META_PRECISION]
    assert sidecar.target == target_of(trt_library) and sidecar.tensorrt_version == trt_library.__version__
    assert sidecar.profile == default_profile(8)  # the shipped model is trained on 8 frames
    assert sidecar.build["strongly_typed"] and sidecar.build["tf32"] is False
    assert contract.labels_from_metadata(sidecar.metadata) == list(CLASSES)
    assert (result.built_onnx != source) == (precision == "fp16")


@pytest.mark.trt_builder
@pytest.mark.parametrize("part", [contract.PART_FRAMES, contract.PART_TEMPORAL])
def test_each_part_of_a_split_pair_builds(part, trt_library, tmp_path):
    source = part_graph(tmp_path / f"m.{part}.onnx", part)
    result = build_engine(
        source,
        BuildOptions(
            plan_path=tmp_path / f"m.{part}.plan",
            target=target_of(trt_library),
            batch=DimRange(1, 2, 4),
            frames=DimRange(2, 4, 8),
        ),
    )
    profile = Sidecar.read(result.plan_path).profile
    assert profile == Profile(
        DimRange(1, 2, 4), DimRange(2, 4, 8), part=part, embed_dim=EMBED_DIM if part == contract.PART_TEMPORAL else 0
    )
    assert profile.shapes()["max"] == ((32, 3, 224, 224) if part == contract.PART_FRAMES else (4, 8, EMBED_DIM))


@pytest.mark.trt_builder
def test_a_failed_build_leaves_nothing_on_disk(trt_library, tmp_path):
    source = build_mean_rgb(tmp_path / "m.onnx")
    before = sorted(tmp_path.iterdir())
    options = BuildOptions(
        plan_path=tmp_path / "m.fp16.plan", precision="fp16", workspace_gib=1e-9, target=target_of(trt_library)
    )
    with pytest.raises(StamError, match=r"could not build the engine with --workspace 1e-09 GiB: .*workspace"):
        build_engine(source, options)
    assert sorted(tmp_path.iterdir()) == before  # no plan, sidecar, converted graph or temporary file
