"""Exact frame access by seeking: which packet shows the k-th frame, and decoding only the stretches that hold the targets.

Frame k is the k-th frame in presentation order, as decoding everything from the start counts it.
A `FrameTable` holds every frame's timestamp in decode order (from demuxing every packet, or from an
mp4's complete sample index); a target is decoded by seeking to the keyframe before it and decoding
forward, one pass per stretch of nearby targets. Every step is checked against the table (the seek
lands on a known keyframe, packets follow in the table's order, frames come out in presentation
order without gaps), and any surprise raises `SeekUnreliable`, so the caller decodes from the start
instead: a seek either gives the same pixels as decoding everything or is not used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import av
import numpy as np

# A stretch of targets is decoded in one pass when the next target's keyframe lies at most this many
# packets past where the pass already is: decoding on is then about as cheap as a seek and a restart.
SEEK_GAIN_PACKETS = 8
# A demuxer that seeks by searching timestamps (MPEG-TS) may stop past the keyframe it was sent to:
# it is sent to this many earlier keyframes in turn before seeking counts as unreliable.
SEEK_RETRIES = 2


class SeekUnreliable(Exception):
    """Seeking cannot be trusted for this file (the message says why); decode from the start."""


@dataclass(frozen=True)
class FrameTable:
    """Every frame's packet in decode order: presentation timestamp, keyframe flag; and the presentation order.

    `order[k]` is the decode position of the k-th frame in presentation order.
    """

    pts: np.ndarray  # (N,) int64, decode order
    dts: np.ndarray  # (N,) int64, decode order (the pts where a packet has no dts)
    keyframe: np.ndarray  # (N,) bool, decode order
    order: np.ndarray  # (N,) int64, decode positions sorted by pts
    sorted_pts: np.ndarray  # (N,) int64, pts[order]: the k-th frame's timestamp

    @classmethod
    def from_packets(cls, pts: list[int], dts: list[int], keyframe: list[bool]) -> FrameTable:
        """The table of packets listed in decode order; SeekUnreliable when timestamps repeat."""
        pts_array = np.asarray(pts, dtype=np.int64)
        order = np.argsort(pts_array, kind="stable")
        sorted_pts = pts_array[order]
        if not np.all(np.diff(sorted_pts) > 0):
            raise SeekUnreliable("two frames share a timestamp")
        return cls(pts_array, np.asarray(dts, dtype=np.int64), np.asarray(keyframe, dtype=bool), order, sorted_pts)

    def __len__(self) -> int:
        return len(self.pts)

    def rank_of_pts(self, pts: int) -> int | None:
        """Presentation rank of the frame with timestamp `pts`, None when no frame has it."""
        rank = int(np.searchsorted(self.sorted_pts, pts))
        return rank if rank < len(self.sorted_pts) and self.sorted_pts[rank] == pts else None

    def position_of_pts(self, pts: int) -> int | None:
        """Decode position of the packet with timestamp `pts`, None when no packet has it."""
        rank = self.rank_of_pts(pts)
        return None if rank is None else int(self.order[rank])

    def rank_of(self, position: int) -> int:
        """Presentation rank of the packet at decode `position`."""
        return int(np.searchsorted(self.sorted_pts, self.pts[position]))

    def keyframe_before(self, position: int) -> int:
        """The last keyframe at or before decode `position` that is shown no later than that frame."""
        target_pts = self.pts[position]
        candidates = np.flatnonzero(self.keyframe[: position + 1] & (self.pts[: position + 1] <= target_pts))
        if len(candidates) == 0:
            raise SeekUnreliable(f"no keyframe before frame {self.rank_of(position)}")
        return int(candidates[-1])


@dataclass(frozen=True)
class Stretch:
    """One decoding pass: start at the keyframe at decode position `start`, collect the `ranks`."""

    start: int
    ranks: list[int]


def plan_stretches(table: FrameTable, ranks: list[int]) -> list[Stretch]:
    """Group the wanted frames into passes: a target joins the pass before it when its keyframe lies
    within SEEK_GAIN_PACKETS packets of the furthest packet that pass decodes anyway."""
    stretches: list[Stretch] = []
    reach = -1
    for rank in sorted(set(ranks), key=lambda r: table.order[r]):
        position = int(table.order[rank])
        keyframe = table.keyframe_before(position)
        if stretches and keyframe <= reach + SEEK_GAIN_PACKETS:
            stretches[-1].ranks.append(rank)
        else:
            stretches.append(Stretch(keyframe, [rank]))
        reach = max(reach, position)
    return stretches


def decode_ranks(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    table: FrameTable,
    ranks: list[int],
    convert: Callable[[av.VideoFrame], np.ndarray],
) -> dict[int, np.ndarray]:
    """The frames of presentation `ranks`, converted, by seeking; SeekUnreliable at the first surprise."""
    images: dict[int, np.ndarray] = {}
    for stretch in plan_stretches(table, ranks):
        wanted = set(stretch.ranks)
        for rank, frame in _decode_stretch(container, stream, table, stretch.start):
            if rank in wanted:
                images[rank] = convert(frame)
                wanted.discard(rank)
                if not wanted:
                    break
        if wanted:
            raise SeekUnreliable(f"frame {min(wanted)} did not decode after seeking")
    return images


def _decode_stretch(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, table: FrameTable, start: int
) -> Iterator[tuple[int, av.VideoFrame]]:
    """(rank, frame) from the keyframe at decode position `start` on, in presentation order, checked.

    Frames shown before the keyframe (an open GOP's leading pictures) may reference frames before the
    seek point, so they are dropped; every later frame must come out, in order, with no gap.
    """
    packets = _packets_from(container, stream, table, start)
    landed = next(packets)
    first_pts = int(table.pts[landed.position])
    expected = table.rank_of(landed.position)
    for frame in _decode(stream, landed, packets):
        if frame.pts is None:
            raise SeekUnreliable("a decoded frame has no timestamp")
        if frame.pts < first_pts:
            continue
        rank = table.rank_of_pts(frame.pts)
        if rank != expected:
            raise SeekUnreliable(f"after seeking, frame {expected} was expected and another one came out")
        yield rank, frame
        expected += 1


@dataclass
class _Packet:
    packet: av.Packet
    position: int


def _packets_from(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, table: FrameTable, start: int
) -> Iterator[_Packet]:
    """Seek to the keyframe at decode position `start` and demux on, checking each packet's place.

    Packets before the first known keyframe are passed over (a demuxer without an index, such as
    MPEG-TS, lands wherever its timestamp search ends); that keyframe may be earlier than `start`
    (decoding from there is only slower) but not later: then the seek is retried from an earlier
    keyframe, up to SEEK_RETRIES times. From the landing on, every packet must be the table's next one.
    """
    for timestamp in _seek_timestamps(table, start):
        container.seek(timestamp, stream=stream, backward=True, any_frame=False)
        packets = _demux(container, stream)
        landed = _land(packets, table, start)
        if landed is None:
            continue
        yield landed
        position = landed.position
        for packet in packets:
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


def _land(packets: Iterator[av.Packet], table: FrameTable, start: int) -> _Packet | None:
    """The first known keyframe packet, or None when the demuxer is already past `start`."""
    for packet in packets:
        found = None if packet.pts is None else table.position_of_pts(packet.pts)
        if found is not None and found > start:
            return None
        if found is not None and table.keyframe[found]:
            return _Packet(packet, found)
    return None


def _demux(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> Iterator[av.Packet]:
    """Packets with data; a demuxing error ends them (the decoder is flushed by the caller)."""
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except (StopIteration, av.error.FFmpegError):
            return
        if packet.size:
            yield packet


def _decode(stream: av.video.stream.VideoStream, first: _Packet, rest: Iterator[_Packet]) -> Iterator[av.VideoFrame]:
    """Frames of `first` then `rest`, then the decoder's held frames; a decoding error is a surprise."""
    try:
        yield from first.packet.decode()
        for item in rest:
            yield from item.packet.decode()
        yield from stream.decode(None)
    except av.error.FFmpegError as error:
        raise SeekUnreliable(f"decoding after the seek failed ({error})") from None
