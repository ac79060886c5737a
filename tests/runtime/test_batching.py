"""Ordered prefetch on worker threads and batch assembly: order kept, errors isolated, bugs propagate."""

from __future__ import annotations

import time

import numpy as np
import pytest

from runtime.batching import in_order, pad_batch, prefetch
from runtime.errors import VideoError


def test_prefetch_keeps_order_and_isolates_errors():
    def load(item: int) -> int:
        time.sleep(0.01 * (5 - item))  # later items finish first
        if item == 2:
            raise VideoError("bad 2")
        return item * 10

    results = list(prefetch(load, range(5), workers=3, window=4))
    assert [item for item, _ in results] == [0, 1, 2, 3, 4]
    assert [r if isinstance(r, int) else str(r) for _, r in results] == [0, 10, "bad 2", 30, 40]


def test_prefetch_propagates_bugs():
    def load(item: int) -> int:
        raise KeyError(item)

    with pytest.raises(KeyError):
        list(prefetch(load, range(3), workers=2, window=2))


def test_in_order_and_pad_batch():
    assert list(in_order([(2, "c"), (0, "a"), (3, "d"), (1, "b")])) == ["a", "b", "c", "d"]
    arrays = [np.full((2,), 1.0), np.full((2,), 2.0)]
    np.testing.assert_array_equal(pad_batch(arrays, 4), [[1, 1], [2, 2], [2, 2], [2, 2]])
    assert pad_batch(arrays, 1).shape == (2, 2)
