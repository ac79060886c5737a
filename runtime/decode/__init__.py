"""Video decoding for the runtime: opening, sampling, seeking, whole-file reading, streaming at F per
second and side-by-side decoders, all through one packet -> frame loop with the limits checked inside.

Modules: `container` (open a file/URL/device, pick the video stream, check what it declares, set
the decoder's threads), `loop` (the one packet -> frame loop and its error policies), `sampling`
(which frame indices), `scan` (the demuxing pass: frame count, rate, frame table), `table` (the
frame table and the grouping of targets into passes), `index` (the mp4 sample index), `h264`
(non-reference pictures), `seek` (exact frames by seeking), `side_by_side` (several decoders on one
video), `read` (a clip from a file), `stream` (frames at k/F for long videos).
"""

from runtime.decode.container import (
    MAX_DECODER_THREADS,
    THREAD_TYPES,
    VIDEO_SUFFIXES,
    list_videos,
    open_container,
)
from runtime.decode.loop import DecodedFrame, DecodeFailed, Guard, Policy, frames, upright_rgb
from runtime.decode.read import Clip, read_clip, read_clip_without_seeking, read_frames
from runtime.decode.sampling import REFERENCE_SECONDS, SAMPLING_MODES, SamplingWarning, sample_indices
from runtime.decode.scan import StreamInfo, probe
from runtime.decode.side_by_side import decoders_per_video
from runtime.decode.stream import FrameStream, TimedFrame

__all__ = [
    "MAX_DECODER_THREADS",
    "REFERENCE_SECONDS",
    "SAMPLING_MODES",
    "THREAD_TYPES",
    "VIDEO_SUFFIXES",
    "Clip",
    "DecodeFailed",
    "DecodedFrame",
    "FrameStream",
    "Guard",
    "Policy",
    "SamplingWarning",
    "StreamInfo",
    "TimedFrame",
    "decoders_per_video",
    "frames",
    "list_videos",
    "open_container",
    "probe",
    "read_clip",
    "read_clip_without_seeking",
    "read_frames",
    "sample_indices",
    "upright_rgb",
]
