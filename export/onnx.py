"""ONNX export of a STAM model with dynamic batch and frame count, its metadata, and its parity check.

The exporter is `torch.onnx.export(dynamo=True)`: the TorchScript exporter bakes attention shapes
and fails at other frame counts. Tracing uses batch 2 and a frame count that is neither 1 nor
T_trained, so neither dimension is specialised away.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import onnx
import torch

from export.model import Stam
from runtime import contract
from runtime.onnx_io import ensure_writable, save_single_file, set_metadata
from runtime.errors import StamError

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
    ensure_writable(path)
    proto = trace_to_onnx(model.eval(), opset)
    if precision == "fp16":
        from export.fp16 import convert_to_fp16  # torch-free, shared with stam-build

        proto = convert_to_fp16(proto)
    elif precision != "fp32":
        raise StamError(f"export precision must be fp32 or fp16, got {precision!r} (int8/fp8: stam-calibrate)")
    metadata = build_metadata(model, labels, precision)
    if random_weights:
        metadata[contract.META_RANDOM_WEIGHTS] = "1"
    set_metadata(proto, metadata)
    save_single_file(proto, path)
    return path


def trace_to_onnx(model: Stam, opset: int) -> onnx.ModelProto:
    """The dynamo export, with `batch` and `frames` symbolic."""
    frames = _trace_frame_count(model.config.frames_trained)
    example = torch.rand(contract.input_shape(2, frames))
    batch_dim = torch.export.Dim(contract.BATCH_DIM, min=1, max=4096)
    frames_dim = torch.export.Dim(contract.FRAMES_DIM, min=1, max=4096)
    with warnings.catch_warnings(), torch.no_grad(), _quiet_logger("torch.onnx"):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            input_names=[contract.INPUT_NAME],
            output_names=[contract.OUTPUT_NAME],
            opset_version=opset,
            dynamic_shapes={"frames": {0: batch_dim, 1: frames_dim}},
            verbose=False,
        )
    proto = program.model_proto
    _name_dynamic_dims(proto)
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


def build_metadata(model: Stam, labels: Sequence[str] | None, precision: str) -> dict[str, str]:
    """The metadata_props of DESIGN.md; labels are checked against the head's width."""
    config = model.config
    if labels is not None and len(labels) != config.num_classes:
        raise StamError(f"{len(labels)} labels given for a model with {config.num_classes} classes")
    return {
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
        lines = [f"{'batch':>5} {'frames':>6} {'max abs diff':>13} {'tolerance':>10} {'top-1 agree':>11} {'max |logit|':>11}"]
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
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(seed)
    report = ParityReport(precision=precision)
    for batch, frames in shapes:
        inputs = torch.rand(contract.input_shape(batch, frames), generator=generator)
        with torch.no_grad():
            expected = model.eval()(inputs).numpy()
        actual = session.run([contract.OUTPUT_NAME], {contract.INPUT_NAME: inputs.numpy()})[0]
        diff, agreement = compare_logits(expected, actual)
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


def _name_dynamic_dims(proto: onnx.ModelProto) -> None:
    """Give the graph I/O the contract's dim names (the exporter names them s0, s1...)."""
    for value in (*proto.graph.input, *proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        if value.name == contract.INPUT_NAME:
            dims[0].dim_param, dims[1].dim_param = contract.BATCH_DIM, contract.FRAMES_DIM
        elif value.name == contract.OUTPUT_NAME:
            dims[0].dim_param = contract.BATCH_DIM
