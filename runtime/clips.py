"""The model's input for one video: decoded, sampled and preprocessed, with notes on how it was sampled.

Notes come back as values, not warnings, because callers decode on worker threads, where
`warnings.catch_warnings` is not safe.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.preprocess import preprocess
from runtime.video import read_clip


def load_clip(path: str | Path, num_frames: int, mode: str = "uniform") -> tuple[np.ndarray, list[str]]:
    """(T, 3, 224, 224) float32 pixels, and why the frames differ from `mode` (e.g. a short video)."""
    clip = read_clip(path, num_frames, mode=mode)
    return preprocess(clip.frames), clip.notes
