"""runtime.split: a split pair found from either part, checked as one export; a whole model per window."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest

from runtime import contract
from runtime.errors import ArtifactError, ShapeError
from runtime.split import SplitPair, WholeModelWindows, open_window_model


def frames(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((count, 3, 224, 224), dtype=np.float32)


def test_either_part_opens_the_pair(tiny_split, tiny_labels):
    frames_path, temporal_path = tiny_split
    for path in tiny_split:
        with open_window_model(path) as model:
            assert isinstance(model, SplitPair) and model.embeds_once
            assert model.labels == tiny_labels and model.frames_trained == 8
            assert model.frames.path == str(frames_path) and model.temporal.path == str(temporal_path)
            assert model.window_range is None  # dynamic T on ONNX Runtime


def test_pair_equals_the_whole_model(tiny_split, tiny_onnx):
    """classify(embed(x)) on windows of embeddings equals the whole export on the same frames."""
    clip = frames(16)
    with open_window_model(tiny_split[0]) as pair, open_window_model(tiny_onnx) as whole:
        assert isinstance(whole, WholeModelWindows) and not whole.embeds_once
        embeddings = pair.embed(clip)
        assert embeddings.shape == (16, 64)
        windows = np.stack([embeddings[:8], embeddings[8:]])
        expected = whole.classify(np.stack([clip[:8], clip[8:]]))
        np.testing.assert_allclose(pair.classify(windows), expected, atol=contract.FP32_MAX_ABS_DIFF, rtol=0)


def test_embedding_one_frame_at_a_time_changes_nothing(tiny_split):
    clip = frames(4, seed=1)
    with open_window_model(tiny_split[0]) as pair:
        together = pair.embed(clip)
        alone = np.concatenate([pair.embed(clip[i : i + 1]) for i in range(4)])
    np.testing.assert_allclose(alone, together, atol=1e-5, rtol=0)


def test_missing_partner_is_one_clear_error(tiny_split, tmp_path):
    lonely = shutil.copy(tiny_split[0], tmp_path / tiny_split[0].name)
    with pytest.raises(ArtifactError, match="its partner stam_tiny.temporal.onnx is not beside it"):
        open_window_model(lonely)


def test_parts_of_different_exports_are_refused(tiny_split, tmp_path):
    frames_path = shutil.copy(tiny_split[0], tmp_path / tiny_split[0].name)
    temporal = onnx.load(str(tiny_split[1]))
    for prop in temporal.metadata_props:
        if prop.key == contract.META_FRAMES_TRAINED:
            prop.value = "16"
    onnx.save(temporal, str(tmp_path / tiny_split[1].name))
    with pytest.raises(ArtifactError, match=r"are not one pair \(their stam.frames_trained differ\)"):
        open_window_model(frames_path)


def test_a_temporal_range_that_cannot_hold_the_window_is_refused(tiny_split, tmp_path):
    """A temporal part pinned to T=8 (as a plan's profile would pin a range) refuses --window 16."""
    frames_path = shutil.copy(tiny_split[0], tmp_path / tiny_split[0].name)
    temporal = onnx.load(str(tiny_split[1]))
    temporal.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 8
    onnx.save(temporal, str(tmp_path / tiny_split[1].name))
    with open_window_model(frames_path) as pair:
        pair.check_window(8)
        with pytest.raises(ShapeError, match="--window 16 does not fit: frames=16 is outside the model's range 8..8"):
            pair.check_window(16)


def test_wrong_frame_shapes_are_refused(tiny_split):
    with (
        open_window_model(tiny_split[0]) as pair,
        pytest.raises(ShapeError, match=r"frames must be float32 \(N, 3, 224, 224\)"),
    ):
        pair.embed(np.zeros((2, 3, 112, 112), dtype=np.float32))
