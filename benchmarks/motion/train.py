"""`python -m benchmarks.motion.train`: the shipped motion model, trained on the CPU in minutes.

Why two stages: a ViT trained from scratch on a few hundred clips sits on a plateau for hundreds of
steps (at init its class token attends uniformly, and a mean over tokens does not say where the
object is), which on a CPU is most of the budget. The generator knows the object's state in every
frame, so:
1. spatial: single frames; the class token regresses the object's state (x, y, log radius and the
   direction of its hand) through a linear head that is thrown away afterwards;
2. temporal: the aggregator and head alone, on per-frame embeddings computed once (the spatial part
   works frame by frame, so a reversed clip is a reversed sequence): thousands of steps in seconds,
   which the temporal attention needs to learn to use frame order;
3. the whole STAM on T-frame clips, at a low rate: cross-entropy plus the per-frame loss.
Clips come through the runtime's own `read_clip` + `preprocess`, so training sees exactly what
inference sees. Augmentation: time reversal and left-right flips, with labels and states mapped.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.motion import SHIPPED_CHECKPOINT, TRAIN_SEED
from benchmarks.motion.generate import CLASSES, MIRRORED_X, REVERSED, VideoSpec, generate, plan_dataset, spec_motion
from export.checkpoint import save_checkpoint
from export.model import Stam, create_model
from runtime.decode import read_clip
from runtime.preprocess import crop_box, preprocess, resized_size

# stam_tiny's structure; 32-pixel patches make a step four times cheaper than 16 on a CPU.
MODEL_OVERRIDES = dict(patch_size=32, embed_dim=96, mlp_hidden=384, temporal_ff=192)
STATE_SIZE = 5  # x, y, log radius, cos and sin of the hand's angle


@dataclass(frozen=True)
class TrainConfig:
    frames: int = 8
    spatial_steps: int = 3000
    spatial_batch: int = 64
    spatial_lr: float = 3e-3
    temporal_steps: int = 2000
    temporal_batch: int = 64
    temporal_lr: float = 1e-3
    clip_steps: int = 800
    clip_batch: int = 16
    clip_lr: float = 3e-4
    state_weight: float = 1.0
    seed: int = 0


@dataclass
class MotionData:
    """Decoded training clips (N, T, 3, 224, 224) uint8, per-frame states (N, T, 5), labels (N,)."""

    clips: torch.Tensor
    states: torch.Tensor
    labels: torch.Tensor


def frame_states(spec: VideoSpec, indices: Sequence[int]) -> list[list[float]]:
    """The object's state in each sampled frame, in the coordinates of the 224x224 crop."""
    motion = spec_motion(spec)
    height, width = resized_size(spec.height, spec.width)
    top, left = crop_box(height, width)
    scale_x, scale_y = width / spec.width, height / spec.height
    states = []
    for index in indices:
        x, y, radius, angle = motion.at(index / (spec.num_frames - 1))
        states.append(
            [
                (x * scale_x - left) / 112 - 1,
                (y * scale_y - top) / 112 - 1,
                math.log(radius * scale_y / 224) + 1.5,
                math.cos(angle),
                math.sin(angle),
            ]
        )
    return states


def load_data(root: Path, specs: Sequence[VideoSpec], frames: int, workers: int = 2) -> MotionData:
    def load(spec: VideoSpec) -> tuple[np.ndarray, list[list[float]]]:
        clip = read_clip(root / spec.label / spec.name, frames)
        return np.rint(preprocess(clip.frames) * 255).astype(np.uint8), frame_states(spec, clip.indices)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        loaded = list(pool.map(load, specs))
    return MotionData(
        clips=torch.from_numpy(np.stack([clip for clip, _ in loaded])),
        states=torch.tensor([states for _, states in loaded], dtype=torch.float32),
        labels=torch.tensor([CLASSES.index(spec.label) for spec in specs]),
    )


def augment(clips: torch.Tensor, states: torch.Tensor, labels: torch.Tensor, generator: torch.Generator):
    """Random time reversal and left-right flips, per clip, with labels and states following."""
    clips, states, labels = clips.clone(), states.clone(), labels.clone()
    reverse = torch.rand(len(labels), generator=generator) < 0.5
    flip = torch.rand(len(labels), generator=generator) < 0.5
    clips[reverse], states[reverse] = clips[reverse].flip(1), states[reverse].flip(1)
    labels[reverse] = _label_map(REVERSED)[labels[reverse]]
    clips[flip] = clips[flip].flip(-1)
    states[flip, :, 0] *= -1  # x mirrors
    states[flip, :, 3] *= -1  # the hand's horizontal component mirrors
    labels[flip] = _label_map(MIRRORED_X)[labels[flip]]
    return clips, states, labels


def flip_frames(images: torch.Tensor, states: torch.Tensor, generator: torch.Generator):
    """Single frames (N, 3, H, W) flipped left-right at random, with their states."""
    images, states = images.clone(), states.clone()
    flip = torch.rand(len(images), generator=generator) < 0.5
    images[flip] = images[flip].flip(-1)
    states[flip, 0] *= -1
    states[flip, 3] *= -1
    return images, states


def init_for_training(model: Stam) -> None:
    """Xavier-uniform linear layers: from the official 0.02 init the spatial loss sat on its plateau
    for over 800 steps; from this one it leaves it after about 600."""
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.xavier_uniform_(module.weight)


def _label_map(mapping: dict[str, str]) -> torch.Tensor:
    return torch.tensor([CLASSES.index(mapping[name]) for name in CLASSES])


def train(data: MotionData, config: TrainConfig, log: Callable[[str], None] = print) -> Stam:
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = create_model("stam_tiny", num_classes=len(CLASSES), frames_trained=config.frames, **MODEL_OVERRIDES)
    init_for_training(model)
    state_head = torch.nn.Linear(model.config.embed_dim, STATE_SIZE)
    params = [*model.parameters(), *state_head.parameters()]
    model.train()

    def spatial_step(step: int) -> str:
        pick = torch.randint(0, len(data.labels), (config.spatial_batch,), generator=generator)
        frame = torch.randint(0, config.frames, (config.spatial_batch,), generator=generator)
        images, states = flip_frames(data.clips[pick, frame], data.states[pick, frame], generator)
        loss = F.mse_loss(state_head(model.forward_features(images[:, None].float() / 255)[:, 0]), states)
        return _update(loss, params, optimizers["spatial"])

    def clip_step(step: int) -> str:
        pick = torch.randint(0, len(data.labels), (config.clip_batch,), generator=generator)
        clips, states, labels = augment(data.clips[pick], data.states[pick], data.labels[pick], generator)
        embeddings = model.forward_features(clips.float() / 255)  # (B, T, D)
        logits = model.forward_head(embeddings)
        loss = F.cross_entropy(logits, labels) + config.state_weight * F.mse_loss(state_head(embeddings), states)
        accuracy = (logits.argmax(1) == labels).float().mean().item()
        return _update(loss, params, optimizers["clip"]) + f" batch acc {accuracy:.2f}"

    def temporal_step(step: int) -> str:
        pick = torch.randint(0, len(data.labels), (config.temporal_batch,), generator=generator)
        flipped = torch.randint(0, 2, (config.temporal_batch,), generator=generator)
        embeddings, labels = cached[flipped, pick], cached_labels[flipped, pick]
        reverse = torch.rand(len(pick), generator=generator) < 0.5
        embeddings[reverse], labels[reverse] = embeddings[reverse].flip(1), _label_map(REVERSED)[labels[reverse]]
        logits = model.forward_head(embeddings)
        accuracy = (logits.argmax(1) == labels).float().mean().item()
        return (
            _update(F.cross_entropy(logits, labels), temporal_params, optimizers["temporal"])
            + f" batch acc {accuracy:.2f}"
        )

    temporal_params = [*model.aggregate.parameters(), *model.head.parameters()]
    optimizers = {
        "spatial": _optimizer(params, config.spatial_lr, config.spatial_steps),
        "temporal": _optimizer(temporal_params, config.temporal_lr, config.temporal_steps),
        "clip": _optimizer(params, config.clip_lr, config.clip_steps),
    }
    cached = cached_labels = None
    for stage, steps, step_fn in (
        ("spatial", config.spatial_steps, spatial_step),
        ("temporal", config.temporal_steps, temporal_step),
        ("clips", config.clip_steps, clip_step),
    ):
        if stage == "temporal":
            cached, cached_labels = embed_clips(model, data)
        started = time.perf_counter()
        for step in range(steps):
            message = step_fn(step)
            if step % 100 == 0 or step == steps - 1:
                log(f"{stage} step {step + 1}/{steps}: {message} ({time.perf_counter() - started:.0f} s)")
    return model.eval()


def embed_clips(model: Stam, data: MotionData, chunk: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame embeddings (2, N, T, D) of every clip as is and flipped left-right, and their labels."""
    model.eval()
    with torch.no_grad():
        embeddings = torch.stack(
            [
                torch.cat(
                    [
                        model.forward_features(transform(data.clips[i : i + chunk]).float() / 255)
                        for i in range(0, len(data.labels), chunk)
                    ]
                )
                for transform in (lambda clips: clips, lambda clips: clips.flip(-1))
            ]
        )
    model.train()
    return embeddings, torch.stack([data.labels, _label_map(MIRRORED_X)[data.labels]])


def _optimizer(params, lr: float, steps: int):
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    return optimizer, torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)


def _update(loss: torch.Tensor, params, optimizer_and_schedule) -> str:
    optimizer, schedule = optimizer_and_schedule
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    schedule.step()
    return f"loss {loss.item():.4f}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.motion.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("artifacts/motion_train"),
        help="where the training videos are generated (reused when present)",
    )
    parser.add_argument("--per-class", type=int, default=120, help="training videos per class (default 120)")
    parser.add_argument("--out", type=Path, default=SHIPPED_CHECKPOINT, help="checkpoint to write")
    parser.add_argument("--spatial-steps", type=int, default=TrainConfig.spatial_steps)
    parser.add_argument("--temporal-steps", type=int, default=TrainConfig.temporal_steps)
    parser.add_argument("--clip-steps", type=int, default=TrainConfig.clip_steps)
    parser.add_argument("--seed", type=int, default=TrainConfig.seed, help="model init and augmentation seed")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    started = time.perf_counter()
    specs = plan_dataset(args.per_class, TRAIN_SEED)
    if not all((args.data / spec.label / spec.name).is_file() for spec in specs):
        generate(args.data, args.per_class, TRAIN_SEED)
    config = TrainConfig(
        spatial_steps=args.spatial_steps, temporal_steps=args.temporal_steps, clip_steps=args.clip_steps, seed=args.seed
    )
    data = load_data(args.data, specs, config.frames)
    print(f"{len(specs)} training videos decoded in {time.perf_counter() - started:.0f} s", flush=True)
    model = train(data, config, log=lambda line: print(line, flush=True))
    save_checkpoint(model, args.out, labels=list(CLASSES))
    size_mb = args.out.stat().st_size / 1e6
    print(f"wrote {args.out} ({size_mb:.1f} MB) after {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
