"""Loading and writing checkpoints in the official STAM format (`{"model": state_dict}`).

The variant is inferred from the tensors themselves (T_trained from `aggregate.pos_embed`,
classes from `head.weight`, depths from the block indices), because users often do not know
which of the released files they hold.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import torch

from export.model import VARIANTS, Stam, StamConfig
from runtime.errors import ArtifactError

_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.")
_TEMPORAL_KEY = re.compile(r"^aggregate\.transformer_enc\.layers\.(\d+)\.")
_CONFIG_KEY = "stam_config"  # written by save_checkpoint; official files have only "model"
_LABELS_KEY = "labels"  # class names, one per output, written by save_checkpoint when known
_REQUIRED_KEYS = (
    "aggregate.pos_embed",
    "head.weight",
    "cls_token",
    "patch_embed.proj.weight",
    "blocks.0.mlp.fc1.weight",
    "aggregate.transformer_enc.layers.0.linear1.weight",
)


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict | None, list[str] | None]:
    """(state dict, stored config, stored labels) of an official `.pth` (`["model"]`) or a bare state dict.

    Config and labels are None unless `save_checkpoint` wrote them.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: checkpoint file not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt or foreign pickles
        raise ArtifactError(f"{path}: not a readable PyTorch checkpoint ({type(error).__name__})") from None
    config = labels = None
    if isinstance(data, Mapping) and isinstance(data.get("model"), Mapping):
        config = data.get(_CONFIG_KEY) if isinstance(data.get(_CONFIG_KEY), Mapping) else None
        labels = [str(label) for label in data[_LABELS_KEY]] if isinstance(data.get(_LABELS_KEY), list) else None
        data = data["model"]
    if not isinstance(data, Mapping) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ArtifactError(f"{path}: holds no state dict (expected a dict of tensors, or one under 'model')")
    return dict(data), config, labels


def infer_config(state_dict: Mapping[str, torch.Tensor], model_name: str | None = None) -> StamConfig:
    """The config whose parameters have exactly the shapes in `state_dict`."""
    missing = [key for key in _REQUIRED_KEYS if key not in state_dict]
    if missing:
        raise ArtifactError(f"not a STAM checkpoint: missing {', '.join(missing)}")
    embed_dim = state_dict["cls_token"].shape[-1]
    base = _base_config(embed_dim, model_name)
    frames_trained = state_dict["aggregate.pos_embed"].shape[1] - 1
    name = model_name or next(
        (n for n, c in VARIANTS.items() if c.embed_dim == embed_dim and c.frames_trained == frames_trained),
        base.name,
    )
    return replace(
        base,
        name=name,
        patch_size=state_dict["patch_embed.proj.weight"].shape[-1],
        mlp_hidden=state_dict["blocks.0.mlp.fc1.weight"].shape[0],
        frames_trained=frames_trained,
        num_classes=state_dict["head.weight"].shape[0],
        depth=_count_layers(state_dict, _BLOCK_KEY),
        qkv_bias="blocks.0.attn.qkv.bias" in state_dict,
        temporal_depth=_count_layers(state_dict, _TEMPORAL_KEY),
        temporal_ff=state_dict["aggregate.transformer_enc.layers.0.linear1.weight"].shape[0],
    )


def load_checkpoint(path: str | Path, model_name: str | None = None) -> Stam:
    """A STAM model in eval mode with the checkpoint's weights loaded strictly."""
    return load_checkpoint_with_labels(path, model_name)[0]


def load_checkpoint_with_labels(path: str | Path, model_name: str | None = None) -> tuple[Stam, list[str] | None]:
    """The model of `load_checkpoint` and the class names stored with it (None for official files).

    The config is the one stored by `save_checkpoint` when present (head counts cannot be read off
    the weights), else inferred from the tensors, as for the official files.
    """
    state_dict, stored, labels = read_checkpoint(path)
    try:
        config = StamConfig(**stored) if stored and model_name is None else infer_config(state_dict, model_name)
    except ArtifactError as error:
        raise ArtifactError(f"{path}: {error}") from None
    model = Stam(config)
    problems = state_dict_problems(model, state_dict)
    if problems:
        raise ArtifactError(f"{path}: does not fit {config.name}: {problems}")
    model.load_state_dict(state_dict, strict=True)
    return model.eval(), labels


def save_checkpoint(model: Stam, path: str | Path, labels: Sequence[str] | None = None) -> Path:
    """The official layout (`{"model": state_dict}`, so files we write load wherever the official ones
    do) plus the config, so that variants with other widths or head counts load exactly, and the
    class names, so that an export of it carries them without a separate labels file."""
    path = Path(path)
    data: dict = {"model": model.state_dict(), _CONFIG_KEY: asdict(model.config)}
    if labels is not None:
        if len(labels) != model.config.num_classes:
            raise ArtifactError(f"{len(labels)} labels for a model with {model.config.num_classes} classes")
        data[_LABELS_KEY] = list(labels)
    torch.save(data, path)
    return path


def state_dict_problems(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor]) -> str:
    """Missing, unexpected and mis-shaped keys in one line; empty when the state dict fits."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    misshaped = [
        f"{key} {tuple(state_dict[key].shape)} vs {tuple(expected[key].shape)}"
        for key in sorted(set(expected) & set(state_dict))
        if state_dict[key].shape != expected[key].shape
    ]
    parts = [
        f"{label} ({len(keys)}): {_abbreviate(keys)}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped))
        if keys
    ]
    return "; ".join(parts)


def _base_config(embed_dim: int, model_name: str | None) -> StamConfig:
    if model_name is not None:
        if model_name not in VARIANTS:
            raise ArtifactError(f"unknown model {model_name!r}; choose one of {', '.join(sorted(VARIANTS))}")
        return VARIANTS[model_name]
    for config in VARIANTS.values():
        if config.embed_dim == embed_dim:
            return config
    raise ArtifactError(f"no STAM variant has embedding width {embed_dim} (name one with --model)")


def _count_layers(state_dict: Mapping[str, torch.Tensor], pattern: re.Pattern) -> int:
    indices = {int(match.group(1)) for key in state_dict if (match := pattern.match(key))}
    return max(indices) + 1 if indices else 0


def _abbreviate(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... {len(keys) - limit} more" if len(keys) > limit else "")
