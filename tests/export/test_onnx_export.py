"""ONNX export: the I/O contract, metadata, and parity with PyTorch on ONNX Runtime CPU."""

from __future__ import annotations

import onnx
import pytest

from export.onnx import export_onnx, verify_onnx
from runtime import contract
from runtime.onnx_io import proto_metadata

PARITY_SHAPES = [(1, 1), (2, 8), (3, 5), (1, 13), (2, 32)]  # stam_tiny is trained at T=8


def test_io_contract_has_symbolic_batch_and_frames(tiny_onnx):
    graph = onnx.load(str(tiny_onnx), load_external_data=False).graph
    (inp,), (out,) = graph.input, graph.output
    assert inp.name == contract.INPUT_NAME and out.name == contract.OUTPUT_NAME
    in_dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    out_dims = [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim]
    assert in_dims == ["batch", "frames", 3, 224, 224] and out_dims == ["batch", 10]
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_single_file_with_opset_and_metadata(tiny_onnx, tiny_labels):
    assert not list(tiny_onnx.parent.glob("*.data"))
    proto = onnx.load(str(tiny_onnx))
    assert max(op.version for op in proto.opset_import if op.domain in ("", "ai.onnx")) >= 18
    metadata = proto_metadata(proto)
    contract.check_metadata(metadata, "test")
    assert metadata[contract.META_MODEL] == "stam_tiny"
    assert metadata[contract.META_FRAMES_TRAINED] == "8"
    assert metadata[contract.META_PRECISION] == "fp32"
    assert contract.labels_from_metadata(metadata) == tiny_labels


def test_fp32_parity_at_many_batches_and_frame_counts(tiny_model, tiny_onnx):
    report = verify_onnx(tiny_model, tiny_onnx, PARITY_SHAPES)
    assert report.passed, report.failures()
    assert report.max_abs_diff <= contract.FP32_MAX_ABS_DIFF


def test_fp16_export_keeps_top1_with_bounded_error(tiny_model, tiny_labels, tmp_path):
    path = export_onnx(tiny_model, tmp_path / "tiny.fp16.onnx", labels=tiny_labels, precision="fp16")
    proto = onnx.load(str(path))
    assert proto_metadata(proto)[contract.META_PRECISION] == "fp16"
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # I/O stays float32
    weights = [init for init in proto.graph.initializer if len(init.dims) == 2]
    assert weights and all(init.data_type == onnx.TensorProto.FLOAT16 for init in weights)
    report = verify_onnx(tiny_model, path, PARITY_SHAPES, precision="fp16")
    assert report.passed, report.failures()
    assert report.max_abs_diff > contract.FP32_MAX_ABS_DIFF / 100  # it really computed in fp16


def test_labels_must_match_the_head(tiny_model, tmp_path):
    from runtime.errors import StamError

    with pytest.raises(StamError, match="3 labels given for a model with 10 classes"):
        export_onnx(tiny_model, tmp_path / "x.onnx", labels=["a", "b", "c"])


@pytest.mark.slow
def test_full_stam16_parity_at_trained_frames(stam16):
    model, path = stam16
    report = verify_onnx(model, path, [(1, 16)])
    assert report.passed, report.failures()
