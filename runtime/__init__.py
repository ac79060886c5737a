"""The torch-free runtime: read and sample videos, preprocess them, and run STAM artifacts.

`__all__` is the supported API; other packages (export, calibration, batch, serve, benchmarks) and
users import these names from `runtime`, or from one of the documented submodules below, and
never from a command-line module (`runtime.infer`) or a private name.

Documented submodules:

- `runtime.artifact`: `describe(path)`, the one reader of an artifact's facts.
- `runtime.backends`: `open_model`, `resolve_backend`, `BACKENDS`; `runtime.backends.ort` (`OrtModel`),
  `runtime.backends.openvino`
  (`OpenVinoSettings`), `runtime.backends.trt` and `runtime.backends.cuda` (the TensorRT runner
  and its CUDA helpers, which the plan builder shares).
- `runtime.contract`: the I/O, metadata, profile and tolerance contract of every artifact.
- `runtime.decode`: reading, sampling, seeking and streaming videos through one packet -> frame loop.
- `runtime.preprocess`, `runtime.batching`, `runtime.pipeline`, `runtime.clips`: pixels and batches.
- `runtime.options`: the command-line options every command shares, into `RunSettings`.
- `runtime.live`: `LiveRunner` and its records and sources (`stam-live` is its command line).
- `runtime.windows`: the window schedule, ring buffer and top-k shared by the timeline and live sources.
- `runtime.limits`: `Limits` and the defaults of each kind of caller (CLI, batch, server).
- `runtime.errors`, `runtime.results`, `runtime.labels`, `runtime.progress`, `runtime.cpu`,
  `runtime.onnx_io`, `runtime.split`, `runtime.timeline`.

`import runtime` loads neither ONNX Runtime, nor OpenVINO, nor TensorRT: each backend's library is
imported when a model is opened on it.
"""

from __future__ import annotations

from runtime.artifact import ArtifactInfo, describe
from runtime.backends import open_model
from runtime.backends.base import Model
from runtime.backends.openvino import OpenVinoSettings
from runtime.clips import load_clip
from runtime.decode import Clip, read_clip, read_frames
from runtime.errors import ArtifactError, MissingDependencyError, ShapeError, StamError, VideoError
from runtime.limits import LimitExceeded, Limits
from runtime.live import EventRecord, LiveOptions, LiveRunner, Source, WindowRecord
from runtime.options import RunSettings
from runtime.pipeline import Outcome, run_clips
from runtime.results import Prediction, VideoResult
from runtime.split import WindowModel, open_window_model
from runtime.timeline import Timeline, TimelineOptions, WindowResult

__all__ = [
    "ArtifactError",
    "ArtifactInfo",
    "Clip",
    "EventRecord",
    "LimitExceeded",
    "Limits",
    "LiveOptions",
    "LiveRunner",
    "MissingDependencyError",
    "Model",
    "OpenVinoSettings",
    "Outcome",
    "Prediction",
    "RunSettings",
    "ShapeError",
    "Source",
    "StamError",
    "Timeline",
    "TimelineOptions",
    "VideoError",
    "VideoResult",
    "WindowModel",
    "WindowRecord",
    "WindowResult",
    "describe",
    "load_clip",
    "open_model",
    "open_window_model",
    "read_clip",
    "read_frames",
    "run_clips",
]
