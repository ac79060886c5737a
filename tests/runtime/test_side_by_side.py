"""runtime.decode.side_by_side: stretches shared among decoders, each decoder opened and closed once, first error raised.

The decoders meet on barriers and events, not sleeps: what each test asserts does not depend on thread
start-up order. The pixels of seeking side by side against decoding everything are in test_seek.py.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from types import SimpleNamespace

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


def _decode_meeting(log: list[tuple[str, int]], decoders: int):
    """A unit's images are its number. Each decoder's first unit waits until `decoders` decoders have
    each started one, so the units are spread over all of them whatever the thread start-up order
    (the barrier's timeout only turns a decoder that never starts into a failure instead of a hang)."""
    barrier = threading.Barrier(decoders, timeout=60)
    started: set[str] = set()
    lock = threading.Lock()

    def decode(decoder, unit: int) -> dict[int, np.ndarray]:
        with lock:
            first = decoder[0] not in started
            started.add(decoder[0])
        if first:
            barrier.wait()
        with lock:
            log.append((decoder[0], unit))
        return {unit: np.full(2, unit)}

    return decode


def _decode_at_once(log: list[tuple[str, int]]):
    def decode(decoder, unit: int) -> dict[int, np.ndarray]:
        log.append((decoder[0], unit))
        return {unit: np.full(2, unit)}

    return decode


@pytest.mark.parametrize("decoders", [1, 2, 3, 8])
def test_every_unit_once_whatever_the_decoder_count(decoders):
    opener, log = Opener(), []
    used = min(decoders, 6)
    images = decode_side_by_side(list(range(6)), _decode_meeting(log, used), ("caller", None), opener, decoders)
    assert sorted(images) == list(range(6)) and all((images[u] == u).all() for u in range(6))
    assert sorted(unit for _, unit in log) == list(range(6))
    assert len(opener.opened) == used - 1 and sorted(opener.closed) == sorted(opener.opened)
    assert {name for name, _ in log} == {"caller", *opener.opened}  # every decoder took a unit


def test_without_reopen_or_with_one_unit_the_callers_decoder_does_all():
    log = []
    decode_side_by_side([0, 1], _decode_at_once(log), ("caller", None), None, 4)
    opener = Opener()
    decode_side_by_side([7], _decode_at_once(log), ("caller", None), opener, 4)
    assert {name for name, _ in log} == {"caller"} and opener.opened == []


class RecordedEvent(threading.Event):
    """side_by_side's failure flag, with a way for the test to wait until it is set."""

    set_once = threading.Event()

    def set(self) -> None:
        super().set()
        RecordedEvent.set_once.set()


def test_the_first_failure_is_raised_and_stops_the_other_decoders(monkeypatch):
    """Unit 0 is held until the failure of unit 1 (on the other decoder) is recorded: its decoder then
    finishes unit 0 and takes no other unit of the 40."""
    monkeypatch.setattr(side_by_side, "threading", SimpleNamespace(Event=RecordedEvent))
    RecordedEvent.set_once = threading.Event()
    opener, log = Opener(), []

    def decode(decoder, unit):
        if unit == 1:
            raise SeekUnreliable("frame 1 did not decode after seeking")
        assert RecordedEvent.set_once.wait(timeout=60), "the failure was never recorded"
        log.append(unit)
        return {unit: np.zeros(1)}

    with pytest.raises(SeekUnreliable, match="frame 1 did not"):
        decode_side_by_side(list(range(40)), decode, ("caller", None), opener, 2)
    assert log == [0]  # the other decoder stopped after its unit, not after all 40
    assert sorted(opener.closed) == sorted(opener.opened) == ["reopened-0"]


def test_a_file_that_cannot_be_reopened_is_raised():
    @contextmanager
    def reopen():
        raise OSError("gone")
        yield  # pragma: no cover

    with pytest.raises(OSError, match="gone"):
        decode_side_by_side([0, 1, 2], _decode_at_once([]), ("caller", None), reopen, 2)


@pytest.mark.parametrize("cpus, videos, expected", [(2, 1, 2), (16, 1, MAX_DECODERS), (16, 4, 4), (2, 4, 1), (1, 1, 1)])
def test_decoders_share_the_cpus_among_videos_in_flight(monkeypatch, cpus, videos, expected):
    monkeypatch.setattr(side_by_side, "usable_cpus", lambda: cpus)
    assert decoders_per_video(videos) == expected
