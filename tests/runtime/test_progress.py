"""Progress bars: shown on a terminal for enough items, never in pipes and logs."""

from __future__ import annotations

import io
import sys

import pytest

from runtime.progress import MIN_ITEMS, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("stream", "total", "enabled", "shown"),
    [
        (Terminal, 10, True, True),
        (io.StringIO, 10, True, False),  # a pipe or a log file
        (Terminal, MIN_ITEMS - 1, True, False),  # done before a bar tells anything
        (Terminal, 10, False, False),  # --quiet
        (Terminal, None, True, True),  # unknown length
    ],
)
def test_bar_shows_only_on_a_terminal(monkeypatch, stream, total, enabled, shown):
    target = stream()
    monkeypatch.setattr(sys, "stderr", target)
    with progress_bar(total, unit="video", enabled=enabled) as bar:
        for _ in range(3):
            bar.update()
    assert bool(target.getvalue()) == shown
    assert ("\r" in target.getvalue()) == shown


def test_bar_wraps_an_iterable(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert list(progress_bar(3, unit="clip", iterable=iter([1, 2, 3]))) == [1, 2, 3]
