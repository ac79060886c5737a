"""The two Triton Python-backend models `stam-serve` runs: `NAME` (frames -> logits) and `NAME_video`.

This module is imported by Triton's Python backend stub (`triton_python_backend_utils` exists only
there). Every request gets its own response: a bad one (wrong frame count, corrupt or empty video)
gets a Triton error carrying one line, and the good requests of the same batch are answered.
The video model decodes with the runtime's own clip loader and sends the pixels to `NAME` (Triton's
BLS), so one copy of the model serves both endpoints and Triton's dynamic batcher merges them.
"""

from __future__ import annotations

import json
import tempfile
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils  # provided by the Triton Python backend stub

from runtime import contract, open_model
from runtime.clips import load_clip
from runtime.contract import DimRange
from runtime.errors import ShapeError, StamError, VideoError
from runtime.results import VideoResult
from serve.artifact import describe
from serve.batching import Outcome, check_frames, one_line, run_grouped


def read_parameters(args: dict[str, Any]) -> dict[str, str]:
    """The `parameters` of the model's config.pbtxt, which `stam-serve` filled in."""
    config = json.loads(args["model_config"])
    return {key: value["string_value"] for key, value in config.get("parameters", {}).items()}


def frames_allowed(parameters: dict[str, str]) -> DimRange:
    return DimRange.parse(parameters["frames"], "frames")


def error_response(error: BaseException):
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(one_line(error)))


class TensorModel:
    """`frames` [b, T, 3, 224, 224] -> `logits` [b, C] on the artifact, with per-request checks."""

    def initialize(self, args: dict[str, Any]) -> None:
        parameters = read_parameters(args)
        self.frames = frames_allowed(parameters)
        self.max_batch = int(json.loads(args["model_config"])["max_batch_size"])
        self.model = open_model(parameters["artifact"])

    def execute(self, requests: list) -> list:
        items = [self._input(request) for request in requests]
        outcomes = run_grouped(items, self.model.run, self.max_batch)
        return [self._response(outcome) for outcome in outcomes]

    def _input(self, request) -> Outcome:
        try:
            frames = pb_utils.get_input_tensor_by_name(request, contract.INPUT_NAME).as_numpy()
            return check_frames(frames, self.frames)
        except StamError as error:
            return error

    @staticmethod
    def _response(outcome: Outcome):
        if isinstance(outcome, Exception):
            return error_response(outcome)
        logits = pb_utils.Tensor(contract.OUTPUT_NAME, np.ascontiguousarray(outcome, dtype=np.float32))
        return pb_utils.InferenceResponse(output_tensors=[logits])

    def finalize(self) -> None:
        self.model.close()


class VideoModel:
    """`video` (an encoded file) -> top-k `labels`, `probabilities` and sampling `notes`."""

    def initialize(self, args: dict[str, Any]) -> None:
        parameters = read_parameters(args)
        info = describe(parameters["artifact"])
        self.labels = info.labels
        self.num_classes = info.num_classes
        self.frames = frames_allowed(parameters)
        self.default_frames = int(parameters["default_frames"])
        self.default_topk = int(parameters["topk"])
        self.sampling = parameters["sampling"]
        self.tensor_model = parameters["tensor_model"]
        self.max_batch = int(json.loads(args["model_config"])["max_batch_size"])

    def execute(self, requests: list) -> list:
        decoded = [self._decode(request) for request in requests]
        clips: list[Outcome] = [item[0] if isinstance(item, tuple) else item for item in decoded]
        outcomes = run_grouped(clips, self._infer, self.max_batch)
        return [self._response(request, item, outcome) for request, item, outcome in zip(requests, decoded, outcomes)]

    def _decode(self, request) -> tuple[np.ndarray, list[str]] | Exception:
        """(1, T, 3, 224, 224) pixels and notes, or the error that stops this request alone."""
        try:
            frames = self._scalar(request, "frames", self.default_frames)
            if not self.frames.contains(frames):
                raise ShapeError(f"frames={frames} is outside the model's range {self.frames.min}..{self.frames.max}")
            data = pb_utils.get_input_tensor_by_name(request, "video").as_numpy().reshape(-1)[0]
            if not data:
                raise VideoError("empty video (0 bytes)")
            with tempfile.NamedTemporaryFile(prefix="stam-serve-", suffix=".video") as file:
                file.write(data)
                file.flush()
                try:
                    pixels, notes = load_clip(file.name, frames, self.sampling)
                except VideoError as error:  # the client never saw our temporary file's name
                    raise VideoError(str(error).replace(file.name, "video")) from None
            return pixels[None], notes
        except Exception as error:  # any decoder failure is this request's error, never the server's
            return error

    @staticmethod
    def _scalar(request, name: str, default: int) -> int:
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        return default if tensor is None else int(tensor.as_numpy().reshape(-1)[0])

    def _infer(self, frames: np.ndarray) -> np.ndarray:
        """Logits from the tensor model, through Triton (its dynamic batcher and metrics see every video)."""
        request = pb_utils.InferenceRequest(
            model_name=self.tensor_model,
            requested_output_names=[contract.OUTPUT_NAME],
            inputs=[pb_utils.Tensor(contract.INPUT_NAME, frames)],
        )
        response = request.exec()
        if response.has_error():
            raise StamError(response.error().message())
        return pb_utils.get_output_tensor_by_name(response, contract.OUTPUT_NAME).as_numpy()

    def _response(self, request, decoded, outcome: Outcome):
        if isinstance(outcome, Exception):
            return error_response(outcome)
        topk = max(1, min(self._scalar(request, "topk", self.default_topk), self.num_classes))
        result = VideoResult.from_logits("", outcome[0], self.labels, topk)
        labels = np.array([[p.label.encode() for p in result.predictions]], dtype=np.object_)
        probabilities = np.array([[p.probability for p in result.predictions]], dtype=np.float32)
        notes = np.array([[note.encode() for note in decoded[1]]], dtype=np.object_).reshape(1, -1)
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor("labels", labels),
            pb_utils.Tensor("probabilities", probabilities),
            pb_utils.Tensor("notes", notes),
        ])
