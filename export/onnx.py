"""ONNX export of a STAM model with dynamic batch and frame count, its metadata, and its parity check.

The exporter is `torch.onnx.export(dynamo=True)`: the TorchScript exporter bakes attention shapes
and fails at other frame counts. Tracing uses batch 2 and a frame count that is neither 1 nor
T_trained, so neither dimension is specialised away.
"""

from __future__ import annotations

import inspect
import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch

from export.model import Stam
from runtime import contract
from runtime.errors import StamError
from runtime.onnx_io import ensure_writable, save_single_file, set_metadata

EXPORTER_VERSION = "stam-deploy 0.1.0"


def export_onnx(
    model: Stam,
    path: str | Path,
    *,
    labels: Sequence[str] | None = None,
    precision: str = "fp32",
    opset: int = contract.OPSET,
    random_weights: bool = False,
) -> Path:
    """Write `model` as one self-contained ONNX file that honours runtime.contract.

    `random_weights` marks the file (`stam.random_weights`), so that whoever runs it is warned that
    its labels mean nothing.
    """
    path = Path(path)
    check_precision(precision)
    ensure_writable(path)
    proto = _convert(trace_to_onnx(model.eval(), opset), precision)
    set_metadata(proto, build_metadata(model, labels, precision, random_weights))
    save_single_file(proto, path)
    return path


def split_paths(path: str | Path) -> tuple[Path, Path]:
    """`NAME.onnx` -> (`NAME.frames.onnx`, `NAME.temporal.onnx`): the pair `--split -o NAME.onnx` writes."""
    path = Path(path)
    stem = path.name[: -len(path.suffix)] if path.suffix.lower() == ".onnx" else path.name
    return (
        path.with_name(f"{stem}.{contract.PART_FRAMES}.onnx"),
        path.with_name(f"{stem}.{contract.PART_TEMPORAL}.onnx"),
    )


def export_split(
    model: Stam,
    path: str | Path,
    *,
    labels: Sequence[str] | None = None,
    precision: str = "fp32",
    opset: int = contract.OPSET,
    random_weights: bool = False,
) -> tuple[Path, Path]:
    """Write the per-frame encoder and the temporal head as two ONNX files that name each other.

    Long videos embed each frame once and re-run only the small temporal part per window
    (docs/architecture.md, "Artifacts"); both parts keep the whole model's metadata.
    """
    check_precision(precision)
    frames_path, temporal_path = split_paths(path)
    for target in (frames_path, temporal_path):
        ensure_writable(target)
    model = model.eval()
    metadata = build_metadata(model, labels, precision, random_weights)
    parts = (
        (frames_path, trace_frames_part(model, opset), contract.PART_FRAMES, temporal_path),
        (temporal_path, trace_temporal_part(model, opset), contract.PART_TEMPORAL, frames_path),
    )
    for target, proto, part, partner in parts:
        proto = _convert(proto, precision)
        set_metadata(proto, {**metadata, contract.META_PART: part, contract.META_PARTNER: partner.name})
        save_single_file(proto, target)
    return frames_path, temporal_path


class FramesPart(torch.nn.Module):
    """The spatial encoder alone: frames (N, 3, H, W) -> class-token embeddings (N, D)."""

    def __init__(self, model: Stam):
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(frames[:, None])[:, 0]  # (N, 1, D) -> (N, D)


class TemporalPart(torch.nn.Module):
    """The temporal aggregator and head alone: embeddings (B, T, D) -> logits (B, C)."""

    def __init__(self, model: Stam):
        super().__init__()
        self.model = model

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(embeddings)


def trace_to_onnx(model: Stam, opset: int) -> onnx.ModelProto:
    """The dynamo export of the whole model, with `batch` and `frames` symbolic."""
    frames = _trace_frame_count(model.config.frames_trained)
    example = torch.rand(contract.input_shape(2, frames))
    dims = {0: contract.BATCH_DIM, 1: contract.FRAMES_DIM}
    return _dynamo_export(model, example, contract.INPUT_NAME, contract.OUTPUT_NAME, dims, opset)


def trace_frames_part(model: Stam, opset: int) -> onnx.ModelProto:
    """`frames` [N, 3, H, W] -> `embeddings` [N, D], N symbolic (traced at 3 so it is not specialised)."""
    example = torch.rand(3, contract.CHANNELS, model.config.image_size, model.config.image_size)
    return _dynamo_export(
        FramesPart(model), example, contract.INPUT_NAME, contract.EMBEDDINGS_NAME, {0: contract.FRAMES_DIM}, opset
    )


def trace_temporal_part(model: Stam, opset: int) -> onnx.ModelProto:
    """`embeddings` [B, T, D] -> `logits` [B, C], B and T symbolic (position interpolation included)."""
    frames = _trace_frame_count(model.config.frames_trained)
    example = torch.rand(2, frames, model.config.embed_dim)
    return _dynamo_export(
        TemporalPart(model),
        example,
        contract.EMBEDDINGS_NAME,
        contract.OUTPUT_NAME,
        {0: contract.BATCH_DIM, 1: contract.FRAMES_DIM},
        opset,
    )


def _dynamo_export(
    module: torch.nn.Module,
    example: torch.Tensor,
    input_name: str,
    output_name: str,
    dims: dict[int, str],
    opset: int,
) -> onnx.ModelProto:
    """`torch.onnx.export(dynamo=True)` of a one-input module with the named dims symbolic."""
    shapes = {axis: torch.export.Dim(name, min=1, max=4096) for axis, name in dims.items()}
    argument = next(iter(inspect.signature(module.forward).parameters))
    with warnings.catch_warnings(), torch.no_grad(), _quiet_logger("torch.onnx"):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module.eval(),
            (example,),
            dynamo=True,
            input_names=[input_name],
            output_names=[output_name],
            opset_version=opset,
            dynamic_shapes={argument: shapes},
            verbose=False,
        )
    if program is None:  # only the legacy exporter (dynamo=False) returns nothing
        raise StamError(f"torch.onnx.export returned no program for {type(module).__name__}")
    proto = program.model_proto
    _name_dims(proto, input_name, dims)
    _name_dims(proto, output_name, {0: dims[0]})
    return proto


@contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    """Errors only from `name` meanwhile: the dynamo exporter logs a warning per torchvision operator it
    cannot register when torchvision is absent, which says nothing about a STAM export."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def check_precision(precision: str) -> None:
    """Before minutes of tracing, not after."""
    if precision not in ("fp32", "fp16"):
        raise StamError(f"export precision must be fp32 or fp16, got {precision!r} (int8/fp8: stam-calibrate)")


def _convert(proto: onnx.ModelProto, precision: str) -> onnx.ModelProto:
    if precision == "fp16":
        from export.fp16 import convert_to_fp16  # torch-free, shared with stam-build

        return convert_to_fp16(proto)
    return proto


def build_metadata(
    model: Stam, labels: Sequence[str] | None, precision: str, random_weights: bool = False
) -> dict[str, str]:
    """The metadata_props of docs/architecture.md; labels are checked against the head's width."""
    config = model.config
    if labels is not None and len(labels) != config.num_classes:
        raise StamError(f"{len(labels)} labels given for a model with {config.num_classes} classes")
    marker = {contract.META_RANDOM_WEIGHTS: "1"} if random_weights else {}
    return marker | {
        contract.META_MODEL: config.name,
        contract.META_FRAMES_TRAINED: str(config.frames_trained),
        contract.META_INPUT_SIZE: str(config.image_size),
        contract.META_RESIZE_SHORT: str(contract.RESIZE_SHORT),
        contract.META_PRECISION: precision,
        contract.META_LABELS: "\n".join(labels or []),
        contract.META_EXPORTER_VERSION: f"{EXPORTER_VERSION} (torch {torch.__version__})",
    }


@dataclass
class ParityRow:
    batch: int
    frames: int
    max_abs_diff: float
    top1_agreement: float
    max_abs_logit: float  # fp16/int8 errors scale with it
    tolerance: float  # the contract's bound at this precision for this row's logit scale

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance and self.top1_agreement == 1.0


@dataclass
class ParityReport:
    """PyTorch vs ONNX Runtime on the same random frames, one row per (batch, frames)."""

    precision: str
    rows: list[ParityRow] = field(default_factory=list)

    @property
    def max_abs_diff(self) -> float:
        return max(row.max_abs_diff for row in self.rows)

    @property
    def passed(self) -> bool:
        return all(row.passed for row in self.rows)

    def failures(self) -> list[str]:
        return [
            f"(batch {r.batch}, frames {r.frames}): max abs diff {r.max_abs_diff:.3g} "
            f"(tolerance {r.tolerance:.3g}), top-1 agreement {r.top1_agreement:.0%}"
            for r in self.rows
            if not r.passed
        ]

    def table(self) -> str:
        lines = [
            f"{'batch':>5} {'frames':>6} {'max abs diff':>13} {'tolerance':>10} {'top-1 agree':>11} {'max |logit|':>11}"
        ]
        lines += [
            f"{r.batch:>5} {r.frames:>6} {r.max_abs_diff:>13.3e} {r.tolerance:>10.3g} {r.top1_agreement:>10.0%} "
            f"{r.max_abs_logit:>11.3g}"
            for r in self.rows
        ]
        return "\n".join(lines)


def verify_onnx(
    model: Stam,
    path: str | Path,
    shapes: Sequence[tuple[int, int]],
    precision: str = "fp32",
    seed: int = 0,
) -> ParityReport:
    """Run both on identical inputs for each (batch, frames); never raises on a mismatch.

    Each row is judged by `contract.tolerance(precision, max |reference logit|)`, the one table.
    """
    session = _cpu_session(path)

    def run(frames: np.ndarray) -> np.ndarray:
        return session.run([contract.OUTPUT_NAME], {contract.INPUT_NAME: frames})[0]

    return _parity(model, run, shapes, precision, seed)


def verify_split(
    model: Stam,
    frames_path: str | Path,
    temporal_path: str | Path,
    shapes: Sequence[tuple[int, int]],
    precision: str = "fp32",
    seed: int = 0,
) -> ParityReport:
    """temporal(frames(x)) on ONNX Runtime against the whole PyTorch model, row by row as `verify_onnx`."""
    frames_session, temporal_session = _cpu_session(frames_path), _cpu_session(temporal_path)

    def run(frames: np.ndarray) -> np.ndarray:
        batch, count = frames.shape[:2]
        flat = frames.reshape(batch * count, *frames.shape[2:])
        (embeddings,) = frames_session.run([contract.EMBEDDINGS_NAME], {contract.INPUT_NAME: flat})
        windows = embeddings.reshape(batch, count, -1)
        return temporal_session.run([contract.OUTPUT_NAME], {contract.EMBEDDINGS_NAME: windows})[0]

    return _parity(model, run, shapes, precision, seed)


def _cpu_session(path: str | Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _parity(
    model: Stam, run: Callable[[np.ndarray], np.ndarray], shapes: Sequence[tuple[int, int]], precision: str, seed: int
) -> ParityReport:
    generator = torch.Generator().manual_seed(seed)
    report = ParityReport(precision=precision)
    for batch, frames in shapes:
        inputs = torch.rand(contract.input_shape(batch, frames), generator=generator)
        with torch.no_grad():
            expected = model.eval()(inputs).numpy()
        diff, agreement = compare_logits(expected, run(inputs.numpy()))
        scale = float(np.abs(expected).max())
        report.rows.append(ParityRow(batch, frames, diff, agreement, scale, contract.tolerance(precision, scale)))
    return report


def compare_logits(expected: np.ndarray, actual: np.ndarray) -> tuple[float, float]:
    """(max abs diff, top-1 agreement) of two (B, C) logit arrays."""
    if expected.shape != actual.shape:
        raise StamError(f"output shape {actual.shape} differs from the reference's {expected.shape}")
    diff = float(np.max(np.abs(expected.astype(np.float64) - actual.astype(np.float64))))
    agreement = float(np.mean(expected.argmax(-1) == actual.argmax(-1)))
    return diff, agreement


def _trace_frame_count(frames_trained: int) -> int:
    return 3 if frames_trained != 3 else 4


def _name_dims(proto: onnx.ModelProto, name: str, dims: dict[int, str]) -> None:
    """Give a graph input or output the contract's dim names (the exporter names them s0, s1...)."""
    for value in (*proto.graph.input, *proto.graph.output):
        if value.name == name:
            for axis, dim_name in dims.items():
                value.type.tensor_type.shape.dim[axis].dim_param = dim_name
