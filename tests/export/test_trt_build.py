"""export.trt_build: each builder step against the real library (tensorrt_rtx builds without a GPU).

Fakes stand only where the library cannot answer here: a timing cache that TensorRT rejects (RTX's
timing cache is a no-op) and TensorRT 11 without the STRONGLY_TYPED flag.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from export import trt_build
from export.trt_build import BuilderSettings
from runtime.backends.trt import library_logger
from runtime.contract import DimRange, Profile
from runtime.errors import ArtifactError, ShapeError, StamError
from tests.export.trt_graphs import custom_op_graph
from tests.runtime.conftest import build_mean_rgb

PROFILE = Profile(DimRange(1, 2, 4), DimRange(2, 4, 8))
builder_test = pytest.mark.trt_builder


@pytest.fixture
def builder(trt_library):
    logger = library_logger(trt_library).start()
    return trt_library, logger, trt_library.Builder(logger)


@builder_test
def test_network_is_strongly_typed_and_parses_the_contract_graph(builder, tmp_path):
    trt, logger, trt_builder = builder
    network, strongly_typed = trt_build.create_network(trt, trt_builder)
    assert strongly_typed and network.get_flag(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    trt_build.parse_onnx(trt, network, logger, build_mean_rgb(tmp_path / "m.onnx"))
    assert [network.get_input(0).name, network.get_output(0).name] == ["frames", "logits"]


def test_network_flags_without_the_flag_enum():
    eleven = SimpleNamespace(__version__="11.0.0", NetworkDefinitionCreationFlag=SimpleNamespace())
    assert trt_build.network_flags(eleven) == (0, True)
    assert trt_build.network_flags(SimpleNamespace(__version__="10.0.1")) == (0, False)


@builder_test
def test_parser_errors_name_the_node_and_operator(builder, tmp_path):
    trt, logger, trt_builder = builder
    network, _ = trt_build.create_network(trt, trt_builder)
    with pytest.raises(ArtifactError, match=r"ONNX parser failed: node frobnicate_logits \(Frobnicate\): ") as error:
        trt_build.parse_onnx(trt, network, logger, custom_op_graph(tmp_path / "bad.onnx"))
    assert "\n" not in str(error.value)


@builder_test
def test_config_sets_profile_limits_and_turns_tf32_off(builder):
    trt, logger, trt_builder = builder
    settings = BuilderSettings(workspace_gib=0.5, opt_level=2)
    config = trt_build.create_config(trt, trt_builder, PROFILE, settings, logger)
    assert config.num_optimization_profiles == 1
    assert config.get_memory_pool_limit(trt.MemoryPoolType.WORKSPACE) == 1 << 29
    assert config.builder_optimization_level == 2
    assert not config.get_flag(trt.BuilderFlag.TF32)  # the library's default is on
    assert config.profiling_verbosity != trt.ProfilingVerbosity.DETAILED  # DETAILED adds enqueue latency
    detailed = trt_build.create_config(
        trt, trt_builder, PROFILE, BuilderSettings(tf32=True, detailed_profiling=True), logger
    )
    assert detailed.get_flag(trt.BuilderFlag.TF32) and detailed.profiling_verbosity == trt.ProfilingVerbosity.DETAILED


@builder_test
def test_profile_shapes_are_the_ones_set(builder):
    trt, logger, trt_builder = builder
    config = trt_builder.create_builder_config()
    optimization = trt_build.add_profile(trt_builder, config, PROFILE, logger)
    assert [tuple(shape) for shape in optimization.get_shape("frames")] == list(PROFILE.shapes().values())


@builder_test
def test_library_rejects_a_profile_that_skipped_our_validation(builder):
    trt, logger, trt_builder = builder
    backwards = Profile(DimRange(1, 2, 4), DimRange(8, 4, 8))  # min > opt: DimRange.validate never ran
    with pytest.raises(ShapeError, match=r"refused the profile frames min \(1, 8, .*MIN<=OPT<=MAX"):
        trt_build.add_profile(trt_builder, trt_builder.create_builder_config(), backwards, logger)


@builder_test
def test_compute_capabilities(builder):
    trt, logger, trt_builder = builder
    if not trt_build.capability_names(trt):
        pytest.skip(f"{trt.__name__} has no compute-capability targets (TensorRT-RTX has)")
    assert {"7.5", "8.6", "8.9", "12.0"} <= set(trt_build.capability_names(trt))
    config = trt_builder.create_builder_config()
    trt_build.set_compute_capabilities(trt, config, ["8.6", "12.0"])
    assert [config.get_compute_capability(i) for i in range(config.num_compute_capabilities)] == [
        trt.ComputeCapability.SM86,
        trt.ComputeCapability.SM120,
    ]
    with pytest.raises(StamError, match=r"cannot target compute capability 9\.0, 6\.1 \(it offers 7\.5, "):
        trt_build.set_compute_capabilities(trt, config, ["9.0", "6.1"])


class FakeTimingConfig:
    """A config whose TensorRT rejects the cache on file (another GPU or version) and keeps what it is given."""

    def __init__(self, accepts_file: bool):
        self.accepts_file = accepts_file
        self.cache = None

    def create_timing_cache(self, data: bytes):
        return SimpleNamespace(data=data, serialize=lambda: data or b"fresh timings")

    def set_timing_cache(self, cache, ignore_mismatch: bool) -> bool:
        if cache.data and not self.accepts_file:
            return False
        self.cache = cache
        return True

    def get_timing_cache(self):
        return self.cache


def test_timing_cache_round_trip_and_rejection(tmp_path):
    path = tmp_path / "timing.cache"
    config = FakeTimingConfig(accepts_file=True)
    trt_build.load_timing_cache(config, path)
    trt_build.save_timing_cache(config, path)
    assert path.read_bytes() == b"fresh timings"
    path.write_bytes(b"timings of another GPU")
    rejecting = FakeTimingConfig(accepts_file=False)
    with pytest.warns(RuntimeWarning, match="timing cache rejected .*saving a fresh one"):
        trt_build.load_timing_cache(rejecting, path)
    trt_build.save_timing_cache(rejecting, path)
    assert path.read_bytes() == b"fresh timings"
    with pytest.warns(RuntimeWarning, match="kept no timing cache; nothing saved"):
        trt_build.save_timing_cache(FakeTimingConfig(accepts_file=True), tmp_path / "none.cache")
    assert not (tmp_path / "none.cache").exists()


def test_inspector_json_of_both_majors():
    ten = {"Layers": [{"Name": "gemm", "LayerType": "Gemm", "Outputs": [{"Format/Datatype": "Half"}]}]}
    eleven = {
        "Layers": [{"Name": "attn", "LayerType": "Myelin", "Outputs": [{"Format": "Row major", "DataType": "FP16"}]}]
    }
    rows = trt_build.layers_from_json(json.dumps(ten)) + trt_build.layers_from_json(json.dumps(eleven))
    assert [row["outputs"] for row in rows] == [["Half"], ["FP16"]]
    assert "Myelin" in trt_build.layers_table(rows)


@builder_test
def test_parser_check_with_the_real_library(trt_library, tmp_path):
    assert trt_build.check_with_parser(trt_library, build_mean_rgb(tmp_path / "m.onnx")) == []
    errors = trt_build.check_with_parser(trt_library, custom_op_graph(tmp_path / "bad.onnx"))
    assert len(errors) == 1 and errors[0].startswith("node frobnicate_logits (Frobnicate): ")


def test_format_parser_error_of_older_bindings():
    old = SimpleNamespace(node=lambda: 3, desc=lambda: "bad\n  input")
    assert trt_build.format_parser_error(old) == "node #3 (?): bad input"
