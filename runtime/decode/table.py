"""The frame table: every frame's packet in decode order (timestamps, keyframes) and the presentation
order, and the grouping of wanted frames into decoding passes that seeking follows.

Frame k is the k-th frame in presentation order, as decoding everything from the start counts it.
The table comes from demuxing every packet (runtime.decode.scan) or, for an mp4 whose sample index
lists every frame, from demuxing a window of packets around each target (runtime.decode.index).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# A stretch of targets is decoded in one pass when the next target's keyframe lies at most this many
# packets past where the pass already is: decoding on is then about as cheap as a seek and a restart.
SEEK_GAIN_PACKETS = 8


class SeekUnreliable(Exception):
    """Seeking cannot be trusted for this file (the message says why); decode from the start."""


@dataclass(frozen=True)
class FrameTable:
    """Every frame's packet in decode order: presentation timestamp, keyframe flag; and the presentation order.

    `order[k]` is the decode position of the k-th frame in presentation order.
    """

    pts: npt.NDArray[np.int64]  # (N,) decode order
    dts: npt.NDArray[np.int64]  # (N,) decode order (the pts where a packet has no dts)
    keyframe: npt.NDArray[np.bool_]  # (N,) decode order
    order: npt.NDArray[np.int64]  # (N,) decode positions sorted by pts
    sorted_pts: npt.NDArray[np.int64]  # (N,) pts[order]: the k-th frame's timestamp

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
