"""Synthetic video files written with PyAV: frames that carry their own index, for tests and benchmarks.

Each default frame is a 4x4 grid of black/white cells: the four corners are fixed orientation marks
(white top-left, black elsewhere) and the twelve other cells hold the frame index in binary. Cells
are a quarter of the frame each way, so the code survives lossy codecs at 64x48, and a frame that is
rotated or mirrored fails the marks instead of reading as a wrong index. Benchmarks pass `frame_fn`
to draw content with a realistic bit rate instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

GRID = 4
CORNERS = {0: 1, GRID - 1: 0, GRID * (GRID - 1): 0, GRID * GRID - 1: 0}  # cell -> fixed bit
DATA_CELLS = tuple(cell for cell in range(GRID * GRID) if cell not in CORNERS)
MAX_INDEX = 2 ** len(DATA_CELLS) - 1
NOISE_FIELDS = 8

FrameFn = Callable[[int, int, int], np.ndarray]  # (index, width, height) -> (H, W, 3) uint8

# codec -> (encoder, pixel format for even sizes, pixel format for odd sizes, encoder options)
CODECS: dict[str, tuple[str, str, str, dict[str, str]]] = {
    "h264": ("libx264", "yuv420p", "yuv444p", {"preset": "veryfast", "crf": "18"}),
    "vp9": ("libvpx-vp9", "yuv420p", "yuv444p", {"deadline": "realtime", "cpu-used": "8", "crf": "20", "b": "0"}),
    "mjpeg": ("mjpeg", "yuvj420p", "yuvj444p", {"q:v": "3"}),
    "hevc": ("libx265", "yuv420p", "yuv444p", {"preset": "ultrafast", "x265-params": "log-level=error"}),
    "av1": ("libsvtav1", "yuv420p", "yuv420p", {"preset": "11", "crf": "35"}),  # even sizes only
    "mpeg2": ("mpeg2video", "yuv420p", "yuv420p", {"q:v": "3", "bf": "2"}),  # even sizes only
    "mpeg4": ("mpeg4", "yuv420p", "yuv420p", {"q:v": "3", "bf": "2"}),  # even sizes only
    "ffv1": ("ffv1", "yuv420p", "yuv444p", {}),  # lossless; takes sizes libx264 refuses
    "png": ("png", "rgb24", "rgb24", {}),  # lossless RGB (in .mov or .avi)
}


def _cell_bounds(cell: int, width: int, height: int) -> tuple[slice, slice]:
    row, col = divmod(cell, GRID)
    rows = slice(row * height // GRID, (row + 1) * height // GRID)
    cols = slice(col * width // GRID, (col + 1) * width // GRID)
    return rows, cols


def _bits(index: int) -> dict[int, int]:
    """Cell -> bit: the fixed corner marks, then the index, most significant bit first."""
    if not 0 <= index <= MAX_INDEX:
        raise ValueError(f"frame index {index} does not fit the code (0..{MAX_INDEX})")
    data = {cell: (index >> (len(DATA_CELLS) - 1 - k)) & 1 for k, cell in enumerate(DATA_CELLS)}
    return {**CORNERS, **data}


def index_code_frame(index: int, width: int, height: int) -> np.ndarray:
    """An (H, W, 3) uint8 frame showing `index` in the 4x4 code."""
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    for cell, bit in _bits(index).items():
        rows, cols = _cell_bounds(cell, width, height)
        frame[rows, cols] = 255 * bit
    return frame


def read_index_code(frame_rgb: np.ndarray) -> int:
    """The index drawn by `index_code_frame`, from a decoded (possibly lossy) frame.

    Each cell is read from the mean of its central half, away from edges where codecs blur;
    raises ValueError when the corner marks are wrong (rotated, mirrored or not a code frame).
    """
    height, width = frame_rgb.shape[:2]
    bits = {}
    for cell in range(GRID * GRID):
        rows, cols = _cell_bounds(cell, width, height)
        core = frame_rgb[_middle(rows), _middle(cols)]
        bits[cell] = int(core.mean() >= 128)
    if any(bits[cell] != bit for cell, bit in CORNERS.items()):
        raise ValueError("the frame's corner marks do not match: not an upright index-code frame")
    return sum(bits[cell] << (len(DATA_CELLS) - 1 - k) for k, cell in enumerate(DATA_CELLS))


def _middle(span: slice) -> slice:
    quarter = (span.stop - span.start) // 4
    return slice(span.start + quarter, span.stop - quarter)


@functools.lru_cache(maxsize=4)
def _texture(width: int, height: int) -> np.ndarray:
    """Smooth colour waves plus fine grain: detail at every scale, like a camera image."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    waves = [
        128 + 90 * np.sin(x / 37.0) * np.cos(y / 23.0),
        128 + 90 * np.sin((x + 2 * y) / 51.0),
        128 + 90 * np.cos((x - y) / 19.0) * np.sin(y / 61.0),
    ]
    grain = np.random.default_rng(0).normal(0.0, 6.0, size=(height, width, 3))
    return np.clip(np.stack(waves, axis=-1) + grain, 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=4)
def _sensor_noise(width: int, height: int) -> np.ndarray:
    """A few fields of per-frame noise, cycled: the part of real footage no encoder can predict."""
    rng = np.random.default_rng(1)
    return rng.integers(-4, 5, size=(NOISE_FIELDS, height, width, 1), dtype=np.int16)


def textured_frame(index: int, width: int, height: int) -> np.ndarray:
    """A slow diagonal pan over a fixed texture, plus sensor noise: roughly camera-like bit rates."""
    panned = np.roll(_texture(width, height), shift=(index, 3 * index), axis=(0, 1))
    noisy = panned + _sensor_noise(width, height)[index % NOISE_FIELDS]
    return np.clip(noisy, 0, 255).astype(np.uint8)


def write_video(
    path: str | Path,
    num_frames: int,
    width: int,
    height: int,
    codec: str = "h264",
    fps: int | Fraction = 30,
    rotate: int | None = None,
    frame_fn: FrameFn | None = None,
    timestamps: Sequence[float] | None = None,
    faststart: bool = False,
    codec_options: dict[str, str] | None = None,
    pixel_format: str | None = None,
) -> Path:
    """Encode `num_frames` frames into `path` (container from the suffix) and return the path.

    `rotate` stores a display rotation in degrees counterclockwise (a phone held upright records
    landscape pixels with rotate=-90); `timestamps` (seconds, increasing) makes a variable frame rate;
    `faststart` puts an mp4's index before the data, as streaming encoders do; `codec_options` are
    added to (or override) the codec's defaults, e.g. a GOP length for libx264; `pixel_format`
    overrides the codec's usual one (e.g. yuv420p10le or gray for libx264).
    """
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
    encoder, even_format, odd_format, default_options = CODECS[codec]
    draw = frame_fn or index_code_frame
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), mode="w", options=options) as container:
        options_for_codec = {**default_options, **(codec_options or {})}
        stream = container.add_stream(encoder, rate=Fraction(fps), options=options_for_codec)
        if not isinstance(stream, av.VideoStream):  # every entry of CODECS names a video encoder
            raise ValueError(f"{encoder} is not a video encoder")
        stream.width, stream.height = width, height
        stream.pix_fmt = pixel_format or (even_format if width % 2 == 0 and height % 2 == 0 else odd_format)
        if timestamps is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotate is not None:
            stream.set_display_rotation(rotate)
        for index in range(num_frames):
            frame = av.VideoFrame.from_ndarray(draw(index, width, height), format="rgb24")
            if timestamps is not None:
                frame.pts, frame.time_base = round(timestamps[index] * 1000), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path
