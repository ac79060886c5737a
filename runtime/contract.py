"""The I/O, metadata and engine-profile contract that every STAM artifact keeps (docs/architecture.md, "Artifacts").

Declared once here so that the exporter, the TensorRT builder, the runtime backends and the
validators all read the same names; `runtime/` owns it because `export/` may import `runtime/`
but not the other way round.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runtime.errors import ArtifactError, ShapeError

INPUT_NAME = "frames"
OUTPUT_NAME = "logits"
BATCH_DIM = "batch"
FRAMES_DIM = "frames"
CHANNELS = 3
INPUT_SIZE = 224
RESIZE_SHORT = 256
OPSET = 18


META_MODEL = "stam.model"
META_FRAMES_TRAINED = "stam.frames_trained"
META_INPUT_SIZE = "stam.input_size"
META_RESIZE_SHORT = "stam.resize_short"
META_PRECISION = "stam.precision"
META_LABELS = "stam.labels"
META_EXPORTER_VERSION = "stam.exporter_version"
# Optional keys. `stam.random_weights` = "1" marks an export without a checkpoint (labels meaningless).
META_RANDOM_WEIGHTS = "stam.random_weights"
# Split artifacts (long videos): `stam.part` is "frames" (per-frame encoder, frames [N, 3, H, W] ->
# embeddings [N, D]) or "temporal" (embeddings [B, T, D] -> logits [B, C]); `stam.partner` is the
# other part's file name, found beside it.
META_PART = "stam.part"
META_PARTNER = "stam.partner"
PART_FRAMES = "frames"
PART_TEMPORAL = "temporal"
EMBEDDINGS_NAME = "embeddings"
REQUIRED_METADATA = (
    META_MODEL,
    META_FRAMES_TRAINED,
    META_INPUT_SIZE,
    META_RESIZE_SHORT,
    META_PRECISION,
    META_LABELS,
    META_EXPORTER_VERSION,
)
PRECISIONS = ("fp32", "fp16", "int8", "fp8")
# The most frames per video a request may ask of a model whose graph does not bound them (an ONNX
# model; a plan's profile decides for plans), and the top of a default engine profile: 128 frames
# of one video are 77 MB of float32 pixels, and a request for millions must be refused, not allocated.
MAX_FRAMES = 128


@dataclass(frozen=True)
class Tolerance:
    """How far one precision's logits may be from the fp32 reference: `absolute + relative * scale`.

    `scale` is the largest |logit| of the reference on the same input: reduced-precision errors grow
    with the logits, so a fixed absolute bound would be too loose for small heads and too tight for
    large ones. Top-1 must agree at every precision.
    """

    absolute: float
    relative: float = 0.0

    def bound(self, scale: float = 1.0) -> float:
        return self.absolute + self.relative * max(1.0, scale)


# The one table of parity tolerances, read by the exporter's check, `stam-build --compare`, the
# backends' tests and the accuracy gates. fp32 is a hard contract; the others are measured bounds
# (docs/export.md, "Verification"; docs/calibration.md). `tf32` is an fp32 engine whose matmuls TensorRT ran in TF32.
TOLERANCES = {
    "fp32": Tolerance(1e-4),
    "tf32": Tolerance(0.0, 5e-3),
    "bf16": Tolerance(0.0, 4e-2),
    "fp16": Tolerance(0.0, 2e-2),
    "int8": Tolerance(0.0, 1e-1),
    "fp8": Tolerance(0.0, 2e-1),
}
FP32_MAX_ABS_DIFF = TOLERANCES["fp32"].absolute

# The accuracy gates beside the logit tolerances (tests/calibration/test_int8_gate.py,
# tests/benchmarks/test_accuracy_gates.py, `benchmarks.accuracy_table`): the most top-1 a precision
# may lose against fp32 on the held-out motion videos (bf16 is held to fp16's bound; INT8 to one
# point), and the seed of the videos INT8 is calibrated on (neither the training nor the held-out seed).
TOP1_MAX_DROP = {"fp16": 0.005, "bf16": 0.005, "int8": 0.01}
CALIBRATION_SEED = 4242


def tolerance(precision: str, scale: float = 1.0) -> float:
    """Max abs logit difference allowed at `precision` against the fp32 reference whose max |logit| is `scale`."""
    if precision not in TOLERANCES:
        raise ValueError(f"no tolerance for precision {precision!r} (known: {', '.join(TOLERANCES)})")
    return TOLERANCES[precision].bound(scale)


def input_shape(batch: int, frames: int) -> tuple[int, int, int, int, int]:
    """The concrete input shape of one request."""
    return (batch, frames, CHANNELS, INPUT_SIZE, INPUT_SIZE)


def trained_frames_range(frames_trained: int) -> tuple[int, int]:
    """Frame counts around T_trained where accuracy is measured (interpolated position embeddings);
    the engine builder's default profile stays inside it too."""
    return max(1, frames_trained // 4), 4 * frames_trained


def labels_from_metadata(metadata: Mapping[str, str]) -> list[str]:
    """Labels are stored one per line; an empty entry means the exporter was given none."""
    text = metadata.get(META_LABELS, "")
    return text.split("\n") if text else []


class MetadataFacts:
    """What every artifact's `stam.*` metadata tells, for classes that hold it as `metadata`."""

    metadata: Mapping[str, str]

    @property
    def labels(self) -> list[str]:
        return labels_from_metadata(self.metadata)

    @property
    def frames_trained(self) -> int:
        return int(self.metadata[META_FRAMES_TRAINED])


def check_metadata(metadata: Mapping[str, str], source: str) -> None:
    """Raise one clear error naming every required key the artifact lacks."""
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise ArtifactError(f"{source}: not a stam-deploy artifact (metadata lacks {', '.join(missing)})")


@dataclass(frozen=True)
class DimRange:
    """min <= opt <= max of one dynamic dimension, as a TensorRT optimization profile holds it."""

    min: int
    opt: int
    max: int

    @classmethod
    def parse(cls, text: str, name: str) -> DimRange:
        """Parse `MIN:OPT:MAX` (or a single value N, meaning N:N:N) from the command line."""
        parts = text.split(":")
        if len(parts) == 1:
            parts = parts * 3
        try:
            values = [int(part) for part in parts]
        except ValueError:
            values = []
        if len(values) != 3:
            raise ShapeError(f"--{name} must be MIN:OPT:MAX or N, got {text!r}")
        result = cls(*values)
        result.validate(name)
        return result

    def validate(self, name: str) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise ShapeError(f"{name} range must satisfy 1 <= min <= opt <= max, got {self}")

    def contains(self, value: int) -> bool:
        return self.min <= value <= self.max

    def __str__(self) -> str:
        return f"{self.min}:{self.opt}:{self.max}"


def describe_range(allowed: DimRange | None) -> str:
    return f"{allowed.min}..{allowed.max}" if allowed is not None else "1..unbounded"


def check_range(
    name: str, value: int, allowed: DimRange | None, owner: str = "the model's range", hint: str = ""
) -> None:
    """The one range check of every request (a model's batch/frames, an engine profile's dims):
    refuse a value below 1 or outside `allowed`, naming the dimension, the range and what to do."""
    if value >= 1 and (allowed is None or allowed.contains(value)):
        return
    raise ShapeError(f"{name}={value} is outside {owner} {describe_range(allowed)}{f' ({hint})' if hint else ''}")


# What a plan computes: the whole model (frames -> logits) or one part of a split pair.
PART_WHOLE = ""
PART_IO = {
    PART_WHOLE: (INPUT_NAME, OUTPUT_NAME),
    PART_FRAMES: (INPUT_NAME, EMBEDDINGS_NAME),
    PART_TEMPORAL: (EMBEDDINGS_NAME, OUTPUT_NAME),
}
IMAGE_SHAPE = (CHANNELS, INPUT_SIZE, INPUT_SIZE)


@dataclass(frozen=True)
class Profile:
    """The one optimization profile of a plan, over the dynamic dims of its input.

    The whole model and the temporal part take (batch, frames, ...) and range over both; the frames
    part takes single images (N, 3, 224, 224), N ranging over 1..batch.max * frames.max (every frame
    of the largest request), tuned for batch.opt * frames.opt. `embed_dim` is D of the temporal part.
    """

    batch: DimRange
    frames: DimRange
    part: str = PART_WHOLE
    embed_dim: int = 0

    def __post_init__(self) -> None:
        if self.part not in PART_IO:
            raise ArtifactError(f"unknown model part {self.part!r} (known: frames, temporal, or whole)")

    @property
    def input_name(self) -> str:
        return PART_IO[self.part][0]

    @property
    def output_name(self) -> str:
        return PART_IO[self.part][1]

    @property
    def images(self) -> DimRange:
        """The frames part's N: one image up to every frame of the largest request."""
        largest = self.batch.max * self.frames.max
        return DimRange(1, min(largest, self.batch.opt * self.frames.opt), largest)

    def dims(self) -> tuple[tuple[str, DimRange], ...]:
        """(name, range) of each dynamic leading input dim, in order."""
        if self.part == PART_FRAMES:
            return (("images", self.images),)
        return (("batch", self.batch), ("frames", self.frames))

    def fixed_dims(self) -> tuple[int, ...]:
        """The input dims after the dynamic ones."""
        return (self.embed_dim,) if self.part == PART_TEMPORAL else IMAGE_SHAPE

    def check(self, batch: int, frames: int) -> None:
        """Refuse a (batch, frames) request before any device work (whole model and temporal part)."""
        self.check_shape((batch, frames, *self.fixed_dims()))

    def check_shape(self, shape: tuple[int, ...]) -> None:
        """Refuse an input of the wrong rank, fixed dims or dynamic dims, naming what is wrong."""
        dynamic = self.dims()
        expected = len(dynamic) + len(self.fixed_dims())
        if len(shape) != expected or tuple(shape[len(dynamic) :]) != self.fixed_dims():
            names = ", ".join([name for name, _ in dynamic] + [str(d) for d in self.fixed_dims()])
            raise ShapeError(f"{self.input_name} must have shape ({names}), got {tuple(shape)}")
        for (name, allowed), value in zip(dynamic, shape):
            check_range(
                name,
                int(value),
                allowed,
                "the engine's profile",
                f"rebuild with stam-build --{name} MIN:OPT:MAX"
                if name != "images"
                else "rebuild with a larger stam-build --batch or --frames",
            )

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """min/opt/max input shapes, in the form the TensorRT profile API takes."""
        return {
            key: tuple(getattr(allowed, key) for _, allowed in self.dims()) + self.fixed_dims()
            for key in ("min", "opt", "max")
        }

    def max_rows(self) -> int:
        """The largest leading output dim: videos (whole, temporal) or images (frames part)."""
        return self.dims()[0][1].max

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "batch": list(asdict(self.batch).values()),
            "frames": list(asdict(self.frames).values()),
        }
        if self.part != PART_WHOLE:
            data.update(part=self.part, embed_dim=self.embed_dim)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        return cls(
            batch=DimRange(*data["batch"]),
            frames=DimRange(*data["frames"]),
            part=data.get("part", PART_WHOLE),
            embed_dim=int(data.get("embed_dim", 0)),
        )


# `stam-build --target` -> the Python module of the TensorRT library that builds and runs its plans.
TRT_TARGETS = {"tensorrt": "tensorrt", "rtx": "tensorrt_rtx"}


@dataclass
class Sidecar:
    """`NAME.plan.json`: what the runtime must know about a plan without deserializing it.

    `target` names the library (TRT_TARGETS) and `tensorrt_version` that library's version: a plan
    opens only with the library and version that built it. Sidecars without `target` predate
    TensorRT-RTX and are `tensorrt` plans.
    """

    metadata: dict[str, str]
    profile: Profile
    precision: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    build: dict[str, Any] = field(default_factory=dict)
    target: str = "tensorrt"

    @property
    def library(self) -> str:
        return TRT_TARGETS[self.target]

    @staticmethod
    def path_for(plan_path: str | Path) -> Path:
        return Path(f"{plan_path}.json")

    def to_json(self) -> str:
        data = asdict(self)
        data["profile"] = self.profile.to_dict()
        return json.dumps(data, indent=2, sort_keys=True)

    def write(self, plan_path: str | Path) -> Path:
        path = self.path_for(plan_path)
        write_atomic(path, (self.to_json() + "\n").encode())
        return path

    @classmethod
    def read(cls, plan_path: str | Path) -> Sidecar:
        """Read and validate the sidecar of a plan, with an error that says which file is wrong and what it lacks."""
        path = cls.path_for(plan_path)
        if not path.is_file():
            raise ArtifactError(f"{plan_path}: no sidecar {path.name} beside the plan (build it with stam-build)")
        try:
            data = json.loads(path.read_text())
        except ValueError as error:
            raise ArtifactError(f"{path}: malformed sidecar (not JSON: {error})") from None
        if not isinstance(data, dict):
            raise ArtifactError(f"{path}: malformed sidecar (a JSON object is expected)")
        missing = [name for name in _REQUIRED_SIDECAR_FIELDS if name not in data]
        if missing:
            raise ArtifactError(f"{path}: sidecar lacks {', '.join(missing)} (rebuild the plan with stam-build)")
        if data.get("target", "tensorrt") not in TRT_TARGETS:
            raise ArtifactError(f"{path}: unknown target {data['target']!r} (known: {', '.join(TRT_TARGETS)})")
        try:
            sidecar = cls(**{**data, "profile": Profile.from_dict(data["profile"])})
        except (ValueError, TypeError, KeyError) as error:
            raise ArtifactError(f"{path}: malformed sidecar ({type(error).__name__}: {error})") from None
        check_metadata(sidecar.metadata, str(path))
        return sidecar


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file whole or not at all (temporary name beside it, then rename): no half-written artifact."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise ArtifactError(f"{path}: cannot write ({error.strerror})") from None


_REQUIRED_SIDECAR_FIELDS = ("metadata", "profile", "precision", "tensorrt_version", "gpu_name", "compute_capability")
