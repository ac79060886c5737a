"""The PyTorch reference STAM model: a ViT-B/16 per frame and a temporal transformer over class tokens.

State-dict keys are those of the official checkpoints (docs/architecture.md, "The model
(reference)"), so an official state dict loads with `strict=True` and no renaming. The temporal layers re-implement
`nn.TransformerEncoderLayer(d_model, nhead)` defaults (post-norm, ReLU) batch-first with the same
parameter names; a test pins them to the torch module.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from runtime.contract import INPUT_SIZE


@dataclass(frozen=True)
class StamConfig:
    """Everything that distinguishes one STAM variant from another."""

    name: str
    frames_trained: int
    num_classes: int = 400
    image_size: int = INPUT_SIZE
    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_hidden: int = 3072
    qkv_bias: bool = True
    temporal_depth: int = 6
    temporal_heads: int = 8
    temporal_ff: int = 2048
    norm_eps: float = 1e-5

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


_VIT_B16 = StamConfig(name="stam_16", frames_trained=16)
VARIANTS: dict[str, StamConfig] = {
    **{f"stam_{t}": replace(_VIT_B16, name=f"stam_{t}", frames_trained=t) for t in (8, 16, 32, 64)},
    # Same structure, small widths: fast tests, and the shipped motion model.
    "stam_tiny": StamConfig(
        name="stam_tiny",
        frames_trained=8,
        embed_dim=64,
        depth=2,
        num_heads=4,
        mlp_hidden=256,
        temporal_depth=2,
        temporal_heads=8,
        temporal_ff=128,
    ),
}


class PatchEmbed(nn.Module):
    """Non-overlapping 16x16 patches projected to the embedding width."""

    def __init__(self, config: StamConfig):
        super().__init__()
        self.proj = nn.Conv2d(3, config.embed_dim, kernel_size=config.patch_size, stride=config.patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.proj(images).flatten(2).transpose(1, 2)  # (N, 196, D)


class Attention(nn.Module):
    """Multi-head self-attention of the spatial blocks, on the fused SDPA kernel."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(_multi_head_attention(self.qkv(x), self.num_heads))


class Mlp(nn.Module):
    """Linear, exact (erf) GELU, Linear."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm ViT block."""

    def __init__(self, config: StamConfig):
        super().__init__()
        dim = config.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=config.norm_eps)
        self.attn = Attention(dim, config.num_heads, config.qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=config.norm_eps)
        self.mlp = Mlp(dim, config.mlp_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TemporalSelfAttention(nn.Module):
    """`nn.MultiheadAttention`'s parameters (`in_proj_*`, `out_proj`) and math, batch-first."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        return self.out_proj(_multi_head_attention(qkv, self.num_heads))


class TemporalEncoderLayer(nn.Module):
    """`nn.TransformerEncoderLayer` defaults: post-norm, ReLU feed-forward (dropout is inert in eval)."""

    def __init__(self, config: StamConfig):
        super().__init__()
        dim = config.embed_dim
        self.self_attn = TemporalSelfAttention(dim, config.temporal_heads)
        self.linear1 = nn.Linear(dim, config.temporal_ff)
        self.linear2 = nn.Linear(config.temporal_ff, dim)
        self.norm1 = nn.LayerNorm(dim, eps=config.norm_eps)
        self.norm2 = nn.LayerNorm(dim, eps=config.norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.self_attn(x))
        return self.norm2(x + self.linear2(F.relu(self.linear1(x))))


class TemporalEncoder(nn.Module):
    """`nn.TransformerEncoder(layer, n, norm=LayerNorm)`: the key layout `layers.{i}` and `norm`."""

    def __init__(self, config: StamConfig):
        super().__init__()
        self.layers = nn.ModuleList(TemporalEncoderLayer(config) for _ in range(config.temporal_depth))
        self.norm = nn.LayerNorm(config.embed_dim, eps=config.norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


class TemporalAggregate(nn.Module):
    """The official `TAggregate`: a class token over the T frame embeddings of each video."""

    def __init__(self, config: StamConfig):
        super().__init__()
        self.transformer_enc = TemporalEncoder(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.frames_trained + 1, config.embed_dim))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        batch, frames, _ = embeddings.shape  # (B, T, D)
        cls = self.cls_token.expand(batch, -1, -1)
        pos_frames = resample_positions(self.pos_embed[:, 1:], frames)  # (1, T, D)
        x = torch.cat((cls + self.pos_embed[:, :1], embeddings + pos_frames), dim=1)  # (B, T+1, D)
        return self.transformer_enc(x)[:, 0]  # (B, D)


class Stam(nn.Module):
    """STAM: `forward_features` per frame, `forward_head` over time; input (B, T, 3, 224, 224) in [0, 1]."""

    def __init__(self, config: StamConfig):
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbed(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.num_patches + 1, config.embed_dim))
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.embed_dim, eps=config.norm_eps)
        self.aggregate = TemporalAggregate(config)
        self.head = nn.Linear(config.embed_dim, config.num_classes)
        self.apply(_init_weights)

    def forward_features(self, frames: torch.Tensor) -> torch.Tensor:
        """Per-frame class-token embeddings: (B, T, 3, H, W) -> (B, T, D)."""
        batch, num_frames = frames.shape[:2]
        x = self.patch_embed(frames.flatten(0, 1))  # (B*T, 196, D)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed  # (B*T, 197, D)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 0].unflatten(0, (batch, num_frames))  # (B, T, D)

    def forward_head(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Temporal aggregation and classifier: (B, T, D) -> (B, C) logits."""
        return self.head(self.aggregate(embeddings))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(frames))


def create_model(name: str, num_classes: int = 400, **overrides) -> Stam:
    """A randomly initialised variant; `overrides` replace config fields (e.g. frames_trained)."""
    if name not in VARIANTS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(sorted(VARIANTS))}")
    config = replace(VARIANTS[name], num_classes=num_classes, **overrides)
    return Stam(config).eval()


def resample_positions(pos: torch.Tensor, frames: int | torch.SymInt) -> torch.Tensor:
    """Linear interpolation of (1, T_trained, D) position embeddings to (1, frames, D).

    Equal to `F.interpolate(mode="linear", align_corners=False)`, but written as a gather and a
    lerp: it exports for a symbolic `frames` without a Resize node (TensorRT- and fp16-friendly),
    and is the identity, bit for bit, when `frames == T_trained` (the weights are exactly 0).
    """
    trained = pos.shape[1]
    scale = trained / frames
    # torch's stubs list only Python numbers for arange, which also takes the SymInt of an export trace
    steps = torch.arange(frames, device=pos.device, dtype=torch.float32)  # type: ignore[arg-type]
    centers = (steps + 0.5) * scale - 0.5
    centers = centers.clamp(min=0.0, max=float(trained - 1))
    left = centers.floor().to(torch.int64)
    right = (left + 1).clamp(max=trained - 1)
    weight = (centers - left.to(torch.float32)).to(pos.dtype)[None, :, None]  # (1, T, 1)
    return pos[:, left] * (1 - weight) + pos[:, right] * weight


def _multi_head_attention(qkv: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Scaled dot-product attention over a fused (N, L, 3*D) projection; returns (N, L, D)."""
    n, length, width = qkv.shape
    q, k, v = qkv.view(n, length, 3, num_heads, width // (3 * num_heads)).permute(2, 0, 3, 1, 4)
    out = F.scaled_dot_product_attention(q, k, v)  # (N, heads, L, head_dim)
    return out.transpose(1, 2).flatten(2)


def _init_weights(module: nn.Module) -> None:
    """The official initialisation (truncated normal 0.02), so random models have sane activations."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, TemporalSelfAttention):
        nn.init.trunc_normal_(module.in_proj_weight, std=0.02)
    elif isinstance(module, (Stam, TemporalAggregate)):
        nn.init.trunc_normal_(module.pos_embed, std=0.02)
        nn.init.trunc_normal_(module.cls_token, std=0.02)
