"""The one clip loader: a video in, the model's input for it out, with notes on how it was sampled.

Every caller (the CLI, the accuracy tool, calibration, the benchmarks, batch jobs, the server)
decodes through `load_clip`, so a model sees the same pixels wherever it runs. Notes come back as
values, not warnings, because callers decode on worker threads, where `warnings.catch_warnings`
is not safe.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from time import perf_counter

import numpy as np
from numpy.typing import NDArray

from runtime.decode import read_clip
from runtime.errors import VideoError
from runtime.limits import CLI_LIMITS, Limits
from runtime.preprocess import preprocess


def load_clip(
    path: str | Path,
    num_frames: int,
    mode: str = "uniform",
    *,
    threads: str = "AUTO",
    decoders: int | None = None,
    on_stage: Callable[[str, float], None] | None = None,
    limits: Limits = CLI_LIMITS,
) -> tuple[NDArray[np.float32], list[str]]:
    """(T, 3, 224, 224) float32 pixels, and why the frames differ from `mode` (e.g. a short video).

    `decoders` is how many decoders seek a long video side by side (runtime.decode.read_clip).
    `limits` bounds what one video may cost (runtime.limits): the server and batch jobs pass stricter ones.
    `on_stage` receives the seconds spent decoding and preprocessing (the pipeline benchmark's hook).
    """
    if Path(path).is_dir():
        raise VideoError(f"{path}: no video files in this directory")
    started = perf_counter()
    clip = read_clip(path, num_frames, mode=mode, threads=threads, decoders=decoders, limits=limits)
    decoded = perf_counter()
    pixels = preprocess(clip.frames)
    if on_stage is not None:
        on_stage("decode", decoded - started)
        on_stage("preprocess", perf_counter() - decoded)
    return pixels, list(clip.notes)
