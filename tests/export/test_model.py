"""The reference model: official key layout, torch-module equivalence, dynamic frame count."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from export.model import VARIANTS, create_model, resample_positions

# Keys of one official ViT block / temporal layer; the rest of the layout is checked by counts.
OFFICIAL_BLOCK_KEYS = {
    "norm1.weight",
    "norm1.bias",
    "attn.qkv.weight",
    "attn.qkv.bias",
    "attn.proj.weight",
    "attn.proj.bias",
    "norm2.weight",
    "norm2.bias",
    "mlp.fc1.weight",
    "mlp.fc1.bias",
    "mlp.fc2.weight",
    "mlp.fc2.bias",
}
OFFICIAL_TEMPORAL_KEYS = {
    "self_attn.in_proj_weight",
    "self_attn.in_proj_bias",
    "self_attn.out_proj.weight",
    "self_attn.out_proj.bias",
    "linear1.weight",
    "linear1.bias",
    "linear2.weight",
    "linear2.bias",
    "norm1.weight",
    "norm1.bias",
    "norm2.weight",
    "norm2.bias",
}
OFFICIAL_TOP_KEYS = {
    "cls_token",
    "pos_embed",
    "patch_embed.proj.weight",
    "patch_embed.proj.bias",
    "norm.weight",
    "norm.bias",
    "aggregate.cls_token",
    "aggregate.pos_embed",
    "aggregate.transformer_enc.norm.weight",
    "aggregate.transformer_enc.norm.bias",
    "head.weight",
    "head.bias",
}


def test_stam16_has_the_official_state_dict_layout():
    state = create_model("stam_16").state_dict()
    expected = set(OFFICIAL_TOP_KEYS)
    expected |= {f"blocks.{i}.{k}" for i in range(12) for k in OFFICIAL_BLOCK_KEYS}
    expected |= {f"aggregate.transformer_enc.layers.{i}.{k}" for i in range(6) for k in OFFICIAL_TEMPORAL_KEYS}
    assert set(state) == expected
    assert state["pos_embed"].shape == (1, 197, 768)
    assert state["aggregate.pos_embed"].shape == (1, 17, 768)
    assert state["blocks.0.attn.qkv.weight"].shape == (2304, 768)
    assert state["aggregate.transformer_enc.layers.0.linear1.weight"].shape == (2048, 768)
    assert state["head.weight"].shape == (400, 768)


@pytest.mark.parametrize("name,frames", [("stam_8", 8), ("stam_16", 16), ("stam_32", 32), ("stam_64", 64)])
def test_variants_differ_only_in_trained_frames(name, frames):
    assert VARIANTS[name].frames_trained == frames
    assert VARIANTS[name].embed_dim == 768 and VARIANTS[name].depth == 12


def test_temporal_encoder_equals_torch_transformer_encoder(tiny_model):
    config = tiny_model.config
    layer = nn.TransformerEncoderLayer(config.embed_dim, config.temporal_heads, config.temporal_ff)
    reference = nn.TransformerEncoder(
        layer, config.temporal_depth, norm=nn.LayerNorm(config.embed_dim), enable_nested_tensor=False
    ).eval()
    prefix = "aggregate.transformer_enc."
    reference.load_state_dict(
        {k[len(prefix) :]: v for k, v in tiny_model.state_dict().items() if k.startswith(prefix)}, strict=True
    )
    tokens = torch.randn(3, 9, config.embed_dim)
    with torch.no_grad():
        expected = reference(tokens.transpose(0, 1)).transpose(0, 1)  # the official layout is (L, N, D)
        actual = tiny_model.aggregate.transformer_enc(tokens)
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-6)


def test_spatial_attention_equals_explicit_softmax(tiny_model):
    attn = tiny_model.blocks[0].attn
    x = torch.randn(2, 197, tiny_model.config.embed_dim)
    n, length, width = x.shape
    heads = attn.num_heads
    q, k, v = attn.qkv(x).reshape(n, length, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
    weights = ((q @ k.transpose(-2, -1)) * (width // heads) ** -0.5).softmax(-1)
    expected = attn.proj((weights @ v).transpose(1, 2).reshape(n, length, width))
    with torch.no_grad():
        torch.testing.assert_close(attn(x), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("frames", [1, 2, 5, 16, 17, 31, 64])
def test_resample_positions_is_linear_interpolation(frames):
    pos = torch.randn(1, 16, 12, generator=torch.Generator().manual_seed(frames))
    expected = F.interpolate(pos.transpose(1, 2), size=frames, mode="linear", align_corners=False).transpose(1, 2)
    # the same weights summed in another order: a few float32 ulps of the values (|x| < 5)
    torch.testing.assert_close(resample_positions(pos, frames), expected, rtol=0, atol=2e-6)


def test_resample_positions_is_exact_identity_at_trained_length():
    pos = torch.randn(1, 16, 12)
    assert torch.equal(resample_positions(pos, 16), pos)


def test_forward_matches_official_formulation_at_trained_frames(tiny_model):
    """Official STAM: frames flattened to (B*T), ViT, view (B, T, D), cat cls, + pos_embed, encoder."""
    frames = torch.rand(2, tiny_model.config.frames_trained, 3, 224, 224)
    with torch.no_grad():
        embeddings = tiny_model.forward_features(frames)
        agg = tiny_model.aggregate
        x = torch.cat((agg.cls_token.expand(2, -1, -1), embeddings), dim=1) + agg.pos_embed
        expected = tiny_model.head(agg.transformer_enc(x)[:, 0])
        torch.testing.assert_close(tiny_model(frames), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("batch,frames", [(1, 1), (2, 3), (1, 12)])
def test_forward_accepts_any_frame_count(tiny_model, batch, frames):
    with torch.no_grad():
        logits = tiny_model(torch.rand(batch, frames, 3, 224, 224))
    assert logits.shape == (batch, tiny_model.config.num_classes)
    assert torch.isfinite(logits).all()


def test_videos_in_a_batch_are_independent(tiny_model):
    frames = torch.rand(3, 4, 3, 224, 224)
    with torch.no_grad():
        together = tiny_model(frames)
        alone = torch.cat([tiny_model(frames[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-5)


def test_unknown_model_name_is_refused():
    with pytest.raises(ValueError, match="unknown model 'stam_7'"):
        create_model("stam_7")
