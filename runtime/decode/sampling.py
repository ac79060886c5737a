"""Which frames to take: T indices out of a video's N frames, in the `uniform` and `reference` modes.

docs/architecture.md, "Sampling and preprocessing", states the two modes and why they are what the
reference evaluation used.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

SAMPLING_MODES = ("uniform", "reference")
REFERENCE_SECONDS = 10  # the reference samples T frames at T/10 fps: the first 10 s of each video


class SamplingWarning(UserWarning):
    """The frames were sampled differently from what the mode asks (short or damaged video)."""


@dataclass(frozen=True)
class Sampling:
    """Frame indices to take, and why they differ from the requested mode when they do."""

    indices: list[int]
    notes: list[str] = field(default_factory=list)


def plan_sampling(num_video_frames: int, num_frames: int, mode: str = "uniform", fps: float | None = None) -> Sampling:
    """The indices of `sample_indices`, plus a note when `reference` falls back to `uniform`."""
    if num_video_frames < 1 or num_frames < 1:
        raise ValueError(f"need at least one frame to sample from and to take, got {num_video_frames}, {num_frames}")
    if mode == "uniform":
        return Sampling(uniform_indices(num_video_frames, num_frames))
    if mode != "reference":
        raise ValueError(f"sampling mode must be one of {', '.join(SAMPLING_MODES)}, got {mode!r}")
    if fps is None or not fps > 0:
        raise ValueError(f"reference sampling needs the video's frame rate, got fps={fps}")
    indices = _reference_indices(num_video_frames, num_frames, fps)
    if indices is not None:
        return Sampling(indices)
    note = (
        f"shorter than the reference's {REFERENCE_SECONDS} s ({num_video_frames} frames at {fps:.4g} fps; "
        "torchvision would drop it): sampled uniformly over the whole video"
    )
    return Sampling(uniform_indices(num_video_frames, num_frames), [note])


def plan_for_file(num_video_frames: int, num_frames: int, mode: str, fps: float | None) -> Sampling:
    """`plan_sampling` for a file whose rate may be unknown: `reference` then falls back to `uniform`, with a note."""
    if mode == "reference" and fps is None:
        note = "frame rate unknown: sampled uniformly over the whole video"
        return Sampling(uniform_indices(num_video_frames, num_frames), [note])
    return plan_sampling(num_video_frames, num_frames, mode, fps)


def sample_indices(
    num_video_frames: int, num_frames: int, mode: str = "uniform", fps: float | None = None
) -> list[int]:
    """Indices of the `num_frames` frames to take from a video of `num_video_frames` frames.

    `uniform`: floor(i * N / T), spread over the whole video (short videos repeat frames).
    `reference`: torchvision VideoClips' first clip when resampling to T/10 fps, in its float32
    arithmetic; a video too short for that clip falls back to `uniform` with a SamplingWarning.
    """
    sampling = plan_sampling(num_video_frames, num_frames, mode, fps)
    for note in sampling.notes:
        warnings.warn(note, SamplingWarning, stacklevel=2)
    return sampling.indices


def repeat_notes(indices: list[int]) -> list[str]:
    """Say when the video had fewer frames than the model takes, so some were used more than once."""
    distinct = len(set(indices))
    if distinct == len(indices):
        return []
    return [f"frames repeated: {distinct} distinct of {len(indices)} frames"]


def uniform_indices(num_video_frames: int, num_frames: int) -> list[int]:
    return [i * num_video_frames // num_frames for i in range(num_frames)]


def _reference_indices(num_video_frames: int, num_frames: int, fps: float) -> list[int] | None:
    """torchvision's `_resample_video_idx` + first clip of `compute_clips_for_video`; None when it has no clip."""
    frame_rate = num_frames / REFERENCE_SECONDS
    step = float(fps) / frame_rate
    if step.is_integer():  # torchvision slices every step-th frame of the whole video
        stride = int(step)
        if len(range(0, num_video_frames, stride)) < num_frames:
            return None
        return [i * stride for i in range(num_frames)]
    resampled = int(math.floor(num_video_frames * (float(frame_rate) / fps)))
    if resampled < num_frames:
        return None
    positions = np.arange(num_frames, dtype=np.float32) * np.float32(step)  # float32 product, as torch does
    indices: list[int] = np.floor(positions).astype(np.int64).tolist()
    return indices
