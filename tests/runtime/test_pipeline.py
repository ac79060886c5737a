"""`runtime.pipeline.run_clips`, the one decode -> batch -> run loop: order, errors, padding, hooks."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from runtime.contract import DimRange
from runtime.errors import VideoError
from runtime.pipeline import read_ahead, run_clips, run_in_memory


class SumModel:
    """Logits = per-clip sums of each channel; records every batch shape it ran."""

    def __init__(self, batch_range: DimRange | None = None):
        self.batch_range = batch_range
        self.batches: list[tuple[int, ...]] = []

    def run(self, frames: np.ndarray) -> np.ndarray:
        self.batches.append(frames.shape)
        return frames.sum(axis=(1, 3, 4))


def clip(value: float, frames: int = 2) -> np.ndarray:
    pixels = np.zeros((frames, 3, 4, 4), np.float32)
    pixels[:, 0] = value
    return pixels


def load(item: int) -> tuple[np.ndarray, list[str]]:
    time.sleep(0.002 * (7 - item))  # later items decode faster: results must still come in input order
    if item == 3:
        raise VideoError("3: not a readable video")
    return clip(item), [f"note {item}"] if item == 5 else []


def test_outcomes_come_in_input_order_with_errors_in_place():
    model = SumModel()
    outcomes = list(run_clips(model, range(7), load, batch_size=2, workers=3))
    assert [o.item for o in outcomes] == list(range(7))
    assert str(outcomes[3].error) == "3: not a readable video" and outcomes[3].logits is None
    for o in outcomes:
        if o.item != 3:
            assert o.error is None and o.logits[0] == pytest.approx(o.item * 2 * 16)
    assert outcomes[5].notes == ["note 5"] and outcomes[4].notes == []
    assert [shape[0] for shape in model.batches] == [2, 2, 2]  # 6 good clips, full batches


def test_short_batches_are_padded_to_the_engine_minimum():
    model = SumModel(DimRange(4, 4, 8))
    outcomes = list(run_clips(model, [1, 2], load, batch_size=8, workers=1))
    assert model.batches == [(4, 2, 3, 4, 4)]
    assert [o.logits[0] for o in outcomes] == [pytest.approx(32.0), pytest.approx(64.0)]


def test_prepare_changes_clips_before_batching():
    reversed_order = lambda pixels: pixels[::-1]  # noqa: E731
    ramp = lambda item: (np.arange(2, dtype=np.float32)[:, None, None, None] * np.ones((2, 3, 4, 4), np.float32), [])  # noqa: E731

    class FirstFrame(SumModel):
        def run(self, frames):
            return frames[:, 0, :, 0, 0]

    (outcome,) = run_clips(FirstFrame(), [0], ramp, batch_size=1, workers=1, prepare=reversed_order)
    assert outcome.logits.tolist() == [1.0, 1.0, 1.0]


def test_stage_hook_sees_every_batch_from_the_loop_thread():
    seen: list[tuple[str, str]] = []
    hook = lambda stage, seconds: seen.append((stage, threading.current_thread().name)) if seconds >= 0 else None  # noqa: E731
    list(run_clips(SumModel(), [0, 1, 2], load, batch_size=2, workers=2, on_stage=hook))
    assert [stage for stage, _ in seen] == ["copy", "inference", "copy", "inference"]
    assert {thread for _, thread in seen} == {threading.current_thread().name}


def test_bugs_in_loading_propagate():
    def broken(item: int):
        raise KeyError(item)

    with pytest.raises(KeyError):
        list(run_clips(SumModel(), [0, 1], broken, batch_size=1, workers=1))


def test_in_memory_clips_use_the_same_batching():
    model = SumModel(DimRange(2, 2, 2))
    logits = run_in_memory(model, [clip(1.0), clip(2.0), clip(3.0)], batch_size=2)
    assert logits[:, 0].tolist() == [32.0, 64.0, 96.0]
    assert [shape[0] for shape in model.batches] == [2, 2]  # the third clip padded up to the minimum


def test_read_ahead_covers_two_batches_and_every_worker():
    assert read_ahead(batch_size=8, workers=4) == 20
