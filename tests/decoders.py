"""Whether FFmpeg decoders are still alive in this process, with only reference counting to free them.

FFmpeg names each decoder's frame threads `av:CODEC:...`, so a decoder still alive shows as threads
of that name. A size-switching stream refused by a pixel limit is the case that matters: its decoder
holds frames of the large size when the refusal is raised.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.hostile_video import Sizes
from runtime.limits import SERVER_LIMITS

TASKS = Path("/proc/self/task")
SWITCH = Sizes(huge_side=512, huge_frames=8, small=(64, 48))
SWITCH_LIMITS = SERVER_LIMITS.lifted(max_pixels=100_000)  # the 512x512 frames are over it, the 64x48 ones are not


def decoder_threads() -> int:
    """FFmpeg's decoder threads alive in this process."""
    count = 0
    for task in TASKS.iterdir():
        try:
            count += (task / "comm").read_text().startswith("av:")
        except OSError:
            continue  # the thread ended while we looked
    return count


@contextmanager
def no_collector() -> Iterator[None]:
    """Only reference counting frees anything inside; what was already garbage is collected first."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
