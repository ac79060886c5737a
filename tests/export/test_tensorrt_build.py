"""stam-build without TensorRT (options, profile, precision, sidecar, errors) and, marked, with it."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import numpy as np
import onnx
import pytest

from benchmarks import trt_selftest
from export import build_cli, trt_build
from export.tensorrt import (BuildOptions, check_gpu_support, default_plan_path, make_sidecar, plan_inputs,
                             prepare_onnx, target_precision)
from export.trt_profile import default_profile, read_onnx_info, resolve_profile, validate_profile
from runtime import contract
from runtime.contract import DimRange, Profile, Sidecar
from runtime.errors import ArtifactError, ShapeError, StamError


def _has_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


needs_no_tensorrt = pytest.mark.skipif(_has_tensorrt(), reason="tensorrt is installed here")
needs_tensorrt = pytest.mark.skipif(not _has_tensorrt(), reason="tensorrt does not import (no TensorRT/GPU here)")


@pytest.mark.parametrize("trained, frames, batch", [
    (16, (8, 16, 64), (1, 8, 32)), (8, (4, 8, 32), (1, 8, 32)), (32, (16, 32, 128), (1, 8, 16)),
    (64, (32, 64, 128), (1, 8, 16)), (1, (1, 1, 4), (1, 8, 32)),
])
def test_default_profile(trained, frames, batch):
    profile = default_profile(trained)
    assert profile == Profile(batch=DimRange(*batch), frames=DimRange(*frames))


def _info(dims=("batch", "frames", 3, 224, 224), elem=onnx.TensorProto.FLOAT):
    return SimpleNamespace(path=Path("m.onnx"), input_dims=dims, input_type=elem, frames_trained=16,
                           precision="fp32", metadata={})


def test_validate_profile_against_the_onnx_input():
    ok = Profile(DimRange(1, 2, 4), DimRange(8, 16, 64))
    validate_profile(_info(), ok)
    validate_profile(_info(dims=(2, 16, 3, 224, 224)), Profile(DimRange(2, 2, 2), DimRange(16, 16, 16)))
    with pytest.raises(ShapeError, match="batch dimension is fixed at 2"):
        validate_profile(_info(dims=(2, "frames", 3, 224, 224)), ok)
    with pytest.raises(ShapeError, match="dimension 3 is 112"):
        validate_profile(_info(dims=("b", "f", 3, 112, 112)), ok)
    with pytest.raises(ArtifactError, match="rank 4"):
        validate_profile(_info(dims=("b", 3, 224, 224)), ok)
    with pytest.raises(ArtifactError, match="float32"):
        validate_profile(_info(elem=onnx.TensorProto.FLOAT16), ok)
    with pytest.raises(ShapeError, match="min <= opt <= max"):
        validate_profile(_info(), Profile(DimRange(1, 2, 4), DimRange(8, 4, 64)))


def test_profile_defaults_from_the_exported_metadata(tiny_onnx):
    info = read_onnx_info(tiny_onnx)
    assert info.input_dims == (contract.BATCH_DIM, contract.FRAMES_DIM, 3, 224, 224)
    profile = resolve_profile(info, None, DimRange(2, 3, 5))
    assert profile == Profile(DimRange(1, 8, 32), DimRange(2, 3, 5))  # stam_tiny: T_trained 8 -> batch default


def test_target_precision_and_plan_names():
    info = SimpleNamespace(precision="fp32", path=Path("m.onnx"))
    assert target_precision(info, None) == "fp32" and target_precision(info, "fp16") == "fp16"
    with pytest.raises(StamError, match="fp16 graph"):
        target_precision(SimpleNamespace(precision="fp16", path=Path("m.onnx")), "fp32")
    assert default_plan_path(Path("d/m.onnx"), "fp32") == Path("d/m.plan")
    assert default_plan_path(Path("d/m.onnx"), "fp16") == Path("d/m.fp16.plan")
    assert default_plan_path(Path("d/m.fp16.onnx"), "fp16") == Path("d/m.fp16.plan")


def test_gpu_support_for_volta():
    assert "deprecated" in check_gpu_support((10, 4), "7.0")
    with pytest.raises(StamError, match="tensorrt>=10.0,<10.5"):
        check_gpu_support((10, 5), "7.0")
    with pytest.raises(StamError, match="Volta"):
        check_gpu_support((11, 0), "7.0")
    assert check_gpu_support((11, 0), "9.0") is None and check_gpu_support((10, 8), "unknown") is None


def test_network_flags_feature_detected():
    ten = SimpleNamespace(__version__="10.3.0", NetworkDefinitionCreationFlag=SimpleNamespace(STRONGLY_TYPED=1))
    assert trt_build.network_flags(ten) == (2, True)
    eleven_without_flag = SimpleNamespace(__version__="11.0.0", NetworkDefinitionCreationFlag=SimpleNamespace())
    assert trt_build.network_flags(eleven_without_flag) == (0, True)
    with pytest.raises(StamError, match=">= 10"):
        trt_build.ensure_tensorrt_major(SimpleNamespace(__version__="8.6.1"))


def test_parser_errors_name_node_and_op():
    error = SimpleNamespace(node_name=lambda: "node_gelu", node_operator=lambda: "Gelu", node=lambda: 3,
                            desc=lambda: "unsupported")
    assert trt_build.format_parser_error(error) == "node node_gelu (Gelu): unsupported"
    old = SimpleNamespace(node=lambda: 3, desc=lambda: "bad")
    assert trt_build.format_parser_error(old) == "node #3 (?): bad"
    parser = mock.MagicMock(num_errors=2)
    parser.parse_from_file.return_value = False
    parser.get_error.side_effect = [error, old]
    trt = mock.MagicMock()
    trt.OnnxParser.return_value = parser
    with pytest.raises(ArtifactError, match="node_gelu \\(Gelu\\): unsupported; node #3"):
        trt_build.parse_onnx(trt, mock.sentinel.network, mock.sentinel.logger, Path("m.onnx"))
    parser.parse_from_file.assert_called_once_with("m.onnx")


def test_config_gets_profile_workspace_and_level():
    trt, builder = mock.MagicMock(), mock.MagicMock()
    profile = Profile(DimRange(1, 2, 4), DimRange(8, 16, 64))
    config = trt_build.create_config(trt, builder, profile, workspace_gib=2, opt_level=5)
    builder.create_optimization_profile.return_value.set_shape.assert_called_once_with(
        "frames", (1, 8, 3, 224, 224), (2, 16, 3, 224, 224), (4, 64, 3, 224, 224))
    config.set_memory_pool_limit.assert_called_once_with(trt.MemoryPoolType.WORKSPACE, 2 << 30)
    assert config.builder_optimization_level == 5
    assert config.profiling_verbosity == trt.ProfilingVerbosity.DETAILED


def test_timing_cache_round_trip(tmp_path):
    config = mock.MagicMock()
    cache = tmp_path / "cache.bin"
    trt_build.load_timing_cache(config, cache)
    config.create_timing_cache.assert_called_with(b"")
    config.get_timing_cache.return_value.serialize.return_value = b"timings"
    trt_build.save_timing_cache(config, cache)
    trt_build.load_timing_cache(config, cache)
    config.create_timing_cache.assert_called_with(b"timings")


def test_inspector_json_of_both_majors():
    ten = {"Layers": [{"Name": "gemm", "LayerType": "Gemm", "Outputs": [{"Format/Datatype": "Half"}]}]}
    eleven = {"Layers": [{"Name": "attn", "LayerType": "Myelin", "Outputs": [{"Format": "Row major", "DataType": "FP16"}]}]}
    rows = trt_build.layers_from_json(json.dumps(ten)) + trt_build.layers_from_json(json.dumps(eleven))
    assert [row["outputs"] for row in rows] == [["Half"], ["FP16"]]
    assert "Myelin" in trt_build.layers_table(rows)


def test_sidecar_round_trip(tiny_onnx, tmp_path):
    info, profile, precision, plan_path = plan_inputs(tiny_onnx, BuildOptions(plan_path=tmp_path / "m.plan",
                                                                              precision="fp16"))
    sidecar = make_sidecar(info, profile, precision, "10.4.0", ("Tesla V100", "7.0"), {"build_seconds": 1.5})
    plan_path.write_bytes(b"plan")
    sidecar.write(plan_path)
    back = Sidecar.read(plan_path)
    assert back == sidecar and back.metadata[contract.META_PRECISION] == "fp16"
    assert back.profile == default_profile(8)


def test_plan_without_sidecar_is_a_clear_error(tmp_path):
    (tmp_path / "m.plan").write_bytes(b"plan")
    with pytest.raises(ArtifactError, match="no sidecar m.plan.json"):
        Sidecar.read(tmp_path / "m.plan")


def test_fp16_conversion_for_the_builder(tiny_onnx, tmp_path):
    info = read_onnx_info(tiny_onnx)
    path = prepare_onnx(info, "fp16", tmp_path / "m.fp16.built.onnx")
    converted = read_onnx_info(path)
    assert converted.precision == "fp16" and converted.input_type == onnx.TensorProto.FLOAT
    assert prepare_onnx(info, "fp32", tmp_path / "unused.onnx") == info.path
    with pytest.raises(ArtifactError, match="overwrite the input"):
        prepare_onnx(info, "fp16", info.path)


def _cli(capsys, *argv) -> tuple[int, str]:
    code = build_cli.main([str(a) for a in argv])
    return code, capsys.readouterr().err.strip()


@needs_no_tensorrt
def test_missing_tensorrt_is_one_line_and_exit_2(tiny_onnx, tmp_path, capsys):
    code, err = _cli(capsys, tiny_onnx, "-o", tmp_path / "m.plan")
    assert code == 2
    assert err == "error: " + trt_build.TRT_MISSING
    assert not (tmp_path / "m.plan").exists()
    assert trt_selftest.main(["--models", "stam_tiny"]) == 2
    assert capsys.readouterr().err.strip() == "error: " + trt_build.TRT_MISSING


def test_bad_inputs_are_one_line_errors(tiny_onnx, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x00not onnx at all")
    cases = [
        ((corrupt,), "not a readable ONNX file"),
        ((tmp_path / "missing.onnx",), "no such file"),
        ((tiny_onnx, "--frames", "8:4:16"), "1 <= min <= opt <= max"),
        ((tiny_onnx, "--batch", "a:b"), "--batch must be MIN:OPT:MAX"),
        ((tiny_onnx, "-o", tmp_path / "nodir" / "m.plan"), "does not exist"),
        ((tiny_onnx, "--workspace", "0"), "--workspace must be a positive"),
    ]
    for argv, message in cases:
        code, err = _cli(capsys, *argv)
        assert code == 2 and message in err and len(err.splitlines()) == 1, (argv, err)


def test_fp32_request_of_an_fp16_graph_is_refused(tiny_onnx, tmp_path, capsys):
    fp16 = prepare_onnx(read_onnx_info(tiny_onnx), "fp16", tmp_path / "m.fp16.onnx")
    code, err = _cli(capsys, fp16, "--precision", "fp32")
    assert code == 2 and "fp16 graph" in err


def test_selftest_pieces():
    profile = trt_selftest.selftest_profile(16)
    assert trt_selftest.shape_points(profile) == [(1, 8), (2, 16), (4, 32)]
    assert trt_selftest.agreement(np.array([[0.0, 1.0]]), np.array([[0.5, 0.4]])) == (0.6, 0.0)
    row = trt_selftest.Row("stam_tiny", "fp16", 2, 8, 1e-3, 2e-3, 1.0, 1.0, 1.5, 1333.3)
    table = trt_selftest.render_table([row])
    assert "stam_tiny" in table and "1333.3" in table
    calls = []
    assert trt_selftest.median_latency(lambda: calls.append(1), warmup=2, iterations=5) >= 0 and len(calls) == 7


@pytest.mark.tensorrt
@needs_tensorrt
def test_build_tiny_and_run_against_onnxruntime(tiny_onnx, tmp_path):
    from export.tensorrt import build_engine
    from runtime import open_model

    plan = tmp_path / "tiny.plan"
    profile = Profile(DimRange(1, 2, 3), DimRange(2, 8, 12))
    result = build_engine(tiny_onnx, BuildOptions(plan_path=plan, batch=profile.batch, frames=profile.frames,
                                                  timing_cache=tmp_path / "cache", inspect=True))
    assert result.layers and (tmp_path / "cache").is_file() and Sidecar.read(plan).profile == profile
    with open_model(plan) as engine, open_model(tiny_onnx) as reference:
        for batch, frames in trt_selftest.shape_points(profile):
            x = np.random.default_rng(frames).random(contract.input_shape(batch, frames), np.float32)
            expected, actual = reference.run(x), engine.run(x)
            np.testing.assert_array_equal(actual.argmax(-1), expected.argmax(-1))
            assert np.abs(actual - expected).max() <= 1e-2 * max(1.0, np.abs(expected).max())


@pytest.mark.tensorrt
@needs_tensorrt
def test_build_tiny_fp16_from_fp32_onnx(tiny_onnx, tmp_path):
    from export.tensorrt import build_engine
    from runtime import open_model

    result = build_engine(tiny_onnx, BuildOptions(plan_path=tmp_path / "tiny.fp16.plan", precision="fp16",
                                                  batch=DimRange(1, 1, 2), frames=DimRange(4, 8, 8)))
    assert result.sidecar.precision == "fp16" and result.sidecar.build["strongly_typed"]
    x = np.random.default_rng(0).random(contract.input_shape(2, 8), np.float32)
    with open_model(result.plan_path) as engine, open_model(tiny_onnx) as reference:
        np.testing.assert_array_equal(engine.run(x).argmax(-1), reference.run(x).argmax(-1))
