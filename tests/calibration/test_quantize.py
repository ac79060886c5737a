"""calibration.quantize end to end on stam_tiny: metadata, ONNX Runtime CPU numerics, refused inputs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from calibration.quantize import META_CALIBRATION, calibrate
from calibration.report import compare_models
from runtime import contract, open_model
from runtime.errors import ArtifactError, StamError
from runtime.onnx_io import proto_metadata
from tests.calibration.conftest import random_clips


def test_metadata_is_kept_with_the_new_precision(tiny_onnx, tiny_int8, tiny_labels):
    source, result = proto_metadata(onnx.load(str(tiny_onnx))), proto_metadata(onnx.load(str(tiny_int8)))
    assert result[contract.META_PRECISION] == "int8"
    assert result[META_CALIBRATION] == "int8 minmax, 6 clips of 8 frames"
    assert contract.labels_from_metadata(result) == tiny_labels
    unchanged = set(contract.REQUIRED_METADATA) - {contract.META_PRECISION}
    assert {key: result[key] for key in unchanged} == {key: source[key] for key in unchanged}


def test_int8_runs_on_onnx_runtime_cpu_close_to_fp32(tiny_onnx, tiny_int8):
    held_out = random_clips(6, seed=7)  # calibrated on seed 1
    report = compare_models(tiny_onnx, tiny_int8, held_out)
    with open_model(tiny_onnx) as fp32:
        spread = float(np.abs(np.concatenate([fp32.run(c[None]) for c in held_out])).max())
    assert report.clips == 6 and report.top1_agreement == 1.0
    assert report.max_abs_diff <= 0.05 * spread  # measured: ~1.5% of the largest logit
    assert 0 < report.mean_abs_diff <= report.max_abs_diff


def test_int8_runs_at_other_batch_and_frame_counts(tiny_onnx, tiny_int8):
    frames = np.stack(random_clips(2, seed=8, frames=5))
    with open_model(tiny_onnx) as fp32, open_model(tiny_int8) as int8:
        expected, actual = fp32.run(frames), int8.run(frames)
    assert actual.shape == expected.shape == (2, 10)
    assert np.array_equal(actual.argmax(-1), expected.argmax(-1))


def test_fp8_is_written_and_runs_as_fake_quant_on_cpu(tiny_onnx, tmp_path):
    """FP8 kernels need a GPU; ONNX Runtime CPU still executes the Q/DQ pairs, which checks the scales."""
    output = calibrate(tiny_onnx, random_clips(3, seed=1), tmp_path / "fp8.onnx", precision="fp8", method="minmax").path
    assert proto_metadata(onnx.load(str(output)))[contract.META_PRECISION] == "fp8"
    report = compare_models(tiny_onnx, output, random_clips(3, seed=7))
    assert report.top1_agreement == 1.0 and report.max_abs_diff < 2.0  # measured ~0.7 (logits span about 12)


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_histogram_methods(tiny_onnx, tmp_path, method):
    output = calibrate(tiny_onnx, random_clips(2, seed=1), tmp_path / "q.onnx", method=method).path
    assert compare_models(tiny_onnx, output, random_clips(2, seed=7)).top1_agreement == 1.0


def _write_plain_onnx(path):
    graph = helper.make_graph(
        [helper.make_node("Identity", ["frames"], ["logits"])],
        "plain",
        [helper.make_tensor_value_info("frames", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1])],
    )
    onnx.save(helper.make_model(graph), str(path))
    return path


def test_refuses_a_non_stam_onnx(tmp_path):
    with pytest.raises(ArtifactError, match="not a stam-deploy artifact"):
        calibrate(_write_plain_onnx(tmp_path / "plain.onnx"), random_clips(1, 0), tmp_path / "out.onnx")


def test_refuses_garbage_and_missing_files(tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\xffnot a protobuf" * 10)
    with pytest.raises(ArtifactError, match="not a loadable ONNX model"):
        calibrate(garbage, random_clips(1, 0), tmp_path / "out.onnx")
    with pytest.raises(ArtifactError, match="no such file"):
        calibrate(tmp_path / "missing.onnx", random_clips(1, 0), tmp_path / "out.onnx")


def test_refuses_an_already_quantized_model(tiny_int8, tmp_path):
    with pytest.raises(ArtifactError, match="calibrate the fp32 export"):
        calibrate(tiny_int8, random_clips(1, 0), tmp_path / "again.onnx")


def test_refuses_unwritable_output_before_calibrating(tiny_onnx, tmp_path):
    def never():
        raise AssertionError("clips were read before the output was checked")
        yield  # pragma: no cover

    with pytest.raises(ArtifactError, match="does not exist"):
        calibrate(tiny_onnx, never(), tmp_path / "no_such_dir" / "out.onnx")
    with pytest.raises(ArtifactError, match="overwrite"):
        calibrate(tiny_onnx, never(), tiny_onnx)


def test_refuses_no_clips_and_bad_clip_shapes(tiny_onnx, tmp_path):
    with pytest.raises(StamError, match="no calibration clips"):
        calibrate(tiny_onnx, [], tmp_path / "out.onnx")
    with pytest.raises(StamError, match=r"expected \(T, 3, 224, 224\)"):
        calibrate(tiny_onnx, [np.zeros((8, 224, 224, 3), np.float32)], tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()


def test_refuses_unknown_precision_and_method(tiny_onnx, tmp_path):
    with pytest.raises(StamError, match="--precision"):
        calibrate(tiny_onnx, [], tmp_path / "out.onnx", precision="int4")
    with pytest.raises(StamError, match="--method"):
        calibrate(tiny_onnx, [], tmp_path / "out.onnx", method="mse")


def test_int8_on_a_cpu_without_vnni_runs_simulated_and_says_so(tiny_onnx, tiny_int8, monkeypatch):
    """ONNX Runtime's fused INT8 kernels saturate on x86 without VNNI: the backend must not use them there."""
    import warnings

    from runtime import cpu

    clip = random_clips(1, seed=9)[0][None]
    monkeypatch.setattr(cpu, "int8_saturates", lambda: True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open_model(tiny_int8) as simulated, open_model(tiny_onnx) as fp32:
            simulated_logits, fp32_logits = simulated.run(clip), fp32.run(clip)
    assert [str(w.message) for w in caught if "no VNNI" in str(w.message)], "the fallback must be said"
    assert len(caught) == 1  # the fp32 model is not affected
    assert np.abs(simulated_logits - fp32_logits).max() <= 0.05 * np.abs(fp32_logits).max()
    monkeypatch.setattr(cpu, "int8_saturates", lambda: False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        open_model(tiny_int8).close()
    assert not caught
