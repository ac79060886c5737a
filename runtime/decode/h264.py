"""H.264 bit-stream parsing: which packets hold pictures that no other picture references, so that
seeking can skip them when they are not wanted without changing any other frame's pixels.
"""

from __future__ import annotations

from collections.abc import Callable

import av

from runtime.decode.container import Stream


def non_reference_test(stream: Stream) -> Callable[[av.Packet[Stream]], bool] | None:
    """For H.264 in mp4/Matroska (length-prefixed NAL units): a test of whether a packet is a picture no
    other picture references (every slice has nal_ref_idc 0), so skipping it changes no other frame's
    pixels. None for other codecs and layouts: every packet is decoded."""
    extradata = stream.codec_context.extradata
    if stream.codec_context.name != "h264" or not extradata or len(extradata) < 7 or extradata[0] != 1:
        return None
    length_size = (extradata[4] & 3) + 1

    def is_non_reference(packet: av.Packet[Stream]) -> bool:
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
