"""TensorRT backend: sizing, growth, profile checks, library choice and the runner's CUDA call sequence.

Executing a plan needs a GPU, so the runner is driven here by a stand-in cudart (real host memory,
memmove copies) and a stand-in engine that computes known outputs: the data path, buffer reuse,
frees, tensor names and the RTX runtime cache are checked without one. The tests marked `tensorrt`
build and run a real plan where a GPU is present.
"""

from __future__ import annotations

import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from runtime import contract, open_model
from runtime.backends import trt as trt_backend
from runtime.backends.cuda import Cuda, CudaError
from runtime.backends.trt import (
    PinnedTensor,
    TrtModel,
    TrtRunner,
    grown_capacity,
    input_limit,
    mismatch_message,
    runtime_cache_path,
    tensor_nbytes,
)
from runtime.contract import DimRange, Profile, Sidecar
from runtime.errors import ArtifactError, MissingDependencyError, ShapeError
from tests.runtime.conftest import LABELS, mean_rgb_logits
from tests.runtime.fake_cuda import FakeCudart
from tests.runtime.fake_trt import (
    GOOD_PLAN,
    PROFILE,
    TEMPORAL_IO,
    WHOLE_IO,
    FakeEngine,
    fake_tensorrt,
    first_values,
    frames_of,
    make_sidecar,
    write_plan,
)


@pytest.fixture
def fake_gpu(monkeypatch) -> FakeCudart:
    """A machine with a driver and GPU (stand-ins); `fake_gpu.libraries` are the TensorRT modules opened."""
    cudart = FakeCudart()
    cudart.libraries = []

    def import_library(library: str) -> types.ModuleType:
        cudart.libraries.append(library)
        return fake_tensorrt(library)

    monkeypatch.setattr(trt_backend, "import_tensorrt", import_library)
    monkeypatch.setattr(trt_backend, "import_cudart", lambda: cudart)
    monkeypatch.setattr(trt_backend, "driver_problem", lambda: None)
    return cudart


# --- plain functions -------------------------------------------------------------------------


def test_tensor_nbytes():
    assert tensor_nbytes(contract.input_shape(2, 16)) == 2 * 16 * 3 * 224 * 224 * 4
    assert tensor_nbytes((8, 400), np.float16) == 6400


def test_growth_policy_doubles_within_the_profile_limit():
    assert grown_capacity(0, 100, 1000) == 100
    assert grown_capacity(100, 80, 1000) == 100  # fits: never shrinks, never reallocates
    assert grown_capacity(100, 120, 1000) == 200  # grows by at least doubling
    assert grown_capacity(600, 700, 1000) == 1000  # doubling capped at the profile's largest request
    assert grown_capacity(600, 1200, 1000) == 1200  # a request is always met


def test_input_limit_is_the_profile_maximum():
    assert input_limit(PROFILE) == tensor_nbytes(contract.input_shape(4, 8))
    temporal = Profile(DimRange(1, 2, 4), DimRange(2, 4, 8), part=contract.PART_TEMPORAL, embed_dim=6)
    assert input_limit(temporal) == tensor_nbytes((4, 8, 6))


def test_mismatch_message_names_both_builds():
    message = mismatch_message("m.plan", make_sidecar(), "10.13.0", "NVIDIA A100-SXM4-40GB", "8.0")
    assert message == (
        "m.plan: cannot load the plan: it was built with tensorrt 10.9.0 for NVIDIA H100 80GB HBM3 "
        "(compute capability 9.0); this machine has tensorrt 10.13.0 and NVIDIA A100-SXM4-40GB "
        "(compute capability 8.0). Rebuild it here with stam-build"
    )


def test_profile_is_checked_before_any_cuda_call(tmp_path):
    runner = TrtRunner(write_plan(tmp_path), make_sidecar())  # never activated: any CUDA use would fail
    with pytest.raises(ShapeError, match=r"frames=9 is outside the engine's profile 2\.\.8 .*stam-build --frames"):
        runner.infer(frames_of(1, 9))
    with pytest.raises(ShapeError, match=r"batch=5 is outside the engine's profile 1\.\.4"):
        runner.infer(np.zeros((5, 2, 3, 224, 224), np.float32))


# --- opening plans ---------------------------------------------------------------------------


@pytest.mark.parametrize("target, library, extra", [("tensorrt", "tensorrt", "gpu"), ("rtx", "tensorrt_rtx", "rtx")])
def test_missing_library_names_the_extra_of_the_plans_target(target, library, extra, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, library, None)
    monkeypatch.setattr(trt_backend, "driver_problem", lambda: None)
    message = re.escape(f"({library}) is not installed: this needs the {extra} extra: pip install -e '.[{extra}]'")
    with pytest.raises(MissingDependencyError, match=message):
        open_model(write_plan(tmp_path, sidecar=make_sidecar(target=target)))


def test_no_gpu_is_one_line_from_runtime_infer_before_loading_anything(tmp_path):
    from runtime.backends.cuda import driver_problem
    from tests.videos import write_video

    if driver_problem() is None:
        pytest.skip("this machine has an NVIDIA driver and GPU")
    plan = write_plan(tmp_path, data=b"not even a plan", sidecar=make_sidecar(target="rtx"))
    video = write_video(tmp_path / "v.mp4", 8, 64, 48)
    run = subprocess.run(
        [sys.executable, "-m", "runtime.infer", str(plan), str(video)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 2 and run.stdout == ""
    assert (
        run.stderr.startswith(
            f"error: {plan}: a TensorRT plan needs an NVIDIA GPU and driver to run, and this machine has no NVIDIA"
        )
        and run.stderr.count("\n") == 1
    )


def test_plan_without_sidecar_is_refused_before_tensorrt(tmp_path):
    plan = tmp_path / "model.engine"
    plan.write_bytes(GOOD_PLAN)
    with pytest.raises(ArtifactError, match="no sidecar model.engine.json beside the plan"):
        open_model(plan)


def test_malformed_sidecar_is_refused(tmp_path):
    plan = write_plan(tmp_path)
    Sidecar.path_for(plan).write_text("{not json")
    with pytest.raises(ArtifactError, match="malformed sidecar \\(not JSON"):
        open_model(plan)
    Sidecar.path_for(plan).write_text("{}")
    with pytest.raises(
        ArtifactError,
        match=r"sidecar lacks metadata, profile, precision, tensorrt_version, gpu_name, "
        r"compute_capability \(rebuild the plan with stam-build\)$",
    ):
        open_model(plan)


def test_the_sidecars_target_picks_the_library(tmp_path, fake_gpu):
    open_model(write_plan(tmp_path, sidecar=make_sidecar(target="rtx"))).close()
    open_model(write_plan(tmp_path, name="other.plan")).close()
    assert fake_gpu.libraries == ["tensorrt_rtx", "tensorrt"]


def test_a_plan_refuses_the_other_library(tmp_path, fake_gpu):
    plan = write_plan(tmp_path, sidecar=make_sidecar(target="rtx"))
    runner = TrtRunner(plan, make_sidecar(target="rtx"), library=fake_tensorrt("tensorrt"))
    with pytest.raises(
        ArtifactError,
        match=r"built for target rtx \(tensorrt_rtx 10\.9\.0\) and cannot be opened "
        r"with tensorrt$",
    ):
        runner.activate()
    assert fake_gpu.memory == {} and fake_gpu.calls == []


def test_plan_from_another_build_names_both(tmp_path, fake_gpu):
    message = r"built with tensorrt 10\.9\.0 .* this machine has tensorrt 10\.13\.0 and NVIDIA A100"
    with pytest.raises(ArtifactError, match=message):
        open_model(write_plan(tmp_path, data=b"other plan"))


# --- the runner on the stand-in GPU ----------------------------------------------------------


def test_model_on_fake_gpu_reports_sidecar_ranges(tmp_path, fake_gpu):
    with open_model(write_plan(tmp_path)) as model:
        assert model.batch_range == PROFILE.batch and model.frames_range == PROFILE.frames
        assert model.precision == "fp16" and model.labels == LABELS and model.frames_trained == 4
        with pytest.raises(ShapeError, match="engine's profile"):
            model.run(frames_of(1, 1))


def test_runner_data_path_reuse_growth_and_frees(tmp_path, fake_gpu):
    model = open_model(write_plan(tmp_path))
    setup_calls = list(fake_gpu.calls)
    assert setup_calls == ["cudaStreamCreate"]  # buffers are allocated on the first request
    # (batch, frames, pinned tensors allocated, pinned tensors freed): input and output grow separately
    for batch, frames, allocated, freed in [(2, 4, 2, 0), (1, 4, 0, 0), (2, 4, 0, 0), (4, 8, 2, 2), (3, 2, 0, 0)]:
        fake_gpu.calls.clear()
        inputs = frames_of(batch, frames, seed=batch * frames)
        np.testing.assert_allclose(model.run(inputs), mean_rgb_logits(inputs), rtol=1e-5, atol=1e-6)
        calls = fake_gpu.calls
        assert calls.count("cudaStreamSynchronize") == 1 and calls.count("cudaMemcpyAsync") == 2
        assert calls.count("cudaMallocHost") == calls.count("cudaMalloc") == allocated
        assert calls.count("cudaFreeHost") == calls.count("cudaFree") == freed
    fake_gpu.calls.clear()
    model.close()
    model.close()
    assert sorted(fake_gpu.calls) == ["cudaFree", "cudaFree", "cudaFreeHost", "cudaFreeHost", "cudaStreamDestroy"]
    assert fake_gpu.memory == {}


def test_runner_context_manager_activates_and_frees(tmp_path, fake_gpu):
    plan = write_plan(tmp_path)
    with TrtRunner(plan, make_sidecar()) as runner:
        assert runner.is_active
        runner.infer(frames_of(1, 2))
    assert not runner.is_active and fake_gpu.memory == {}
    with pytest.raises(RuntimeError, match="before activate"):
        runner.infer(frames_of(1, 2))


# --- pinned tensors ------------------------------------------------------------------------


def test_pinned_tensor_reallocates_both_sides_only_when_growing():
    cudart = FakeCudart()
    tensor = PinnedTensor(Cuda(cudart), limit=1000)
    for size in (100, 50, 100, 150, 400):
        tensor.reserve(size)
    assert tensor.capacity == 400 and len(cudart.memory) == 2
    assert cudart.calls.count("cudaMalloc") == cudart.calls.count("cudaMallocHost") == 3  # 100, 200, 400
    tensor.free()
    assert cudart.memory == {}


# --- parts of a split pair, the RTX runtime cache ---------------------------------------------


def test_runner_takes_tensor_names_from_the_engine_for_a_part(tmp_path, monkeypatch, fake_gpu):
    temporal = Profile(DimRange(1, 2, 4), DimRange(2, 4, 8), part=contract.PART_TEMPORAL, embed_dim=6)
    sidecar = make_sidecar(temporal)
    plan = write_plan(tmp_path, sidecar=sidecar)
    library = fake_tensorrt(engine=FakeEngine(TEMPORAL_IO, first_values))
    with TrtRunner(plan, sidecar, library=library) as runner:
        embeddings = np.random.default_rng(0).random((3, 5, 6), dtype=np.float32)
        np.testing.assert_array_equal(runner.infer(embeddings), first_values(embeddings))
        assert set(library.engine.contexts[0].addresses) == {"embeddings", "logits"}
        with pytest.raises(ShapeError, match=r"frames=9 is outside the engine's profile 2\.\.8"):
            runner.infer(np.zeros((1, 9, 6), np.float32))
    with pytest.raises(ArtifactError, match="the temporal part of a split pair takes embeddings, not videos"):
        TrtModel(plan)
    wrong = TrtRunner(write_plan(tmp_path, name="whole.plan"), sidecar, library=fake_tensorrt())
    with pytest.raises(ArtifactError, match=r"expected float32 embeddings -> logits; found frames \(input, float\)"):
        wrong.activate()
    assert not wrong.is_active


def test_refused_tensor_address_is_an_error(tmp_path, fake_gpu):
    with open_model(write_plan(tmp_path)) as model:
        model._runner.context.refuse_address = True
        with pytest.raises(CudaError, match="refused the device address of tensor 'frames'"):
            model.run(frames_of(1, 2))


def test_rtx_runtime_cache_is_loaded_and_saved_beside_the_plan(tmp_path, fake_gpu):
    plan = write_plan(tmp_path, sidecar=make_sidecar(target="rtx"))
    library = fake_tensorrt("tensorrt_rtx", FakeEngine(WHOLE_IO, mean_rgb_logits, runtime_config=True))
    cache = runtime_cache_path(plan)
    with TrtRunner(plan, make_sidecar(target="rtx"), library=library) as runner:
        runner.infer(frames_of(1, 2))
    assert cache.read_bytes() == b"+compiled"  # the JIT-compiled kernels of the first run
    cache.write_bytes(b"kernels v1")
    with TrtRunner(plan, make_sidecar(target="rtx"), library=library):
        assert library.engine.runtime_configs[-1].cache.kernels == b"kernels v1"
    assert cache.read_bytes() == b"kernels v1+compiled"
    cache.write_bytes(b"from another GPU")
    with pytest.warns(RuntimeWarning, match="runtime cache rejected"):
        TrtRunner(plan, make_sidecar(target="rtx"), library=library).activate().deactivate()
    assert cache.read_bytes() == b"+compiled"


# --- real TensorRT (skipped where no library or GPU is present) -------------------------------


def build_plan(library, onnx_path: Path, plan_path: Path, profile: Profile) -> Path:
    """A plan built with stam-build's library call for the installed library's target."""
    from export.tensorrt import BuildOptions, build_engine
    from runtime.backends.trt import target_of

    options = BuildOptions(plan_path=plan_path, batch=profile.batch, frames=profile.frames, target=target_of(library))
    return build_engine(onnx_path, options).plan_path


@pytest.mark.tensorrt
def test_real_plan_matches_onnx_runtime(trt_library, mean_rgb_onnx, tmp_path):
    plan = build_plan(trt_library, mean_rgb_onnx, tmp_path / "mean_rgb.plan", PROFILE)
    with open_model(plan) as model, open_model(mean_rgb_onnx) as reference:
        for batch, frames in [(1, 2), (4, 8), (3, 5), (2, 4)]:
            inputs = frames_of(batch, frames, seed=frames)
            np.testing.assert_allclose(model.run(inputs), reference.run(inputs), atol=1e-5)
        with pytest.raises(ShapeError, match="frames=9"):
            model.run(frames_of(1, 9))


@pytest.mark.tensorrt
def test_real_part_plan_runs_with_names_from_the_engine(trt_library, tmp_path):
    from tests.export.trt_graphs import part_graph

    source = part_graph(tmp_path / "m.temporal.onnx", contract.PART_TEMPORAL)
    plan = build_plan(trt_library, source, tmp_path / "m.temporal.plan", PROFILE)
    embeddings = np.random.default_rng(0).random((2, 4, 6), dtype=np.float32)
    import onnxruntime

    expected = onnxruntime.InferenceSession(str(source)).run(None, {"embeddings": embeddings})[0]
    with TrtRunner(plan, Sidecar.read(plan)) as runner:
        np.testing.assert_allclose(runner.infer(embeddings), expected, atol=1e-5)


@pytest.mark.tensorrt
def test_corrupt_plan_is_an_artifact_error(trt_library, tmp_path):
    from runtime.backends.trt import target_of

    sidecar = make_sidecar(target=target_of(trt_library))
    with pytest.raises(ArtifactError, match="cannot load the plan"):
        open_model(write_plan(tmp_path, data=b"\x00" * 256, sidecar=sidecar))


def test_the_timeline_opens_plan_parts_through_the_runner(tmp_path, monkeypatch, fake_gpu):
    """runtime.split runs a temporal part built into a plan, with the profile's ranges and the engine's names."""
    from runtime.split import open_part

    temporal = Profile(DimRange(1, 2, 4), DimRange(2, 4, 8), part=contract.PART_TEMPORAL, embed_dim=6)
    plan = write_plan(tmp_path, sidecar=make_sidecar(temporal), name="m.temporal.plan")
    engine = FakeEngine(TEMPORAL_IO, first_values)
    monkeypatch.setattr(trt_backend, "import_tensorrt", lambda library: fake_tensorrt(library, engine=engine))
    part = open_part(plan, contract.EMBEDDINGS_NAME, contract.OUTPUT_NAME, None)
    try:
        assert part.ranges == (DimRange(1, 2, 4), DimRange(2, 4, 8))
        embeddings = np.random.default_rng(1).random((2, 3, 6), dtype=np.float32)
        np.testing.assert_array_equal(part.run(embeddings), first_values(embeddings))
    finally:
        part.close()
    with pytest.raises(ArtifactError, match="expected a plan of input 'frames' and output 'embeddings'"):
        open_part(plan, contract.INPUT_NAME, contract.EMBEDDINGS_NAME, None)
