"""The mp4 sample index instead of a demuxing pass: an mp4/mov lists every frame's decoding time,
keyframe flag and bytes, so a long video's frame count needs no pass over it and a frame's rank
needs only the packets near it.
"""

from __future__ import annotations

from dataclasses import replace

import av
import numpy as np

from runtime.decode.container import Container, Decoder, Stream
from runtime.decode.loop import Guard
from runtime.decode.seek import Convert, DecoderPool, decode_ranks, demux_until_error, seek_to
from runtime.decode.side_by_side import Images, Reopen, decode_side_by_side
from runtime.decode.table import SEEK_GAIN_PACKETS, FrameTable, SeekUnreliable

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
    def load(cls, container: Container, stream: Stream, file_size: int) -> SampleIndex | None:
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
        self, container: Container, stream: Stream, ranks: list[int], convert: Convert, pool: DecoderPool | None = None
    ) -> Images:
        """`runtime.decode.seek.decode_ranks` over a frame table of each window's packets: windows side
        by side, or, when the targets make one window (a minute or so of video), its stretches side by side."""
        pool = pool or DecoderPool(Guard(container.name))

        def decode(decoder: Decoder, window: tuple[int, int], inner: Reopen | None = None) -> Images:
            first, last = window
            table = self._window_table(*decoder, first, last, pool.guard)
            inside = [rank - first for rank in set(ranks) if first <= rank <= last]
            local = decode_ranks(*decoder, table, inside, convert, replace(pool, reopen=inner))
            return {rank + first: image for rank, image in local.items()}

        windows = self._windows(ranks)
        if len(windows) == 1:
            return decode((container, stream), windows[0], pool.reopen)
        return decode_side_by_side(windows, decode, (container, stream), pool.reopen, pool.size)

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

    def _window_table(self, container: Container, stream: Stream, first: int, last: int, guard: Guard) -> FrameTable:
        """Demux packets `first`..`last` (no decoding), each checked against its index entry.

        mp4 seeks compare presentation times, the index holds decoding times: aimed at the entry's
        decoding time, the seek lands on it or on a keyframe before it, and packets up to it are passed over.
        """
        seek_to(container, stream, self._entries[first].timestamp)
        packets = demux_until_error(container, stream, guard)
        start = self._entries[first].timestamp
        pts: list[int] = []
        dts: list[int] = []
        keyframe: list[bool] = []
        for packet in packets:
            if packet.dts is None or packet.dts > start:
                raise SeekUnreliable("the seek went past the window's first packet")
            if packet.dts == start and packet.pts is not None:
                pts.append(packet.pts)
                dts.append(packet.dts)
                keyframe.append(packet.is_keyframe)
                break
        for position, packet in zip(range(first + 1, last + 1), packets):
            entry = self._entries[position]
            if packet.pts is None or packet.dts != entry.timestamp or packet.pos != entry.pos:
                raise SeekUnreliable("packets do not follow the sample index")
            pts.append(packet.pts)
            dts.append(entry.timestamp)
            keyframe.append(packet.is_keyframe)
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
