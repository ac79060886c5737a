"""The demuxing pass: every video packet read once, nothing decoded, to count the frames (as
torchvision counts them: packets with a timestamp), find the frame rate, and build the frame table
that seeking needs, or say why seeking cannot be trusted on this file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av

from runtime.decode.container import Stream, open_container, video_stream
from runtime.decode.loop import Guard, packets
from runtime.decode.table import FrameTable, SeekUnreliable
from runtime.errors import VideoError
from runtime.limits import CLI_LIMITS, Limits


@dataclass(frozen=True)
class StreamInfo:
    """What demuxing the first video stream tells: frames with a timestamp, and the frame rate."""

    num_frames: int
    fps: float | None


@dataclass(frozen=True)
class Scan:
    """What one demuxing pass learns: the frame count and rate, and the frame table seeking needs
    (None, with the reason, when the packets cannot support seeking)."""

    info: StreamInfo
    table: FrameTable | None
    unseekable: str | None
    damaged: bool = False  # demuxing stopped early: the count may hold frames that do not decode


def probe(path: str | Path, limits: Limits = CLI_LIMITS) -> StreamInfo:
    """Count the video packets that carry a timestamp (no decoding) and find the frame rate.

    Packets with a timestamp are what torchvision counts; a stream with none counts its non-empty
    packets. A demuxing error ends the count: what was read before it is what the file holds.
    `limits` are checked on what the stream declares (size, duration) and their decode deadline on
    every packet, as for reading.
    """
    return scan(Guard.start(str(path), limits)).info


def scan(guard: Guard) -> Scan:
    """Demux every video packet of `guard.where` once: count, rate, and each frame's timestamp and keyframe flag."""
    path = guard.where
    pts: list[int] = []
    dts: list[int] = []
    keyframe: list[bool] = []
    untimed, dts_ordered, last_dts, demux_failed = 0, True, None, False
    with open_container(path) as container:
        stream = video_stream(container, path, guard.limits)
        try:
            for packet in packets(container, stream, guard):
                if packet.pts is None:
                    untimed += 1
                    continue
                pts.append(packet.pts)
                dts.append(packet.pts if packet.dts is None else packet.dts)
                keyframe.append(packet.is_keyframe)
                if packet.dts is not None:
                    dts_ordered &= last_dts is None or packet.dts > last_dts
                    last_dts = packet.dts
        except av.error.FFmpegError:
            demux_failed = True  # truncated or corrupt past this point; the frames counted so far stand
        fps = frame_rate(stream, len(pts), min(pts, default=None), max(pts, default=None))
        declared = stream.frames  # the container's own count, 0 when it has none
    count = len(pts) or untimed  # a stream without any timestamps: one frame per packet
    if count == 0:
        raise VideoError(f"{path}: no video frames")
    info = StreamInfo(count, fps)
    if demux_failed or count < declared:  # e.g. an mp4 with its index first, cut short
        return Scan(info, None, "the file is damaged or cut short", damaged=True)
    if untimed:
        return Scan(info, None, "packets without timestamps")
    if not dts_ordered:
        return Scan(info, None, "decoding timestamps out of order")
    try:
        return Scan(info, FrameTable.from_packets(pts, dts, keyframe), None)
    except SeekUnreliable as reason:
        return Scan(info, None, str(reason))


def frame_rate(stream: Stream, count: int, first: int | None, last: int | None) -> float | None:
    """The stream's average rate (what torchvision uses), else frames per second of timestamps."""
    if stream.average_rate:
        return float(stream.average_rate)
    if count < 2 or first is None or last is None or last <= first or stream.time_base is None:
        return None
    return (count - 1) / float((last - first) * stream.time_base)
