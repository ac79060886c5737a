"""Models for the timeline: a split pair (embed each frame once, classify windows of embeddings), or a
whole model that classifies each window from its frames.

`open_window_model(path)` takes `NAME.frames.onnx` (its partner `NAME.temporal.onnx` is found beside
it through `stam.partner`), either part of a pair, or a whole-model artifact. The backend-specific part
is one small class per backend behind `open_part`: a graph with one named input and one named output.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from runtime import contract
from runtime.artifact import ONNX_SUFFIXES, ArtifactInfo, describe
from runtime.backends import open_model
from runtime.backends.base import ITEM_SHAPE, Model
from runtime.contract import DimRange, check_range
from runtime.errors import ArtifactError, ShapeError

# Metadata that both parts of one export share; precision may differ (a calibrated frames part).
SHARED_METADATA = (contract.META_MODEL, contract.META_FRAMES_TRAINED, contract.META_LABELS)


class Part(Protocol):
    """One opened graph of a split pair: metadata, the ranges of its leading dims, and a run."""

    path: str
    metadata: Mapping[str, str]
    ranges: tuple[DimRange | None, ...]  # per leading (dynamic) dim of the input; None = unbounded
    width: int | None  # D of its `embeddings` tensor (output of frames, input of temporal), if fixed

    def run(self, array: NDArray[np.float32]) -> NDArray[np.float32]: ...

    def close(self) -> None: ...


class OrtPart:
    """A part on ONNX Runtime (the same providers and session options as the whole-model backend)."""

    def __init__(self, path: Path, input_name: str, output_name: str, providers: Sequence[str] | None):
        from runtime.backends.ort import open_session
        from runtime.backends.signature import dim_range

        self.path = str(path)
        self._session = open_session(path, providers)
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if [i.name for i in inputs] != [input_name] or output_name not in [o.name for o in outputs]:
            found = f"inputs {[i.name for i in inputs]}, outputs {[o.name for o in outputs]}"
            raise ArtifactError(f"{path}: expected input {input_name!r} and output {output_name!r}; found {found}")
        self._names = (input_name, output_name)
        self.metadata: Mapping[str, str] = dict(self._session.get_modelmeta().custom_metadata_map)
        input_shape = list(inputs[0].shape)
        output_shape = list(next(o.shape for o in outputs if o.name == output_name))
        leading = 1 if input_name == contract.INPUT_NAME else 2  # frames [N, ...]; embeddings [B, T, D]
        self.ranges: tuple[DimRange | None, ...] = tuple(dim_range(dim) for dim in input_shape[:leading])
        width = (output_shape if output_name == contract.EMBEDDINGS_NAME else input_shape)[-1]
        self.width = width if isinstance(width, int) else None

    def run(self, array: NDArray[np.float32]) -> NDArray[np.float32]:
        input_name, output_name = self._names
        (result,) = self._session.run([output_name], {input_name: np.ascontiguousarray(array)})
        return np.asarray(result, dtype=np.float32)

    def close(self) -> None:
        self._session = None


class TrtPart:
    """A part built by `stam-build` into a plan: the runner takes its tensor names from the engine,
    and the sidecar's profile gives the ranges (images for the frames part, batch and frames for the
    temporal part) that requests are checked against before any CUDA call."""

    def __init__(self, path: Path, input_name: str, output_name: str):
        from runtime.backends.trt import TrtRunner

        sidecar = contract.Sidecar.read(path)
        profile = sidecar.profile
        if (profile.input_name, profile.output_name) != (input_name, output_name):
            raise ArtifactError(
                f"{path}: expected a plan of input {input_name!r} and output {output_name!r}; "
                f"its sidecar says {profile.input_name!r} -> {profile.output_name!r}"
            )
        self.path = str(path)
        self.metadata: Mapping[str, str] = dict(sidecar.metadata)
        self.ranges: tuple[DimRange | None, ...] = tuple(allowed for _, allowed in profile.dims())
        self.width = profile.embed_dim or None  # recorded for the temporal part's input
        self._runner = TrtRunner(path, sidecar).activate()

    def run(self, array: NDArray[np.float32]) -> NDArray[np.float32]:
        return self._runner.infer(np.ascontiguousarray(array, dtype=np.float32))

    def close(self) -> None:
        self._runner.deactivate()


def open_part(path: Path, input_name: str, output_name: str, providers: Sequence[str] | None) -> Part:
    """The backend for one part, by suffix: ONNX Runtime for `.onnx`, TensorRT for plans."""
    if path.suffix.lower() in ONNX_SUFFIXES:
        return OrtPart(path, input_name, output_name, providers)
    if providers:
        raise ArtifactError(f"{path}: providers apply to ONNX Runtime; a TensorRT plan runs on TensorRT only")
    return TrtPart(path, input_name, output_name)


class WindowModel(contract.MetadataFacts, abc.ABC):
    """What the timeline needs: per-frame features, and logits for windows of them.

    A split pair's features are embeddings (D,), computed once per frame; a whole model's are the
    preprocessed frames themselves (3, 224, 224), and every window runs the whole network.
    """

    embeds_once: bool
    path: str
    metadata: dict[str, str]
    window_range: DimRange | None  # frame counts the classifier accepts
    batch_range: DimRange | None  # windows per classify call

    def check_window(self, frames: int) -> None:
        """Refuse a window length the classifier cannot take, before any decoding."""
        try:
            check_range("frames", frames, self.window_range)
        except ShapeError as error:
            raise ShapeError(f"{self.path}: --window {frames} does not fit: {error}") from None

    @abc.abstractmethod
    def embed(self, frames: NDArray[np.float32]) -> NDArray[np.float32]:
        """Preprocessed frames (N, 3, 224, 224) float32 -> per-frame features (N, ...)."""

    @abc.abstractmethod
    def classify(self, windows: NDArray[np.float32]) -> NDArray[np.float32]:
        """Windows of features (B, T, ...) -> logits (B, C)."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> WindowModel:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def check_frames(frames: NDArray[Any]) -> None:
    if frames.dtype != np.float32 or frames.ndim != 4 or frames.shape[1:] != ITEM_SHAPE:
        raise ShapeError(
            f"frames must be float32 (N, {', '.join(map(str, ITEM_SHAPE))}), got {frames.dtype} {tuple(frames.shape)}"
        )


class SplitPair(WindowModel):
    """The frames part and the temporal part of one `stam-export --split`."""

    embeds_once = True

    def __init__(self, frames_path: Path, temporal_path: Path, providers: Sequence[str] | None = None):
        self.frames = open_part(frames_path, contract.INPUT_NAME, contract.EMBEDDINGS_NAME, providers)
        try:
            self.temporal = open_part(temporal_path, contract.EMBEDDINGS_NAME, contract.OUTPUT_NAME, providers)
        except ArtifactError:
            self.frames.close()
            raise
        self.path = str(frames_path)
        self.metadata = dict(self.temporal.metadata)
        check_pair(self.frames, self.temporal)
        self.frames_range = self.frames.ranges[0]
        self.batch_range, self.window_range = self.temporal.ranges

    def embed(self, frames: NDArray[np.float32]) -> NDArray[np.float32]:
        check_frames(frames)
        limit = self.frames_range.max if self.frames_range is not None else len(frames)
        chunks = [self.frames.run(frames[i : i + limit]) for i in range(0, len(frames), max(1, limit))]
        return np.concatenate(chunks) if len(chunks) > 1 else chunks[0]

    def classify(self, windows: NDArray[np.float32]) -> NDArray[np.float32]:
        check_range("batch", windows.shape[0], self.batch_range)
        self.check_window(windows.shape[1])
        return self.temporal.run(windows)

    def close(self) -> None:
        self.frames.close()
        self.temporal.close()


def check_pair(frames: Part, temporal: Part) -> None:
    """Both parts must come from one export: same model, trained T and labels; embedding widths agree."""
    for part, expected in ((frames, contract.PART_FRAMES), (temporal, contract.PART_TEMPORAL)):
        contract.check_metadata(part.metadata, part.path)
        found = part.metadata.get(contract.META_PART)
        if found != expected:
            raise ArtifactError(
                f"{part.path}: expected the {expected} part of a split pair, found {found or 'a whole model'}"
            )
    differing = [key for key in SHARED_METADATA if frames.metadata.get(key) != temporal.metadata.get(key)]
    if differing:
        raise ArtifactError(f"{frames.path} and {temporal.path} are not one pair (their {', '.join(differing)} differ)")
    if None not in (frames.width, temporal.width) and frames.width != temporal.width:
        raise ArtifactError(
            f"{frames.path} and {temporal.path}: embedding widths differ ({frames.width} and {temporal.width})"
        )


class WholeModelWindows(WindowModel):
    """A whole-model artifact on the timeline: no cache, every window runs all T frames."""

    embeds_once = False

    def __init__(self, model: Model):
        self.model = model
        self.path = model.path
        self.metadata = model.metadata
        self.window_range, self.batch_range = model.frames_range, model.batch_range

    def check_window(self, frames: int) -> None:
        try:
            self.model.check_request(self.batch_range.min if self.batch_range else 1, frames)
        except ShapeError as error:
            raise ShapeError(f"{self.path}: --window {frames} does not fit: {error}") from None

    def embed(self, frames: NDArray[np.float32]) -> NDArray[np.float32]:
        check_frames(frames)
        return frames

    def classify(self, windows: NDArray[np.float32]) -> NDArray[np.float32]:
        return self.model.run(windows)

    def close(self) -> None:
        self.model.close()


def partner_paths(info: ArtifactInfo) -> tuple[Path, Path]:
    """(frames part, temporal part) for either part of a pair; the partner is looked up beside it."""
    if info.partner is None:
        raise ArtifactError(f"{info.path}: the {info.part} part does not name its partner ({contract.META_PARTNER})")
    if not info.partner.is_file():
        raise ArtifactError(
            f"{info.path}: its partner {info.metadata[contract.META_PARTNER]} is not beside it "
            "(export both with stam-export --split)"
        )
    return (info.path, info.partner) if info.part == contract.PART_FRAMES else (info.partner, info.path)


def open_window_model(path: str | Path, *, providers: Sequence[str] | None = None) -> WindowModel:
    """A split pair from either of its parts, else the whole model (each window runs whole)."""
    info = describe(path)
    if info.is_split:
        return SplitPair(*partner_paths(info), providers=providers)
    return WholeModelWindows(open_model(path, providers=providers))
