"""The two Triton Python-backend models `stam-serve` runs: `NAME` (frames -> logits) and `NAME_video`.

This module is imported by Triton's Python backend stub (`triton_python_backend_utils` exists only
there). Every request gets its own response: a bad one (wrong frame count, corrupt or empty video)
gets a Triton error carrying one line, and the good requests of the same batch are answered.
The video model decodes with the runtime's own clip loader and runs its own copy of the artifact:
each of its instances (`--decode-workers`) decodes one batch while another runs the model. It does
not call `NAME` through Triton (BLS): on SIGTERM Triton refuses every new request, inner ones too,
so a video accepted before the signal could not finish.
"""

from __future__ import annotations

import ctypes
import json
import tempfile
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils  # provided by the Triton Python backend stub

from runtime import contract, open_model
from runtime.clips import load_clip
from runtime.contract import DimRange
from runtime.decode import decoders_per_video
from runtime.errors import ShapeError, StamError, VideoError, detached
from runtime.results import VideoResult
from serve.batching import Outcome, check_frames, one_line, run_grouped
from serve.config import limits_from_parameter


def _malloc_trim() -> Any:
    """glibc's `malloc_trim`, or None under another C library."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


MALLOC_TRIM = _malloc_trim()


def return_free_memory() -> None:
    """Hand the pages that glibc holds free back to the system.

    A decode allocates buffers of every size, from packets to frames of whatever size an upload
    declares, on the decoder's threads; glibc keeps what they free in per-thread arenas, scattered
    among live blocks, so a long-lived worker's resident memory creeps up with the variety of the
    uploads it has seen. `malloc_trim(0)` releases the free pages of every arena, once per batch of
    videos: little next to decoding them.
    """
    if MALLOC_TRIM is not None:
        MALLOC_TRIM(0)


def read_parameters(args: dict[str, Any]) -> dict[str, str]:
    """The `parameters` of the model's config.pbtxt, which `stam-serve` filled in."""
    config = json.loads(args["model_config"])
    return {key: value["string_value"] for key, value in config.get("parameters", {}).items()}


def frames_allowed(parameters: dict[str, str]) -> DimRange:
    return DimRange.parse(parameters["frames"], "frames")


def error_response(error: BaseException):
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(one_line(error)))


class ServedArtifact:
    """What both models hold: the opened artifact, the frame range served and Triton's batch bound."""

    def initialize(self, args: dict[str, Any]) -> None:
        self.parameters = read_parameters(args)
        self.frames = frames_allowed(self.parameters)
        self.max_batch = int(json.loads(args["model_config"])["max_batch_size"])
        self.model = open_model(
            self.parameters["artifact"], backend=self.parameters["backend"], precision=self.parameters["precision"]
        )

    def finalize(self) -> None:
        self.model.close()


class TensorModel(ServedArtifact):
    """`frames` [b, T, 3, 224, 224] -> `logits` [b, C] on the artifact, with per-request checks."""

    def execute(self, requests: list) -> list:
        items = [self._input(request) for request in requests]
        outcomes = run_grouped(items, self.model.run, self.max_batch)
        return [self._response(outcome) for outcome in outcomes]

    def _input(self, request) -> Outcome:
        try:
            frames = pb_utils.get_input_tensor_by_name(request, contract.INPUT_NAME).as_numpy()
            return check_frames(frames, self.frames)
        except StamError as error:
            return detached(error)

    @staticmethod
    def _response(outcome: Outcome):
        if isinstance(outcome, Exception):
            return error_response(outcome)
        logits = pb_utils.Tensor(contract.OUTPUT_NAME, np.ascontiguousarray(outcome, dtype=np.float32))
        return pb_utils.InferenceResponse(output_tensors=[logits])


class VideoModel(ServedArtifact):
    """`video` (an encoded file) -> top-k `labels`, `probabilities` and sampling `notes`."""

    def initialize(self, args: dict[str, Any]) -> None:
        super().initialize(args)
        self.default_frames = int(self.parameters["default_frames"])
        self.default_topk = int(self.parameters["topk"])
        self.sampling = self.parameters["sampling"]
        self.limits = limits_from_parameter(self.parameters["limits"])
        # The decode workers share the CPUs: each video seeks on its share, so the decoders of all
        # workers together (and the frame buffers each one holds) never outnumber the CPUs.
        workers = sum(group.get("count", 1) for group in json.loads(args["model_config"]).get("instance_group", []))
        self.decoders = decoders_per_video(max(1, workers))

    def execute(self, requests: list) -> list:
        decoded = [self._decode(request) for request in requests]
        clips: list[Outcome] = [item[0] if isinstance(item, tuple) else item for item in decoded]
        outcomes = run_grouped(clips, self.model.run, self.max_batch)
        responses = [
            self._response(request, item, outcome) for request, item, outcome in zip(requests, decoded, outcomes)
        ]
        del decoded, clips, outcomes  # the batch's pixels, freed before the trim
        return_free_memory()
        return responses

    def _decode(self, request) -> tuple[np.ndarray, list[str]] | Exception:
        """(1, T, 3, 224, 224) pixels and notes, or the error that stops this request alone."""
        try:
            frames = self._scalar(request, "frames", self.default_frames)
            if not self.frames.contains(frames):
                raise ShapeError(f"frames={frames} is outside the model's range {self.frames.min}..{self.frames.max}")
            data = pb_utils.get_input_tensor_by_name(request, "video").as_numpy().reshape(-1)[0]
            self.limits.check_bytes(len(data), "video")  # before the upload is written or decoded
            if not data:
                raise VideoError("empty video (0 bytes)")
            with tempfile.NamedTemporaryFile(prefix="stam-serve-", suffix=".video") as file:
                file.write(data)
                file.flush()
                del data  # the file holds it now: one copy per video being decoded, not two
                try:
                    pixels, notes = load_clip(
                        file.name, frames, self.sampling, decoders=self.decoders, limits=self.limits
                    )
                except VideoError as error:  # the client never saw our temporary file's name
                    raise VideoError(str(error).replace(file.name, "video")) from None
            return pixels[None], notes
        except Exception as error:  # any decoder failure is this request's error, never the server's
            return detached(error)

    @staticmethod
    def _scalar(request, name: str, default: int) -> int:
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        return default if tensor is None else int(tensor.as_numpy().reshape(-1)[0])

    def _response(self, request, decoded, outcome: Outcome):
        if isinstance(outcome, Exception):
            return error_response(outcome)
        topk = max(1, min(self._scalar(request, "topk", self.default_topk), len(outcome[0])))
        result = VideoResult.from_logits("", outcome[0], self.model.labels, topk)
        labels = np.array([[p.label.encode() for p in result.predictions]], dtype=np.object_)
        probabilities = np.array([[p.probability for p in result.predictions]], dtype=np.float32)
        notes = np.array([[note.encode() for note in decoded[1]]], dtype=np.object_).reshape(1, -1)
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor("labels", labels),
                pb_utils.Tensor("probabilities", probabilities),
                pb_utils.Tensor("notes", notes),
            ]
        )
