"""Exact frame access by seeking: which packet shows the k-th frame; decoding only the stretches holding the targets.

Frame k is the k-th frame in presentation order, as decoding everything from the start counts it.
A `FrameTable` holds every frame's timestamp in decode order, from demuxing every packet (any
container) or, for an mp4 whose sample index lists every frame (`SampleIndex`), from demuxing only a
window of packets around each target. A target is decoded by seeking to the keyframe before it and
decoding forward, one pass per stretch of nearby targets, skipping H.264 pictures that nothing
references. Every step is checked (the seek lands on a known keyframe, packets follow the table's
order, frames come out in presentation order without gaps), and any surprise raises
`SeekUnreliable`, so the caller falls back (index → demuxing → decoding from the start): a seek
either gives the same pixels as decoding everything or is not used.

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

from runtime.side_by_side import Decoder, Reopen, decode_side_by_side

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


@dataclass
class Stretch:
    """One decoding pass: start at the keyframe at decode position `start`, collect the `ranks` (grown while planning)."""

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
    *,
    reopen: Reopen | None = None,
    decoders: int = 1,
) -> dict[int, np.ndarray]:
    """The frames of presentation `ranks`, converted, by seeking; SeekUnreliable at the first surprise.

    With `reopen`, the stretches are decoded on up to `decoders` containers side by side (runtime.side_by_side).
    """
    stretches = plan_stretches(table, ranks)
    decode = lambda decoder, stretch: _stretch_images(*decoder, table, stretch, convert)  # noqa: E731
    return decode_side_by_side(stretches, decode, (container, stream), reopen, decoders)


def _stretch_images(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    table: FrameTable,
    stretch: Stretch,
    convert: Callable[[av.VideoFrame], np.ndarray],
) -> dict[int, np.ndarray]:
    """The converted frames of one stretch's ranks, from one pass starting at its keyframe."""
    images: dict[int, np.ndarray] = {}
    wanted = set(stretch.ranks)
    non_reference = non_reference_test(stream)
    for rank, frame in _decode_stretch(container, stream, table, stretch.start, wanted, non_reference):
        if rank in wanted:
            images[rank] = convert(frame)
    missing = wanted - images.keys()
    if missing:
        raise SeekUnreliable(f"frame {min(missing)} did not decode after seeking")
    return images


def _decode_stretch(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    table: FrameTable,
    start: int,
    wanted: set[int],
    non_reference: Callable[[av.Packet], bool] | None,
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
    packets = _packets_from(container, stream, table, start)
    landed = next(packets)
    first_pts = int(table.pts[landed.position])
    last = max(int(table.order[rank]) for rank in wanted)
    expected = table.rank_of(landed.position)
    skipped: set[int] = set()
    shown = 0  # fed packets shown from the keyframe on: each must come out as one frame

    def fed() -> Iterator[_Packet]:
        nonlocal shown
        for item in chain([landed], packets):
            rank = table.rank_of(item.position)
            if item is not landed and non_reference is not None and rank not in wanted and non_reference(item.packet):
                skipped.add(rank)  # a frame shown later than it is decoded is fed before it comes out
                continue
            shown += int(table.pts[item.position]) >= first_pts
            yield item
            if item.position >= last:
                return

    came_out = 0
    for frame in _decode(stream, fed()):
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


def non_reference_test(stream: av.video.stream.VideoStream) -> Callable[[av.Packet], bool] | None:
    """For H.264 in mp4/Matroska (length-prefixed NAL units): a test of whether a packet is a picture no
    other picture references (every slice has nal_ref_idc 0), so skipping it changes no other frame's
    pixels. None for other codecs and layouts: every packet is decoded."""
    extradata = stream.codec_context.extradata
    if stream.codec_context.name != "h264" or not extradata or len(extradata) < 7 or extradata[0] != 1:
        return None
    length_size = (extradata[4] & 3) + 1

    def is_non_reference(packet: av.Packet) -> bool:
        data, offset, slices = bytes(packet), 0, 0
        while offset + length_size < len(data):
            size = int.from_bytes(data[offset : offset + length_size], "big")
            offset += length_size
            if size == 0 or offset + size > len(data):
                return False  # not the layout we expect: decode it
            header = data[offset]
            kind, referenced = header & 0x1F, header & 0x60
            if kind == 5 or (kind in (1, 2) and referenced):  # IDR, or a slice other pictures use
                return False
            slices += kind in (1, 2)
            offset += size
        return slices > 0

    return is_non_reference


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
        _seek(container, stream, timestamp)
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


def _seek(container: av.container.InputContainer, stream: av.video.stream.VideoStream, timestamp: int) -> None:
    """Seek backward to a keyframe at or before `timestamp`; a demuxer that cannot seek is a surprise."""
    try:
        container.seek(timestamp, stream=stream, backward=True, any_frame=False)
    except (av.error.FFmpegError, OSError) as error:
        raise SeekUnreliable(f"the file cannot seek ({error})") from None


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


def _decode(stream: av.video.stream.VideoStream, packets: Iterator[_Packet]) -> Iterator[av.VideoFrame]:
    """Frames of `packets`, then the decoder's held frames; a decoding error is a surprise."""
    try:
        for item in packets:
            yield from item.packet.decode()
        yield from stream.decode(None)
    except av.error.FFmpegError as error:
        raise SeekUnreliable(f"decoding after the seek failed ({error})") from None


# --- mp4: the sample index instead of a demuxing pass ----------------------------------------------

# H.264 and HEVC hold at most 16 frames for reordering, and VP9, AV1 and intra-only codecs none: a frame
# is shown within this many places of where it is decoded. Windows are checked against it.
MAX_REORDER = 16
# A window reaches this many MAX_REORDERs past its target: 2 for the target's rank to be exact, one more
# for the decoder's reordering delay, one more for frame threads (up to 16) holding frames back.
WINDOW_AHEAD = 4


class SampleIndex:
    """An mp4/mov sample table as FFmpeg loads it on opening: every frame's decoding time, keyframe flag
    and bytes, so the frame count needs no demuxing pass and a frame's rank needs only packets near it.

    Frame k is shown within R = MAX_REORDER places of where it is decoded, so demuxing the packets
    from the keyframe at or before k - 3R to k + 4R gives k's exact rank: every packet outside that
    window is decoded (and shown) more than R places away. Each window is checked against that bound.
    """

    def __init__(self, entries: av.index.IndexEntries) -> None:
        self._entries = entries
        self.num_frames = len(entries)

    @classmethod
    def load(
        cls, container: av.container.InputContainer, stream: av.video.stream.VideoStream, file_size: int
    ) -> SampleIndex | None:
        """The index when it provably lists every frame the file holds, else None (demux instead).

        It must be an mp4/mov index of as many entries as the track's sample count, starting on a
        keyframe, in increasing decoding time, none discarded by an edit list, all bytes within the file.
        """
        if not container.format.name.startswith("mov,"):
            return None
        entries = stream.index_entries
        if len(entries) == 0 or len(entries) != stream.frames or not entries[0].is_keyframe:
            return None
        last_dts = entries[0].timestamp - 1
        for entry in entries:  # one pass in plain Python: about 1 us per frame, a tenth of demuxing
            dts = entry.timestamp
            if dts <= last_dts or entry.is_discard or entry.pos + entry.size > file_size:
                return None
            last_dts = dts
        return cls(entries)

    def decode_ranks(
        self,
        container: av.container.InputContainer,
        stream: av.video.stream.VideoStream,
        ranks: list[int],
        convert: Callable[[av.VideoFrame], np.ndarray],
        *,
        reopen: Reopen | None = None,
        decoders: int = 1,
    ) -> dict[int, np.ndarray]:
        """`runtime.seek.decode_ranks` over a frame table of each window's packets: windows side by
        side, or, when the targets make one window (a minute or so of video), its stretches side by side."""

        def decode(decoder: Decoder, window: tuple[int, int], inner: Reopen | None = None) -> dict[int, np.ndarray]:
            first, last = window
            table = self._window_table(*decoder, first, last)
            inside = [rank - first for rank in set(ranks) if first <= rank <= last]
            local = decode_ranks(*decoder, table, inside, convert, reopen=inner, decoders=decoders)
            return {rank + first: image for rank, image in local.items()}

        windows = self._windows(ranks)
        if len(windows) == 1:
            return decode((container, stream), windows[0], reopen)
        return decode_side_by_side(windows, decode, (container, stream), reopen, decoders)

    def _windows(self, ranks: list[int]) -> list[tuple[int, int]]:
        """Decode-position windows [first, last] around the targets, overlapping ones merged."""
        windows: list[tuple[int, int]] = []
        for rank in sorted(set(ranks)):
            first = self._keyframe_at_or_before(max(0, rank - 3 * MAX_REORDER))
            last = min(self.num_frames - 1, rank + WINDOW_AHEAD * MAX_REORDER)
            if windows and first <= windows[-1][1] + SEEK_GAIN_PACKETS:
                windows[-1] = (windows[-1][0], last)
            else:
                windows.append((first, last))
        return windows

    def _keyframe_at_or_before(self, position: int) -> int:
        found = self._entries.search_timestamp(self._entries[position].timestamp, backward=True)
        if found < 0 or found > position:
            raise SeekUnreliable(f"the index has no keyframe before frame {position}")
        return found

    def _window_table(
        self, container: av.container.InputContainer, stream: av.video.stream.VideoStream, first: int, last: int
    ) -> FrameTable:
        """Demux packets `first`..`last` (no decoding), each checked against its index entry.

        mp4 seeks compare presentation times, the index holds decoding times: aimed at the entry's
        decoding time, the seek lands on it or on a keyframe before it, and packets up to it are passed over.
        """
        _seek(container, stream, self._entries[first].timestamp)
        packets = _demux(container, stream)
        start = self._entries[first].timestamp
        pts: list[int] = []
        dts: list[int] = []
        keyframe: list[bool] = []
        for packet in packets:
            if packet.dts is None or packet.dts > start:
                raise SeekUnreliable("the seek went past the window's first packet")
            if packet.dts == start:
                pts.append(packet.pts), dts.append(packet.dts), keyframe.append(packet.is_keyframe)
                break
        for position, packet in zip(range(first + 1, last + 1), packets):
            entry = self._entries[position]
            if packet.pts is None or packet.dts != entry.timestamp or packet.pos != entry.pos:
                raise SeekUnreliable("packets do not follow the sample index")
            pts.append(packet.pts), dts.append(packet.dts), keyframe.append(packet.is_keyframe)
        if len(pts) != last - first + 1:
            raise SeekUnreliable("the file ends before its sample index does")
        table = FrameTable.from_packets(pts, dts, keyframe)
        self._check_reorder(table, first, last)
        return table

    def _check_reorder(self, table: FrameTable, first: int, last: int) -> None:
        """Within the window's core (2R from each cut edge), no frame is shown more than R places from its decoding."""
        rank_of_position = np.empty(len(table), dtype=np.int64)
        rank_of_position[table.order] = np.arange(len(table))
        lo = 0 if first == 0 else 2 * MAX_REORDER
        hi = len(table) if last == self.num_frames - 1 else len(table) - 2 * MAX_REORDER
        core = np.arange(lo, max(lo, hi))
        if len(core) and np.abs(rank_of_position[core] - core).max() > MAX_REORDER:
            raise SeekUnreliable(f"frames are shown more than {MAX_REORDER} places from where they are decoded")
