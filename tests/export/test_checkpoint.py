"""Checkpoints in the official format: inference of the variant, strict loading, clear errors."""

from __future__ import annotations

import pytest
import torch

from export.checkpoint import infer_config, load_checkpoint, save_checkpoint
from export.model import create_model
from runtime.errors import ArtifactError


def test_official_layout_round_trips(tiny_model, tiny_checkpoint):
    assert set(torch.load(tiny_checkpoint, weights_only=True)) == {"model", "stam_config"}
    loaded = load_checkpoint(tiny_checkpoint)
    assert loaded.config == tiny_model.config
    frames = torch.rand(1, 5, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(loaded(frames), tiny_model(frames), rtol=0, atol=0)


def test_bare_state_dict_loads(tiny_model, tmp_path):
    path = tmp_path / "bare.pth"
    torch.save(tiny_model.state_dict(), path)
    assert load_checkpoint(path).config == tiny_model.config


def test_variant_is_inferred_from_the_tensors():
    state = create_model("stam_32", num_classes=174).state_dict()
    config = infer_config(state)
    assert (config.name, config.frames_trained, config.num_classes, config.depth) == ("stam_32", 32, 174, 12)


def test_checkpoint_without_qkv_bias_loads(tmp_path):
    """The first public STAM code built qkv without bias; such state dicts must still load strictly."""
    model = create_model("stam_tiny", qkv_bias=False)
    path = save_checkpoint(model, tmp_path / "nobias.pth")
    assert load_checkpoint(path).config.qkv_bias is False


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ArtifactError, match="checkpoint file not found"):
        load_checkpoint(tmp_path / "nope.pth")


def test_corrupt_file_is_a_clear_error(tmp_path):
    path = tmp_path / "corrupt.pth"
    path.write_bytes(b"\x80\x02 definitely not a checkpoint")
    with pytest.raises(ArtifactError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(path)


def test_other_architecture_lists_what_is_missing(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"model": {"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(1000, 2048)}}, path)
    with pytest.raises(ArtifactError, match="not a STAM checkpoint: missing aggregate.pos_embed"):
        load_checkpoint(path)


def test_misshaped_and_unexpected_keys_are_listed(tiny_model, tmp_path):
    state = dict(tiny_model.state_dict())
    state["head.bias"] = torch.zeros(3)
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save({"model": state}, path)
    with pytest.raises(ArtifactError) as error:
        load_checkpoint(path)
    message = str(error.value)
    assert "unexpected (1): extra.weight" in message and "mis-shaped (1): head.bias (3,) vs (10,)" in message
    assert "\n" not in message


def test_named_variant_that_does_not_fit_is_refused(tiny_checkpoint):
    with pytest.raises(ArtifactError, match="does not fit stam_16"):
        load_checkpoint(tiny_checkpoint, model_name="stam_16")


def test_other_widths_round_trip_through_the_stored_config(tmp_path):
    """Head counts cannot be read off the weights: our checkpoints carry their config."""
    model = create_model("stam_tiny", num_classes=9, patch_size=32, embed_dim=96, mlp_hidden=384, num_heads=6)
    loaded = load_checkpoint(save_checkpoint(model, tmp_path / "wide.pth"))
    assert loaded.config == model.config
    frames = torch.rand(1, 3, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(loaded(frames), model(frames), rtol=0, atol=0)


def test_official_layout_without_config_infers_patch_size(tmp_path):
    model = create_model("stam_tiny", patch_size=32)
    path = tmp_path / "official.pth"
    torch.save({"model": model.state_dict()}, path)
    assert load_checkpoint(path).config.patch_size == 32


def test_labels_are_stored_beside_the_weights(tiny_model, tmp_path):
    from export.checkpoint import load_checkpoint_with_labels

    labels = [f"class {i}" for i in range(tiny_model.config.num_classes)]
    path = save_checkpoint(tiny_model, tmp_path / "labelled.pth", labels=labels)
    assert load_checkpoint_with_labels(path)[1] == labels
    with pytest.raises(ArtifactError, match="3 labels for a model with 10 classes"):
        save_checkpoint(tiny_model, tmp_path / "bad.pth", labels=["a", "b", "c"])
