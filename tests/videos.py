"""Test videos: real files from PyAV (frames carry their index), plus truncated and fake ones.

The encoder and the frame-index code live in `benchmarks.synthetic_video` (benchmarks may not
import tests/); this module adds the broken files that the error-path tests need.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from benchmarks.synthetic_video import MAX_INDEX, index_code_frame, read_index_code, textured_frame, write_video

__all__ = [
    "MAX_INDEX",
    "index_code_frame",
    "read_index_code",
    "textured_frame",
    "write_video",
    "write_truncated",
    "write_random_bytes",
    "write_elementary_h264",
    "write_remuxed",
    "x264_gop",
    "decoded_codes",
]


def write_truncated(path: str | Path, source: str | Path, keep: float) -> Path:
    """Copy the first `keep` fraction (0..1) of `source`'s bytes to `path`: a download cut short."""
    data = Path(source).read_bytes()
    path = Path(path)
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def write_random_bytes(path: str | Path, size: int = 4096, seed: int = 0) -> Path:
    """Random bytes under a video name (e.g. `noise.mp4`)."""
    path = Path(path)
    path.write_bytes(np.random.default_rng(seed).bytes(size))
    return path


def write_elementary_h264(path: str | Path, source: str | Path) -> Path:
    """Remux `source`'s H.264 packets into a raw Annex B stream (`.h264`): packets without timestamps."""
    return write_remuxed(path, source, format="h264")


def write_remuxed(path: str | Path, source: str | Path, format: str | None = None, options: dict | None = None) -> Path:
    """Copy `source`'s video packets into another container (from the suffix, or `format`) without
    re-encoding: e.g. MPEG-TS (no index) or a fragmented mp4 (`movflags=frag_keyframe+empty_moov`)."""
    path = Path(path)
    with av.open(str(source)) as reader, av.open(str(path), mode="w", format=format, options=options or {}) as writer:
        stream = reader.streams.video[0]
        output = writer.add_stream_from_template(stream)
        for packet in reader.demux(stream):
            if packet.size:
                packet.stream = output
                writer.mux(packet)
    return path


def x264_gop(keyint: int, bframes: int = 3, open_gop: bool = False) -> dict[str, str]:
    """libx264 options for a fixed GOP of `keyint` frames (no scene-cut keyframes), with B-frames."""
    params = f"keyint={keyint}:min-keyint={keyint}:scenecut=0:bframes={bframes}:open-gop={int(open_gop)}"
    return {"x264-params": params}


def decoded_codes(frames: np.ndarray) -> list[int]:
    """The frame-index code of each frame of a (T, H, W, 3) array: which source frames were sampled."""
    return [read_index_code(frame) for frame in frames]
