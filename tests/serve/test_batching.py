"""Per-request isolation inside one Triton batch (serve.batching), without a server."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.contract import DimRange
from runtime.errors import ShapeError, VideoError
from serve.batching import check_frames, group_by_frames, one_line, run_grouped


def clip(batch: int, frames: int, value: float) -> np.ndarray:
    return np.full((batch, frames, 3, 224, 224), value, dtype=np.float32)


def fake_logits(frames: np.ndarray) -> np.ndarray:
    """Row i's logits carry its pixel value and its batch's size, so splits and merges are visible."""
    values = frames[:, 0, 0, 0, 0]
    return np.stack([values, np.full_like(values, frames.shape[0])], axis=1)


def test_failures_stay_with_their_request_and_equal_shapes_batch_together():
    bad = VideoError("video: not a readable video")
    items = [clip(1, 8, 1.0), bad, clip(2, 8, 2.0), clip(1, 4, 3.0)]
    calls: list[tuple[int, ...]] = []

    def run(frames):
        calls.append(frames.shape[:2])
        return fake_logits(frames)

    outcomes = run_grouped(items, run, max_batch=8)
    assert outcomes[1] is bad
    np.testing.assert_array_equal(outcomes[0], [[1.0, 3.0]])
    np.testing.assert_array_equal(outcomes[2], [[2.0, 3.0], [2.0, 3.0]])
    np.testing.assert_array_equal(outcomes[3], [[3.0, 1.0]])
    assert sorted(calls) == [(1, 4), (3, 8)]


def test_batches_never_exceed_max_batch():
    items = [clip(1, 8, float(i)) for i in range(5)]
    sizes: list[int] = []
    run_grouped(items, lambda frames: sizes.append(frames.shape[0]) or fake_logits(frames), max_batch=2)
    assert sizes == [2, 2, 1]


def test_a_failing_batch_fails_only_its_own_requests():
    items = [clip(1, 8, 1.0), clip(1, 16, 2.0)]

    def run(frames):
        if frames.shape[1] == 16:
            raise RuntimeError("engine lost\nsecond line")
        return fake_logits(frames)

    outcomes = run_grouped(items, run, max_batch=8)
    np.testing.assert_array_equal(outcomes[0], [[1.0, 1.0]])
    assert one_line(outcomes[1]) == "RuntimeError: engine lost"


def test_group_by_frames_skips_failures():
    assert group_by_frames([clip(1, 8, 0), ValueError(), clip(1, 4, 0), clip(3, 8, 0)]) == {8: [0, 3], 4: [2]}


@pytest.mark.parametrize(
    "frames, message",
    [
        (clip(1, 0, 0), "frames=0 is outside the model's range 1..16"),
        (clip(1, 17, 0), "frames=17 is outside the model's range 1..16"),
        (np.zeros((1, 8, 3, 224, 224), np.float64), "frames must be float32, got float64"),
        (np.zeros((1, 8, 3, 224, 225), np.float32), "frames must have shape (batch, frames, 3, 224, 224)"),
    ],
)
def test_check_frames_names_what_is_wrong(frames, message):
    with pytest.raises(ShapeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_frames(frames, DimRange(1, 8, 16))
