"""export.trt_ops: the TensorRT ONNX operator check, on exported STAM graphs and on graphs built to fail."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from export.build_cli import main
from export.fp16 import convert_to_fp16
from export.trt_ops import check_operators, load_table
from runtime.errors import StamError

FP32 = TensorProto.FLOAT


def _model(nodes, initializers=(), opset=18, domain_opsets=()) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", FP32, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", FP32, None)],
        list(initializers),
    )
    opsets = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, v) for d, v in domain_opsets)]
    return helper.make_model(graph, opset_imports=opsets)


def test_table_names_its_source():
    table = load_table()
    assert "onnx-tensorrt" in table["source"] and "operators.md" in table["source"]
    assert {"10", "11"} <= set(table["majors"])


@pytest.mark.parametrize("trt_major", [10, 11])
def test_exported_stam_tiny_passes_fp32_and_fp16(tiny_onnx, trt_major):
    fp32 = onnx.load(str(tiny_onnx))
    for model in (fp32, convert_to_fp16(fp32)):
        report = check_operators(model, trt_major)
        assert report.passed, report.table()
        ops = {row.op_type for row in report.rows}
        assert {"LayerNormalization", "MatMul", "Softmax", "Conv"} <= ops
        assert all(row.count > 0 and row.opset == 18 for row in report.rows)


@pytest.mark.slow
def test_full_size_stam16_passes(stam16):
    """The ops do not depend on T_trained: stam_16 stands for stam_8..64."""
    fp32 = onnx.load(str(stam16[1]))
    for model in (fp32, convert_to_fp16(fp32)):
        report = check_operators(model, 10)
        assert report.passed, report.table()


def test_unsupported_and_custom_domain_ops_fail():
    nodes = [helper.make_node("Unique", ["x"], ["u"]), helper.make_node("Foo", ["u"], ["y"], domain="com.example")]
    report = check_operators(_model(nodes, domain_opsets=[("com.example", 1)]))
    assert not report.passed
    assert any("Unique is listed as unsupported" in e for e in report.errors)
    assert any("com.example::Foo" in e and "plugin" in e for e in report.errors)
    assert "NO" in report.table()


def test_gelu_needs_opset_20():
    gelu = [helper.make_node("Gelu", ["x"], ["y"])]
    assert not check_operators(_model(gelu, opset=18)).passed
    assert check_operators(_model(gelu, opset=20)).passed


def test_opset_outside_the_parsers_range_fails():
    report = check_operators(_model([helper.make_node("Relu", ["x"], ["y"])], opset=7))
    assert any("opset 7 is outside" in e for e in report.errors)


def test_resize_restrictions():
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    cubic = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="cubic", antialias=1)
    report = check_operators(_model([cubic], [scales]))
    assert any("antialiasing" in e for e in report.errors) and any("cubic" in e for e in report.errors)
    dynamic = [helper.make_node("Mul", ["x", "x"], ["s"]), helper.make_node("Resize", ["x", "", "s"], ["y"])]
    report = check_operators(_model(dynamic))
    assert report.passed and any("dynamic Resize" in w for w in report.warnings)


def test_computed_reduce_axes_fail():
    nodes = [helper.make_node("Shape", ["x"], ["axes"]), helper.make_node("ReduceMean", ["x", "axes"], ["y"])]
    report = check_operators(_model(nodes))
    assert any("axes must be an initializer" in e for e in report.errors)


def test_double_weights_warn_and_string_weights_fail():
    double = numpy_helper.from_array(np.ones((1,), np.float64), "d")
    report = check_operators(_model([helper.make_node("Relu", ["x"], ["y"])], [double]))
    assert report.passed and any("DOUBLE" in w for w in report.warnings)
    text = helper.make_tensor("s", TensorProto.STRING, [1], [b"a"])
    assert not check_operators(_model([helper.make_node("Relu", ["x"], ["y"])], [text])).passed


def test_unknown_major_is_a_clear_error():
    with pytest.raises(StamError, match="no operator table for TensorRT 9"):
        check_operators(_model([helper.make_node("Relu", ["x"], ["y"])]), 9)


def test_cli_check_exit_codes(tiny_onnx, tmp_path, capsys):
    assert main(["--check", str(tiny_onnx)]) == 0
    assert "PASSED" in capsys.readouterr().out
    bad = tmp_path / "bad.onnx"
    onnx.save(_model([helper.make_node("Unique", ["x"], ["y"])]), str(bad))
    assert main(["--check", str(bad), "--trt-major", "11"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "operators.md of TensorRT 10.15, which TensorRT 11 keeps" in out
    assert (
        out.splitlines()[-1]
        == "checked with the shipped operator table (TensorRT 11); install the rtx extra to ask the real ONNX parser"
    )
