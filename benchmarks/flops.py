"""Work per video of a STAM model, counted from the model itself, and the paper's GFLOPs column beside it.

The count comes from `torch.utils.flop_counter.FlopCounterMode` (FLOPs = 2 x MACs) on one video.
The paper's "GFLOPs" are multiply-accumulates: 16 x 16.9 GMAC for ViT-B/16 at 224 plus the small
temporal transformer. 16.9 GMAC is the ViT's linear layers and patch embedding only; the attention
matrix products (Q.K^T and attention x V, about 0.7 GMAC per frame) come on top, so our total is
about 4% above the paper and our count without attention matches it. Both are reported.

FlopCounterMode has no formula for the CPU flash-attention kernel that SDPA dispatches to on CPU
(it would count attention as zero there); `ATTENTION_FORMULAS` adds one. On the meta device SDPA
falls back to its math path, whose batched matmuls are counted as such.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from export.model import VARIANTS, create_model
from runtime import contract

# The paper's GFLOPs column (multiply-accumulates per video) for each variant.
PAPER_GMACS = {"stam_8": 135.0, "stam_16": 270.0, "stam_32": 540.0, "stam_64": 1080.0}


def _attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """FlopCounterMode's own SDPA formula (2 matmuls), for kernels it has no entry for."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# Fused attention kernels FlopCounterMode lacks a formula for (torch 2.x: the CPU flash kernel).
_EXTRA_SDPA_OPS = ("_scaled_dot_product_flash_attention_for_cpu",)
ATTENTION_FORMULAS: dict[Any, Callable[..., int]] = {
    getattr(torch.ops.aten, name): _attention_flops for name in _EXTRA_SDPA_OPS if hasattr(torch.ops.aten, name)
}

# How each counted aten op is reported.
_CATEGORIES = {
    "convolution": "patch embedding (convolution)",
    "addmm": "linear layers",
    "mm": "linear layers",
    "linear": "linear layers",
    "bmm": "attention matmuls",
    "baddbmm": "attention matmuls",
}


@dataclass(frozen=True)
class WorkCount:
    """MACs of one video at `frames` frames, split by kind of op."""

    model: str
    frames: int
    gmacs: float
    gmacs_by_op: dict[str, float]
    gmacs_by_category: dict[str, float]
    paper_gmacs: float | None

    @property
    def gflops(self) -> float:
        return 2.0 * self.gmacs

    @property
    def gmacs_without_attention(self) -> float:
        """What the paper counts: everything but the attention matrix products."""
        return self.gmacs - self.gmacs_by_category.get("attention matmuls", 0.0)

    @property
    def ratio(self) -> float | None:
        """Our total MACs over the paper's column."""
        return self.gmacs / self.paper_gmacs if self.paper_gmacs else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            gflops=self.gflops,
            gmacs_without_attention=self.gmacs_without_attention,
            ratio=self.ratio,
            ratio_without_attention=self.gmacs_without_attention / self.paper_gmacs if self.paper_gmacs else None,
        )
        return data


def count_flops(model: torch.nn.Module, frames_input: torch.Tensor) -> dict[str, int]:
    """FLOPs of one forward pass per aten op (names without the `aten.` prefix), attention included."""
    counter = FlopCounterMode(display=False, custom_mapping=ATTENTION_FORMULAS)
    with counter, torch.no_grad():
        model(frames_input)
    return {str(op).removeprefix("aten."): int(flops) for op, flops in counter.get_flop_counts()["Global"].items()}


def count_work(name: str, frames: int | None = None, device: str = "meta") -> WorkCount:
    """MACs per video of variant `name` at `frames` frames (default: its trained count).

    On the meta device nothing is computed or allocated, so STAM-64 counts in about a second.
    """
    if name not in VARIANTS:
        raise ValueError(f"unknown model {name!r}")
    frames = frames or VARIANTS[name].frames_trained
    with torch.device(device):
        model = create_model(name)
        flops = count_flops(model, torch.zeros(contract.input_shape(1, frames)))
    by_op = {op: value / 2e9 for op, value in flops.items()}
    by_category: dict[str, float] = {}
    for op, gmacs in by_op.items():
        category = _CATEGORIES.get(op, "attention matmuls" if "attention" in op else op)
        by_category[category] = by_category.get(category, 0.0) + gmacs
    return WorkCount(name, frames, sum(by_op.values()), by_op, by_category, PAPER_GMACS.get(name))


def counted_ops_note() -> str:
    """One line for reports: which ops the count includes and which it leaves out."""
    return (
        "counted: convolution, linear (addmm/mm), attention matmuls (bmm or fused SDPA kernels); "
        "not counted: LayerNorm, GELU/ReLU, softmax, additions (element-wise, < 1% of the work). "
        "FLOPs = 2 x MACs; the paper's GFLOPs are MACs without the attention matmuls."
    )
