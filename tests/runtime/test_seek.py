"""runtime.seek: the frame table's order and lookups, and how targets are grouped into decoding passes.

Decoding through seeks, on real files of every kind, is tested in test_video.py against decoding everything.
"""

from __future__ import annotations

import av
import pytest

from runtime import seek
from runtime.seek import SEEK_GAIN_PACKETS, FrameTable, SeekUnreliable, plan_stretches


def test_frame_table_orders_by_timestamp_and_refuses_repeats():
    table = FrameTable.from_packets([0, 3, 1, 2, 4], [-1, 0, 1, 2, 3], [True, False, False, False, True])
    assert table.order.tolist() == [0, 2, 3, 1, 4] and table.rank_of(1) == 3
    assert table.keyframe_before(3) == 0 and table.keyframe_before(4) == 4
    with pytest.raises(SeekUnreliable, match="share a timestamp"):
        FrameTable.from_packets([0, 1, 1], [0, 1, 2], [True, False, False])


def test_nearby_targets_share_one_pass():
    keyframe = [i % 10 == 0 for i in range(100)]
    table = FrameTable.from_packets(list(range(100)), list(range(100)), keyframe)
    stretches = plan_stretches(table, [5, 8, 12, 55, 57, 99])
    assert [(s.start, s.ranks) for s in stretches] == [(0, [5, 8, 12]), (50, [55, 57]), (90, [99])]


def test_a_target_past_the_gain_starts_a_new_pass():
    table = FrameTable.from_packets(list(range(40)), list(range(40)), [i % 10 == 0 for i in range(40)])
    assert SEEK_GAIN_PACKETS < 10  # a keyframe 10 packets past the last target is worth a seek
    assert [s.start for s in plan_stretches(table, [1, 11])] == [0, 10]
    assert [s.start for s in plan_stretches(table, [8, 11])] == [0]  # keyframe 10 is 2 packets past 8


def test_a_frame_shown_before_its_keyframe_starts_from_the_one_before():
    """Open GOP: decode position 5 is a keyframe shown at 7; packet 6 is a leading picture shown at 5."""
    pts = [0, 2, 1, 4, 3, 7, 5, 6, 8]
    keyframe = [True, False, False, False, False, True, False, False, False]
    table = FrameTable.from_packets(pts, pts, keyframe)
    assert table.keyframe_before(6) == 0 and table.keyframe_before(7) == 0 and table.keyframe_before(8) == 5
    assert table.position_of_pts(5) == 6 and table.rank_of_pts(9) is None


def test_a_demuxer_that_cannot_seek_is_a_surprise_not_a_crash():
    class Unseekable:
        def seek(self, *args, **kwargs):
            raise av.error.FFmpegError(38, "Function not implemented")

    with pytest.raises(SeekUnreliable, match=r"cannot seek \("):
        seek._seek(Unseekable(), None, 0)
