"""runtime.decode.side_by_side: stretches shared among decoders, each decoder opened and closed once, first error raised.

The pixels of seeking side by side against decoding everything, on real files, are in test_video.py.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import numpy as np
import pytest

from runtime.decode import side_by_side
from runtime.decode.side_by_side import MAX_DECODERS, decode_side_by_side, decoders_per_video
from runtime.decode.table import SeekUnreliable


class Opener:
    """Stand-in decoders (names, not containers), counting how many were opened and closed."""

    def __init__(self):
        self.opened: list[str] = []
        self.closed: list[str] = []
        self.lock = threading.Lock()

    @contextmanager
    def __call__(self):
        with self.lock:
            name = f"reopened-{len(self.opened)}"
            self.opened.append(name)
        try:
            yield (name, None)
        finally:
            with self.lock:
                self.closed.append(name)


def _decode_slowly(log: list[tuple[str, int]]):
    """A unit's images are its number; each takes long enough for a second decoder to take the next."""

    def decode(decoder, unit: int) -> dict[int, np.ndarray]:
        time.sleep(0.05)
        log.append((decoder[0], unit))
        return {unit: np.full(2, unit)}

    return decode


@pytest.mark.parametrize("decoders", [1, 2, 3, 8])
def test_every_unit_once_whatever_the_decoder_count(decoders):
    opener, log = Opener(), []
    images = decode_side_by_side(list(range(6)), _decode_slowly(log), ("caller", None), opener, decoders)
    assert sorted(images) == list(range(6)) and all((images[u] == u).all() for u in range(6))
    assert sorted(unit for _, unit in log) == list(range(6))
    assert len(opener.opened) == min(decoders, 6) - 1 and sorted(opener.closed) == sorted(opener.opened)
    if decoders > 1:  # units went to more than one decoder (which ones depends on thread start-up)
        assert len({name for name, _ in log}) >= 2


def test_without_reopen_or_with_one_unit_the_callers_decoder_does_all():
    log = []
    decode_side_by_side([0, 1], _decode_slowly(log), ("caller", None), None, 4)
    opener = Opener()
    decode_side_by_side([7], _decode_slowly(log), ("caller", None), opener, 4)
    assert {name for name, _ in log} == {"caller"} and opener.opened == []


def test_the_first_failure_is_raised_and_stops_the_other_decoders():
    opener, log = Opener(), []

    def decode(decoder, unit):
        time.sleep(0.05)
        if unit == 1:
            raise SeekUnreliable("frame 1 did not decode after seeking")
        log.append(unit)
        return {unit: np.zeros(1)}

    with pytest.raises(SeekUnreliable, match="frame 1 did not"):
        decode_side_by_side(list(range(40)), decode, ("caller", None), opener, 2)
    assert len(log) < 10  # the other decoder stopped after its unit, not after all 40
    assert sorted(opener.closed) == sorted(opener.opened) == ["reopened-0"]


def test_a_file_that_cannot_be_reopened_is_raised():
    @contextmanager
    def reopen():
        raise OSError("gone")
        yield  # pragma: no cover

    with pytest.raises(OSError, match="gone"):
        decode_side_by_side([0, 1, 2], _decode_slowly([]), ("caller", None), reopen, 2)


@pytest.mark.parametrize("cpus, videos, expected", [(2, 1, 2), (16, 1, MAX_DECODERS), (16, 4, 4), (2, 4, 1), (1, 1, 1)])
def test_decoders_share_the_cpus_among_videos_in_flight(monkeypatch, cpus, videos, expected):
    monkeypatch.setattr(side_by_side, "usable_cpus", lambda: cpus)
    assert decoders_per_video(videos) == expected
