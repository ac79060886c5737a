"""The I/O, metadata and engine-profile contract that every STAM artifact keeps (DESIGN.md, Artifacts).

Declared once here so that the exporter, the TensorRT builder, the runtime backends and the
validators all read the same names; `runtime/` owns it because `export/` may import `runtime/`
but not the other way round.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

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
# (README, "Export" and "Calibration"). `tf32` is an fp32 engine whose matmuls TensorRT ran in TF32.
TOLERANCES = {
    "fp32": Tolerance(1e-4),
    "tf32": Tolerance(0.0, 5e-3),
    "bf16": Tolerance(0.0, 4e-2),
    "fp16": Tolerance(0.0, 2e-2),
    "int8": Tolerance(0.0, 1e-1),
    "fp8": Tolerance(0.0, 2e-1),
}
FP32_MAX_ABS_DIFF = TOLERANCES["fp32"].absolute


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
    def parse(cls, text: str, name: str) -> "DimRange":
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


@dataclass(frozen=True)
class Profile:
    """The one optimization profile of a plan, over the two dynamic input dims."""

    batch: DimRange
    frames: DimRange

    def check(self, batch: int, frames: int) -> None:
        """Refuse a request before any device work, naming the dimension that is out of range."""
        for name, value, allowed in (("batch", batch, self.batch), ("frames", frames, self.frames)):
            if not allowed.contains(value):
                raise ShapeError(
                    f"{name}={value} is outside the engine's profile {allowed.min}..{allowed.max} "
                    f"(rebuild with stam-build --{name} MIN:OPT:MAX)"
                )

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """min/opt/max input shapes, in the form the TensorRT profile API takes."""
        return {
            key: input_shape(getattr(self.batch, key), getattr(self.frames, key))
            for key in ("min", "opt", "max")
        }

    def to_dict(self) -> dict[str, list[int]]:
        return {"batch": list(asdict(self.batch).values()), "frames": list(asdict(self.frames).values())}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Profile":
        return cls(batch=DimRange(*data["batch"]), frames=DimRange(*data["frames"]))


@dataclass
class Sidecar:
    """`NAME.plan.json`: what the runtime must know about a plan without deserializing it."""

    metadata: dict[str, str]
    profile: Profile
    precision: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    build: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def path_for(plan_path: str | Path) -> Path:
        return Path(f"{plan_path}.json")

    def to_json(self) -> str:
        data = asdict(self)
        data["profile"] = self.profile.to_dict()
        return json.dumps(data, indent=2, sort_keys=True)

    def write(self, plan_path: str | Path) -> Path:
        path = self.path_for(plan_path)
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def read(cls, plan_path: str | Path) -> "Sidecar":
        """Read and validate the sidecar of a plan, with an error that says which file is wrong."""
        path = cls.path_for(plan_path)
        if not path.is_file():
            raise ArtifactError(f"{plan_path}: no sidecar {path.name} beside the plan (build it with stam-build)")
        try:
            data = json.loads(path.read_text())
            sidecar = cls(**{**data, "profile": Profile.from_dict(data["profile"])})
        except (ValueError, TypeError, KeyError) as error:
            raise ArtifactError(f"{path}: malformed sidecar ({error})") from None
        check_metadata(sidecar.metadata, str(path))
        return sidecar
