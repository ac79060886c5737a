"""Limits enforced inside the decode package: small hostile files (a frame over a small pixel limit, a
size switch mid-stream, a duration over a small limit, a decode timeout of ~0 s) are refused with
LimitExceeded naming the flag, through read_clip, load_clip, FrameStream and Timeline; side-by-side
decoders share one deadline and all stop; videos within the limits decode exactly as before.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from runtime.clips import load_clip
from runtime.decode import FrameStream, read_clip, read_clip_without_seeking, sample_indices
from runtime.decode import container as container_module
from runtime.decode.container import MAX_DECODER_THREADS, opened
from runtime.decode.loop import Guard, upright_rgb
from runtime.decode.scan import scan
from runtime.decode.seek import DecoderPool, decode_ranks
from runtime.limits import Deadline, LimitExceeded, Limits
from runtime.timeline import Timeline, TimelineOptions
from tests.videos import decoded_codes, write_elementary_h264, write_video, x264_gop

SMALL = (64, 48)  # 3072 pixels


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("limits")
    first, second = write_video(root / "a.ts", 10, 32, 24), write_video(root / "b.ts", 10, 96, 64)
    switch = root / "switch.ts"  # declares 32x24 (768 pixels), turns 96x64 (6144) half way
    switch.write_bytes(first.read_bytes() + second.read_bytes())
    plain = write_video(root / "plain.mp4", 30, *SMALL, fps=10)  # 3 s
    return {
        "plain": plain,
        "switch": switch,
        "tall": write_video(root / "tall.mp4", 4, 16, 2048),  # an extreme aspect ratio, 32768 pixels
        "raw": write_elementary_h264(root / "raw.h264", plain),  # declares no duration: timed by count
        "gops": write_video(root / "gops.mp4", 240, *SMALL, codec_options=x264_gop(10)),
    }


class FakeWindowModel:
    """What Timeline calls on a model: features of zeros, one logit row per window."""

    embeds_once, batch_range, labels = True, None, ["a", "b"]

    def embed(self, frames: np.ndarray) -> np.ndarray:
        return np.zeros((len(frames), 4), np.float32)

    def classify(self, windows: np.ndarray) -> np.ndarray:
        return np.zeros((len(windows), 2), np.float32)


def _read_clip(path: Path, limits: Limits) -> object:
    return read_clip(path, 8, limits=limits)


def _load_clip(path: Path, limits: Limits) -> object:
    return load_clip(path, 8, limits=limits)


def _frame_stream(path: Path, limits: Limits) -> object:
    return list(FrameStream(str(path), 5.0, limits=limits))


def _timeline(path: Path, limits: Limits) -> object:
    options = TimelineOptions.resolve(4, fps=5.0)
    return list(Timeline(FakeWindowModel(), str(path), options, limits=limits))  # type: ignore[arg-type]


READERS = [_read_clip, _load_clip, _frame_stream, _timeline]
HOSTILE = {
    # name: (file, limits, flag, what the message says)
    "declared_pixels": ("plain", Limits(max_pixels=64 * 48 - 1), "--max-pixels", "declared stream of 64x48"),
    "size_switch": ("switch", Limits(max_pixels=1000), "--max-pixels", "frame of 96x64 = 6144 pixels"),
    "extreme_aspect": ("tall", Limits(max_pixels=16 * 1024), "--max-pixels", "16x2048 = 32768 pixels"),
    "declared_duration": ("plain", Limits(max_duration=1.0), "--max-duration", "declared duration of 3.0 s"),
    "reached_duration": ("raw", Limits(max_duration=0.5), "--max-duration", "media time reached"),
    "decode_timeout": ("plain", Limits(decode_timeout=1e-9), "--decode-timeout", "decoding took over 1e-09 s"),
}


@pytest.mark.parametrize("reader", READERS, ids=lambda reader: reader.__name__.strip("_"))
@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_videos_are_refused_naming_the_flag(files, case, reader):
    name, limits, flag, what = HOSTILE[case]
    path = files[name]
    with pytest.raises(LimitExceeded) as caught:
        reader(path, limits)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and what in message and f"({flag})" in message and "\n" not in message


def test_the_declared_size_is_refused_before_the_decoder_opens(files, monkeypatch):
    """Nothing is decoded when the stream declares too many pixels: the thread setup (the last step
    before the decoder opens) is never reached."""
    monkeypatch.setattr(container_module, "set_threads", lambda *args: pytest.fail("the decoder was set up"))
    with pytest.raises(LimitExceeded, match="declared stream"):
        with opened(files["plain"], limits=Limits(max_pixels=100)):
            pass


def test_a_size_switch_is_refused_at_the_first_large_frame(files):
    """Frames before the switch are within the limit: the stream yields them, then stops at the switch."""
    stream = FrameStream(str(files["switch"]), 30.0, limits=Limits(max_pixels=1000))
    seen = []
    with pytest.raises(LimitExceeded, match="96x64"):
        for sample in stream:
            seen.append(sample.image.shape)
    assert seen and set(seen) == {(24, 32, 3)}


class CountingDeadline(Deadline):
    """A deadline that passes after `budget` packets (in every decoder together), counting checks after that."""

    def __init__(self, budget: int) -> None:
        super().__init__("v.mp4", None)
        self.budget, self.checks, self.after = budget, 0, 0
        self.lock = threading.Lock()

    def check(self) -> None:
        with self.lock:
            self.checks += 1
            over = self.checks > self.budget
            self.after += over
        if over:
            raise LimitExceeded("v.mp4: decoding took over 0 s (--decode-timeout) and was stopped")


@pytest.mark.parametrize("decoders", [1, 3])
def test_side_by_side_decoders_share_the_deadline_and_all_stop(files, decoders):
    """Once the deadline has passed, each decoder stops at its next packet: no decoder goes on."""
    path = files["gops"]
    table = scan(Guard(str(path))).table
    deadline = CountingDeadline(budget=30)
    guard = Guard(str(path), Limits(), deadline)
    ranks = sample_indices(240, 16)
    with opened(path) as (container, stream), pytest.raises(LimitExceeded, match="--decode-timeout"):
        decode_ranks(container, stream, table, ranks, upright_rgb, DecoderPool(guard, lambda: opened(path), decoders))
    assert 1 <= deadline.after <= decoders  # the first refusal, and at most one more check per other decoder


def test_admitted_videos_decode_exactly_as_without_limits(files):
    admitting = Limits(max_pixels=64 * 48, max_duration=8.5, decode_timeout=600.0)  # gops: 8 s
    for name in ("plain", "gops"):
        path = files[name]
        limited, unlimited = read_clip(path, 8, limits=admitting), read_clip(path, 8, limits=Limits(max_pixels=None))
        assert limited.indices == unlimited.indices and np.array_equal(limited.frames, unlimited.frames)
        assert decoded_codes(limited.frames) == limited.indices
        full = read_clip_without_seeking(path, 8, limits=admitting)
        assert np.array_equal(full.frames, limited.frames)
    samples = [s.image for s in FrameStream(str(files["plain"]), 5.0, limits=admitting)]
    assert decoded_codes(np.stack(samples)) == [k * 2 for k in range(15)]


def test_decoders_run_on_a_bounded_number_of_threads(files):
    with opened(files["plain"]) as (_, stream):
        assert 1 <= stream.codec_context.thread_count <= MAX_DECODER_THREADS


def test_an_aspect_ratio_that_preprocessing_would_blow_up_is_refused(tmp_path):
    """16x4096 is only 65536 pixels, but resizing its shorter side to 256 would make 256x65536."""
    path = write_video(tmp_path / "taller.mp4", 2, 16, 4096)
    with pytest.raises(LimitExceeded, match=r"resizes to 256x65536 = 16777216 pixels before the crop.*--max-pixels"):
        load_clip(path, 2)
    pixels, _ = load_clip(path, 2, limits=Limits(max_pixels=256 * 65536))
    assert pixels.shape == (2, 3, 224, 224)
