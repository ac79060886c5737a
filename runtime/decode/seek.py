"""Exact frame access by seeking: decoding only the stretches that hold the wanted frames.

A target is decoded by seeking to the keyframe before it (runtime.decode.table) and decoding forward,
one pass per stretch of nearby targets, skipping H.264 pictures that nothing references
(runtime.decode.h264). Every step is checked (the seek lands on a known keyframe, packets follow the
table's order, frames come out in presentation order without gaps), and any surprise raises
`SeekUnreliable`, so the caller falls back (index -> demuxing -> decoding from the start): a seek
either gives the same pixels as decoding everything or is not used. The packets go through the one
decode loop (runtime.decode.loop) under Policy.RAISE, with the video's limits and deadline.

What no seek can see: a frame the decoder would drop (a corrupt packet) outside the decoded
stretches shifts the count of decoding from the start by one, not the seek's, which takes frames by
timestamp order. Files known to be damaged (demuxing fails or stops short of the container's count)
are therefore decoded from the start, by the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import chain

import av
import numpy as np
import numpy.typing as npt

from runtime.decode.container import Container, Decoder, Stream
from runtime.decode.h264 import non_reference_test
from runtime.decode.loop import DecodeFailed, Guard, Policy, decode, packets
from runtime.decode.side_by_side import Images, Reopen, decode_side_by_side
from runtime.decode.table import FrameTable, SeekUnreliable, Stretch, plan_stretches

# A demuxer that seeks by searching timestamps (MPEG-TS) may stop past the keyframe it was sent to:
# it is sent to this many earlier keyframes in turn before seeking counts as unreliable.
SEEK_RETRIES = 2
Convert = Callable[[av.VideoFrame], npt.NDArray[np.uint8]]


@dataclass(frozen=True)
class DecoderPool:
    """The decoders one video's seeks may use: up to `size` side by side, each but the caller's opened
    by `reopen` (None: the caller's alone), all under one `guard` (limits and decode deadline)."""

    guard: Guard
    reopen: Reopen | None = None
    size: int = 1


def decode_ranks(
    container: Container,
    stream: Stream,
    table: FrameTable,
    ranks: list[int],
    convert: Convert,
    pool: DecoderPool | None = None,
) -> Images:
    """The frames of presentation `ranks`, converted, by seeking; SeekUnreliable at the first surprise.

    The stretches are decoded on the `pool`'s decoders side by side (runtime.decode.side_by_side),
    all bound by its guard (default: the caller's decoder alone, the default limits, no deadline).
    """
    pool = pool or DecoderPool(Guard(container.name))
    stretches = plan_stretches(table, ranks)

    def decode_stretch(decoder: Decoder, stretch: Stretch) -> Images:
        return _stretch_images(*decoder, table, stretch, convert, pool.guard)

    return decode_side_by_side(stretches, decode_stretch, (container, stream), pool.reopen, pool.size)


def _stretch_images(
    container: Container,
    stream: Stream,
    table: FrameTable,
    stretch: Stretch,
    convert: Convert,
    guard: Guard,
) -> Images:
    """The converted frames of one stretch's ranks, from one pass starting at its keyframe."""
    images: Images = {}
    wanted = set(stretch.ranks)
    non_reference = non_reference_test(stream)
    for rank, frame in _decode_stretch(container, stream, table, stretch.start, wanted, non_reference, guard):
        if rank in wanted:
            images[rank] = convert(frame)
    missing = wanted - images.keys()
    if missing:
        raise SeekUnreliable(f"frame {min(missing)} did not decode after seeking")
    return images


def _decode_stretch(
    container: Container,
    stream: Stream,
    table: FrameTable,
    start: int,
    wanted: set[int],
    non_reference: Callable[[av.Packet[Stream]], bool] | None,
    guard: Guard,
) -> Iterator[tuple[int, av.VideoFrame]]:
    """(rank, frame) from the keyframe at decode position `start` on, in presentation order, checked.

    Frames shown before the keyframe (an open GOP's leading pictures) may reference frames before the
    seek point, so they are dropped. Packets that no other frame references and that are not wanted
    are not decoded at all (`non_reference`). Feeding stops at the last wanted frame's packet and the
    decoder is drained: a frame depends only on packets decoded before it, and the packets after it,
    which a decoder with B-frames or frame threads would otherwise take before giving it out, are
    not decoded. Every fed frame must then come out, in order, with no gap (a packet that is only
    part of a picture, such as one field, fails this and the caller falls back).
    """
    demuxed = _packets_from(container, stream, table, start, guard)
    landed = next(demuxed)
    first_pts = int(table.pts[landed.position])
    last = max(int(table.order[rank]) for rank in wanted)
    expected = table.rank_of(landed.position)
    skipped: set[int] = set()
    shown = 0  # fed packets shown from the keyframe on: each must come out as one frame

    def fed() -> Iterator[_Packet]:
        nonlocal shown
        for item in chain([landed], demuxed):
            rank = table.rank_of(item.position)
            if item is not landed and non_reference is not None and rank not in wanted and non_reference(item.packet):
                skipped.add(rank)  # a frame shown later than it is decoded is fed before it comes out
                continue
            shown += int(table.pts[item.position]) >= first_pts
            yield item
            if item.position >= last:
                return

    came_out = 0
    for frame in _decode(stream, fed(), guard):
        if frame.pts is None:
            raise SeekUnreliable("a decoded frame has no timestamp")
        if frame.pts < first_pts:
            continue
        while expected < len(table) and (expected in skipped or table.order[expected] > last):  # not fed
            expected += 1
        if table.rank_of_pts(frame.pts) != expected:
            raise SeekUnreliable(f"after seeking, frame {expected} was expected and another one came out")
        yield expected, frame
        expected += 1
        came_out += 1
    if came_out != shown:
        raise SeekUnreliable(f"{shown} pictures were decoded after seeking and {came_out} frames came out")


@dataclass
class _Packet:
    packet: av.Packet[Stream]
    position: int


def _packets_from(
    container: Container, stream: Stream, table: FrameTable, start: int, guard: Guard
) -> Iterator[_Packet]:
    """Seek to the keyframe at decode position `start` and demux on, checking each packet's place.

    Packets before the first known keyframe are passed over (a demuxer without an index, such as
    MPEG-TS, lands wherever its timestamp search ends); that keyframe may be earlier than `start`
    (decoding from there is only slower) but not later: then the seek is retried from an earlier
    keyframe, up to SEEK_RETRIES times. From the landing on, every packet must be the table's next one.
    """
    for timestamp in _seek_timestamps(table, start):
        seek_to(container, stream, timestamp)
        demuxed = demux_until_error(container, stream, guard)
        landed = _land(demuxed, table, start)
        if landed is None:
            continue
        yield landed
        position = landed.position
        for packet in demuxed:
            found = None if packet.pts is None else table.position_of_pts(packet.pts)
            if found != position + 1:
                raise SeekUnreliable("packets after the seek are not in the order first demuxed")
            position = found
            yield _Packet(packet, position)
        return
    raise SeekUnreliable("the seek went past the keyframe before the target")


def _seek_timestamps(table: FrameTable, start: int) -> Iterator[int]:
    """Where to aim the seek, in turn: the keyframe's pts (mp4 and Matroska indexes land exactly
    there), its dts (MPEG-TS searches by decoding time), then the dts of up to SEEK_RETRIES earlier keyframes."""
    yield int(table.pts[start])
    earlier = np.flatnonzero(table.keyframe[: start + 1])[-1 - SEEK_RETRIES :]
    for position in reversed(earlier.tolist()):
        yield int(table.dts[position])


def _land(demuxed: Iterator[av.Packet[Stream]], table: FrameTable, start: int) -> _Packet | None:
    """The first known keyframe packet, or None when the demuxer is already past `start`."""
    for packet in demuxed:
        found = None if packet.pts is None else table.position_of_pts(packet.pts)
        if found is not None and found > start:
            return None
        if found is not None and table.keyframe[found]:
            return _Packet(packet, found)
    return None


def seek_to(container: Container, stream: Stream, timestamp: int) -> None:
    """Seek backward to a keyframe at or before `timestamp`; a demuxer that cannot seek is a surprise."""
    try:
        container.seek(timestamp, stream=stream, backward=True, any_frame=False)
    except (av.error.FFmpegError, OSError) as error:
        raise SeekUnreliable(f"the file cannot seek ({error})") from None


def demux_until_error(container: Container, stream: Stream, guard: Guard) -> Iterator[av.Packet[Stream]]:
    """Packets with data (runtime.decode.loop.packets); a demuxing error ends them, and the checks
    that follow (every packet in its place, every wanted frame out) catch what is missing."""
    try:
        yield from packets(container, stream, guard)
    except av.error.FFmpegError:
        return


def _decode(stream: Stream, fed: Iterator[_Packet], guard: Guard) -> Iterator[av.VideoFrame]:
    """Frames of the `fed` packets, then the decoder's held frames, through the decode loop; a
    decoding error is a surprise. The guard's limits and deadline stop the decode (LimitExceeded)."""
    try:
        for decoded in decode(stream, (item.packet for item in fed), guard, Policy.RAISE):
            yield decoded.frame
    except DecodeFailed as error:
        raise SeekUnreliable(f"after the seek, {error}") from None
