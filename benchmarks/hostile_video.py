"""Hostile video files: what a stranger may upload to make a decoder spend memory, time or a crash.

Each case is a small file that costs far more than its size to decode, or one that is broken in a
way decoders trip on: frames far larger than declared limits (declared in the header, or switched
to mid-stream where no header says so), tiny files declaring hours of media, extreme aspect ratios,
unusual pixel formats and codecs, truncated files, noise, empty files and a single GOP of thousands
of tiny frames. Sizes are parameters (`Sizes`), so tests build small copies that exercise the same
paths under small limits, and the benchmarks build the full-size ones.

    python -m benchmarks.hostile_video OUT_DIR   # writes every full-size case and lists them
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from benchmarks.synthetic_video import textured_frame, write_video

HOURS_10 = 10 * 3600.0
TEN_HOUR_TIMES = (0.0, HOURS_10 / 2, HOURS_10)
GRAY_LEVEL = 100  # the flat picture's luma: any mid grey


@dataclass(frozen=True)
class Sizes:
    """How big each hostile case is. `FULL` is what an attacker sends; tests use `SMALL`-like copies."""

    huge_side: int = 8192  # square frames, declared in the header
    huge_frames: int = 16
    small: tuple[int, int] = (320, 240)  # the size a size-switching stream starts at
    tall: tuple[int, int] = (16, 16384)  # extreme aspect ratio (16x65536 is past what libx264 opens)
    gop_frames: int = 3000  # one GOP of this many tiny frames
    good: tuple[int, int] = (320, 240)  # the ordinary clip the broken ones are cut from
    good_frames: int = 24


FULL = Sizes()


@dataclass(frozen=True)
class Case:
    """One hostile file: its name, how to write it, and what it does to a decoder without limits."""

    name: str
    write: Callable[[Path, Sizes], Path]
    hazard: str  # which limit (or error path) stops it: pixels, duration, bytes, broken, format, frames


@functools.lru_cache(maxsize=2)
def _flat_yuv420(width: int, height: int) -> np.ndarray:
    """A flat grey picture already in yuv420p (planes stacked, as PyAV takes it): no colour conversion
    of huge frames, so writing an 8192x8192 file costs the encoder's time only."""
    picture = np.full((height * 3 // 2, width), 128, dtype=np.uint8)
    picture[:height] = GRAY_LEVEL
    return picture


def write_flat_h264(
    path: Path, width: int, height: int, frames: int, *, fps: int = 25, options: dict[str, str] | None = None
) -> Path:
    """`frames` flat grey frames of width x height, H.264 (libx264 ultrafast): a large picture in a small file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", options=options or {}) as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "30"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        picture = _flat_yuv420(width, height)
        for _ in range(frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="yuv420p")))
        container.mux(stream.encode(None))
    return path


def _good(folder: Path, sizes: Sizes) -> Path:
    """The ordinary clip that the truncated cases are cut from."""
    path = folder / "good.mp4"
    if not path.exists():
        width, height = sizes.good
        write_video(path, sizes.good_frames, width, height, frame_fn=textured_frame)
    return path


def huge_declared(folder: Path, sizes: Sizes) -> Path:
    """An H.264 mp4 whose header declares huge frames (8192x8192 by default): ~200 KB on disk."""
    side = sizes.huge_side
    return write_flat_h264(folder / f"huge_{side}x{side}.mp4", side, side, sizes.huge_frames)


def size_switch(folder: Path, sizes: Sizes) -> Path:
    """Two MPEG-TS encodes back to back: the stream starts small and switches to huge frames mid-way,
    which no header declares (a decoder learns it from the first huge frame)."""
    small = write_flat_h264(folder / "switch_small.ts", *sizes.small, frames=sizes.huge_frames)
    big = write_flat_h264(folder / "switch_big.ts", sizes.huge_side, sizes.huge_side, frames=sizes.huge_frames)
    path = folder / f"size_switch_{sizes.small[0]}x{sizes.small[1]}_to_{sizes.huge_side}.ts"
    path.write_bytes(small.read_bytes() + big.read_bytes())
    small.unlink()
    big.unlink()
    return path


def ten_hours(folder: Path, sizes: Sizes) -> Path:
    """Three small frames whose timestamps span 10 hours: a tiny file that declares hours of media."""
    return write_video(folder / "ten_hours.mp4", 3, 64, 48, frame_fn=textured_frame, timestamps=TEN_HOUR_TIMES)


def ten_hours_mkv(folder: Path, sizes: Sizes) -> Path:
    """The same 10-hour span in Matroska (its own index and timestamps)."""
    return write_video(folder / "ten_hours.mkv", 3, 64, 48, frame_fn=textured_frame, timestamps=TEN_HOUR_TIMES)


def tall(folder: Path, sizes: Sizes) -> Path:
    """An extreme aspect ratio: a few frames of 16 pixels by thousands (resizing it amplifies memory)."""
    width, height = sizes.tall
    return write_flat_h264(folder / f"tall_{width}x{height}.mp4", width, height, 4)


def wide(folder: Path, sizes: Sizes) -> Path:
    """The extreme aspect ratio lying down, in FFV1 (which takes sizes libx264 refuses)."""
    height, width = sizes.tall
    return write_video(folder / f"wide_{width}x{height}.mkv", 2, width, height, codec="ffv1", frame_fn=textured_frame)


def pixel_format(codec: str, pix_fmt: str, suffix: str) -> Callable[[Path, Sizes], Path]:
    """A short clip (8 textured frames) in an unusual pixel format or codec."""

    def write(folder: Path, sizes: Sizes) -> Path:
        width, height = sizes.good
        path = folder / f"{codec}_{pix_fmt}{suffix}"
        return write_video(path, 8, width, height, codec=codec, frame_fn=textured_frame, pixel_format=pix_fmt)

    write.__doc__ = f"{codec} in {pix_fmt}"
    return write


def truncated(fraction: float, faststart: bool) -> Callable[[Path, Sizes], Path]:
    """The ordinary clip cut after `fraction` of its bytes (with its index first or last)."""

    def write(folder: Path, sizes: Sizes) -> Path:
        source = _good(folder, sizes)
        if faststart:
            width, height = sizes.good
            source = write_video(
                folder / "good_faststart.mp4", sizes.good_frames, width, height, frame_fn=textured_frame, faststart=True
            )
        data = source.read_bytes()
        path = folder / f"truncated_{int(fraction * 100)}{'_faststart' if faststart else ''}.mp4"
        path.write_bytes(data[: int(len(data) * fraction)])
        return path

    return write


def noise(folder: Path, sizes: Sizes) -> Path:
    """Random bytes under a video name."""
    path = folder / "noise.mp4"
    path.write_bytes(np.random.default_rng(0).bytes(64 * 1024))
    return path


def empty(folder: Path, sizes: Sizes) -> Path:
    """Zero bytes."""
    path = folder / "empty.mp4"
    path.write_bytes(b"")
    return path


def noise_after_header(folder: Path, sizes: Sizes) -> Path:
    """A real mp4's first kilobytes followed by noise: the container opens, the packets are garbage."""
    data = _good(folder, sizes).read_bytes()
    path = folder / "header_then_noise.mp4"
    path.write_bytes(data[:2048] + np.random.default_rng(1).bytes(len(data)))
    return path


def long_gop(folder: Path, sizes: Sizes) -> Path:
    """One GOP of thousands of 16x16 frames: every sampled frame must be decoded from the single keyframe."""
    frames = sizes.gop_frames
    options = {"x264-params": f"keyint={frames}:min-keyint={frames}:scenecut=0:bframes=0", "preset": "ultrafast"}
    return write_video(folder / f"gop_{frames}.mp4", frames, 16, 16, frame_fn=textured_frame, codec_options=options)


CASES: tuple[Case, ...] = (
    Case("huge_declared", huge_declared, "pixels"),
    Case("size_switch", size_switch, "pixels"),
    Case("ten_hours", ten_hours, "duration"),
    Case("ten_hours_mkv", ten_hours_mkv, "duration"),
    Case("tall", tall, "pixels"),
    Case("wide_ffv1", wide, "pixels"),
    Case("h264_yuv444p", pixel_format("h264", "yuv444p", ".mp4"), "format"),
    Case("h264_gray", pixel_format("h264", "gray", ".mp4"), "format"),
    Case("h264_yuv420p10le", pixel_format("h264", "yuv420p10le", ".mp4"), "format"),
    Case("ffv1_yuv444p", pixel_format("ffv1", "yuv444p", ".mkv"), "format"),
    Case("png_rgb24", pixel_format("png", "rgb24", ".mov"), "format"),
    Case("truncated_half", truncated(0.5, faststart=False), "broken"),
    Case("truncated_half_faststart", truncated(0.5, faststart=True), "broken"),
    Case("truncated_tenth_faststart", truncated(0.1, faststart=True), "broken"),
    Case("noise", noise, "broken"),
    Case("empty", empty, "broken"),
    Case("header_then_noise", noise_after_header, "broken"),
    Case("long_gop", long_gop, "frames"),
)


def write_case(name: str, folder: Path, sizes: Sizes = FULL) -> Path:
    """Write the case called `name` into `folder` and return its path."""
    for case in CASES:
        if case.name == name:
            return case.write(folder, sizes)
    raise KeyError(f"no hostile case {name!r}; known: {', '.join(case.name for case in CASES)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hostile_video", description=__doc__.split("\n")[0])
    parser.add_argument("out", help="folder to write the files into")
    parser.add_argument("--cases", help="comma-separated names (default: all)")
    args = parser.parse_args(argv)
    names = args.cases.split(",") if args.cases else [case.name for case in CASES]
    for name in names:
        path = write_case(name, Path(args.out))
        print(f"{name}\t{path}\t{path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
