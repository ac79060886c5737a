"""A refused video's decoder is released when the refusal is kept as a value, without the garbage collector.

A kept exception keeps its traceback's frames, and with them the decoder, its threads and its frame
buffers: in a long-lived process (a server, a batch actor) memory then grows with every refused video
until a collection happens to run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.hostile_video import size_switch
from runtime.batching import prefetch
from runtime.clips import load_clip
from runtime.errors import StamError, detached
from tests.decoders import SWITCH, SWITCH_LIMITS, TASKS, decoder_threads, no_collector

pytestmark = pytest.mark.skipif(not TASKS.is_dir(), reason="thread names are read from /proc")


@pytest.fixture(scope="module")
def switching_video(tmp_path_factory) -> Path:
    return size_switch(tmp_path_factory.mktemp("switch"), SWITCH)


def load(video: Path):
    return load_clip(video, 8, decoders=1, limits=SWITCH_LIMITS)


def refused(video: Path) -> StamError:
    """The refusal, kept the way a caller that reports it later keeps it."""
    try:
        load(video)
    except StamError as error:
        return detached(error)
    raise AssertionError(f"{video} was not refused")


def test_a_kept_refusal_holds_no_decoder(switching_video):
    with no_collector():
        before = decoder_threads()
        kept = [refused(switching_video) for _ in range(3)]
        assert all("--max-pixels" in str(error) for error in kept)
        assert decoder_threads() == before


def test_prefetch_keeps_refusals_without_their_decoders(switching_video):
    with no_collector():
        before = decoder_threads()
        results = [result for _, result in prefetch(load, [switching_video] * 3, workers=1, window=2)]
        assert all(isinstance(result, StamError) for result in results)
        assert decoder_threads() == before
