"""export.trt_profile: default profiles, validation against the ONNX input, and the parts of a split pair."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import onnx
import pytest

from export.trt_profile import default_profile, read_onnx_info, resolve_profile, validate_profile
from runtime import contract
from runtime.contract import DimRange, Profile
from runtime.errors import ArtifactError, ShapeError
from tests.export.trt_graphs import part_graph


@pytest.mark.parametrize(
    "trained, frames, batch",
    [
        (16, (8, 16, 64), (1, 8, 32)),
        (8, (4, 8, 32), (1, 8, 32)),
        (32, (16, 32, 128), (1, 8, 16)),
        (64, (32, 64, 128), (1, 8, 16)),
        (1, (1, 1, 4), (1, 8, 32)),
    ],
)
def test_default_profile(trained, frames, batch):
    profile = default_profile(trained)
    assert profile == Profile(batch=DimRange(*batch), frames=DimRange(*frames))


def _info(dims=("batch", "frames", 3, 224, 224), elem=onnx.TensorProto.FLOAT):
    return SimpleNamespace(
        path=Path("m.onnx"),
        input_dims=dims,
        input_type=elem,
        frames_trained=16,
        precision="fp32",
        metadata={},
        part="",
        input_name="frames",
    )


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
    assert info.input_dims == (contract.BATCH_DIM, contract.FRAMES_DIM, 3, 224, 224) and info.part == ""
    profile = resolve_profile(info, None, DimRange(2, 3, 5))
    assert profile == Profile(DimRange(1, 8, 32), DimRange(2, 3, 5))  # stam_tiny: T_trained 8 -> batch default


def test_frames_part_ranges_over_every_frame_of_the_largest_request(tmp_path):
    info = read_onnx_info(part_graph(tmp_path / "m.frames.onnx", contract.PART_FRAMES))
    profile = resolve_profile(info, DimRange(1, 2, 4), DimRange(2, 8, 16))
    assert profile.part == "frames" and profile.input_name == "frames" and profile.output_name == "embeddings"
    assert profile.images == DimRange(1, 16, 64)
    assert profile.shapes() == {"min": (1, 3, 224, 224), "opt": (16, 3, 224, 224), "max": (64, 3, 224, 224)}
    profile.check_shape((64, 3, 224, 224))
    with pytest.raises(ShapeError, match=r"images=65 is outside the engine's profile 1\.\.64"):
        profile.check_shape((65, 3, 224, 224))
    with pytest.raises(ShapeError, match=r"frames must have shape \(images, 3, 224, 224\)"):
        profile.check_shape((2, 4, 3, 224, 224))


def test_temporal_part_defaults_to_1_to_4_times_the_trained_frames(tmp_path):
    info = read_onnx_info(part_graph(tmp_path / "m.temporal.onnx", contract.PART_TEMPORAL, frames_trained=4))
    profile = resolve_profile(info, None, None)
    assert profile == Profile(DimRange(1, 8, 32), DimRange(1, 4, 16), part="temporal", embed_dim=6)
    assert profile.shapes()["max"] == (32, 16, 6) and profile.input_name == "embeddings"
    with pytest.raises(ShapeError, match=r"embeddings must have shape \(batch, frames, 6\)"):
        profile.check_shape((2, 4, 7))
    assert Profile.from_dict(profile.to_dict()) == profile


def test_onnx_whose_input_is_not_the_parts_is_refused(tmp_path):
    temporal_named_frames = part_graph(tmp_path / "m.onnx", contract.PART_TEMPORAL, input_name="frames")
    with pytest.raises(
        ArtifactError, match="not the temporal part of a STAM model .* must be 'embeddings'; found 'frames'"
    ):
        read_onnx_info(temporal_named_frames)
