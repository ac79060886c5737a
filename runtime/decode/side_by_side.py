"""Decoding one video's independent stretches side by side: one container and decoder per thread.

Stretches that start at different keyframes share no decoder state, and PyAV releases the GIL while
FFmpeg decodes, so on idle cores the T targets of a long video cost about one thread's share of the
stretches instead of their sum: a target in a 10 s GOP needs about half a GOP of reference pictures,
and sixteen such targets are sixteen independent chains. A container cannot be sought from two
threads at once, so every thread but the caller's opens the file again (an hour of mp4 opens in
about 40 ms). The pixels do not depend on which thread decoded a stretch: each starts at a keyframe
with an empty decoder.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from runtime.cpu import usable_cpus
from runtime.decode.container import Decoder

Reopen = Callable[[], AbstractContextManager[Decoder]]
Images = dict[int, npt.NDArray[np.uint8]]  # frame rank -> upright RGB (H, W, 3) uint8
Unit = TypeVar("Unit")

# More decoders than this gain little on one video: its stretches are few (T at most) and short.
MAX_DECODERS = 8


def decoders_per_video(videos_in_flight: int = 1) -> int:
    """Decoders for each of `videos_in_flight` videos decoded at once: this process's CPUs shared
    among them, at least 1 and at most MAX_DECODERS (more threads than cores only add switching)."""
    return max(1, min(MAX_DECODERS, usable_cpus() // max(1, videos_in_flight)))


def decode_side_by_side(
    units: Sequence[Unit],
    decode: Callable[[Decoder, Unit], Images],
    decoder: Decoder,
    reopen: Reopen | None,
    decoders: int,
) -> Images:
    """The images of every unit (a stretch or a window), `decode`d on up to `decoders` decoders.

    The caller's `decoder` takes units on the calling thread; the others are opened by `reopen` on
    worker threads. Each decoder takes the next unit when it is free, so a long stretch does not hold
    up the rest. The first exception stops the other decoders after their current unit and is raised;
    a decode deadline shared by the decoders (runtime.decode.loop.Guard) stops every one of them
    on its next packet.
    """
    count = max(1, min(decoders, len(units)))
    if reopen is None or count == 1:
        images: Images = {}
        for unit in units:
            images.update(decode(decoder, unit))
        return images
    pending: queue.SimpleQueue[Unit] = queue.SimpleQueue()
    for unit in units:
        pending.put(unit)
    failed = threading.Event()

    def drain(own: Decoder) -> Images:
        found: Images = {}
        while not failed.is_set():
            try:
                unit = pending.get_nowait()
            except queue.Empty:
                break
            try:
                found.update(decode(own, unit))
            except BaseException:
                failed.set()
                raise
        return found

    def drain_reopened(opener: Reopen) -> Images:
        with opener() as own:
            return drain(own)

    with ThreadPoolExecutor(max_workers=count - 1, thread_name_prefix="seek") as pool:
        others = [pool.submit(drain_reopened, reopen) for _ in range(count - 1)]
        images = drain(decoder)
        for other in others:
            images.update(other.result())
    return images
