"""`stam-export`: a checkpoint (or random weights) to a verified ONNX file."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from runtime.errors import StamError, require_extra, run_cli


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stam-export", description=__doc__)
    parser.add_argument(
        "--model",
        default=None,
        help="stam_8, stam_16, stam_32, stam_64 or stam_tiny (default: inferred from --checkpoint, else stam_16)",
    )
    parser.add_argument("--checkpoint", type=Path, help="official .pth ({'model': state_dict}) or a bare state dict")
    parser.add_argument("-o", "--output", type=Path, help="output .onnx (default: MODEL.onnx)")
    parser.add_argument("--precision", choices=("fp32", "fp16"), default="fp32")
    parser.add_argument("--labels", help="label file, one per line (default: kinetics400 for 400 classes)")
    parser.add_argument("--num-classes", type=int, default=400, help="classes of a random-weight model")
    parser.add_argument(
        "--verify-shapes",
        default=None,
        help="BxT,BxT... checked against PyTorch (default: 1xT_trained and 2x(T_trained/2))",
    )
    parser.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime parity run")
    parser.add_argument("--seed", type=int, default=0, help="seed of random weights")
    parser.add_argument(
        "--split",
        action="store_true",
        help="write the per-frame encoder and the temporal head as NAME.frames.onnx and "
        "NAME.temporal.onnx (for long videos: python -m runtime.infer --timeline)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("torch").setLevel(logging.ERROR)  # the dynamo exporter's chatter
    return run_cli(run, args)


def run(args: argparse.Namespace) -> int:
    require_extra("torch", "stam-export", "export")
    from export.onnx import export_onnx, export_split, split_paths, verify_onnx, verify_split
    from runtime.onnx_io import ensure_writable

    requested_shapes = parse_shapes(args.verify_shapes)  # a typo fails now, not after minutes of export
    if args.output is not None:
        for target in split_paths(args.output) if args.split else (args.output,):
            ensure_writable(target)
    model, stored_labels = build_model(args)
    labels = resolve_labels(args.labels, stored_labels, model.config.num_classes)
    output = args.output or Path(f"{model.config.name}.{args.precision}.onnx")
    shapes = requested_shapes or default_shapes(model.config.frames_trained)
    random_weights = args.checkpoint is None
    started = time.perf_counter()
    if args.split:
        parts = export_split(model, output, labels=labels, precision=args.precision, random_weights=random_weights)
        written = " and ".join(map(str, parts))
        verify = partial(verify_split, model, *parts)
    else:
        written = str(
            export_onnx(model, output, labels=labels, precision=args.precision, random_weights=random_weights)
        )
        verify = partial(verify_onnx, model, output)
    print(f"exported {model.config.name} ({args.precision}) to {written} in {time.perf_counter() - started:.1f} s")
    if args.no_verify:
        return 0
    report = verify(shapes, precision=args.precision)
    pipeline = " of temporal(frames(x))" if args.split else ""
    print(f"parity{pipeline} against PyTorch (ONNX Runtime CPU):")
    print(report.table())
    if not report.passed:
        print("error: parity check failed: " + "; ".join(report.failures()), file=sys.stderr)
        return 1
    return 0


def build_model(args: argparse.Namespace):
    """(model, labels stored in the checkpoint or None); random weights say so loudly."""
    from export.checkpoint import load_checkpoint_with_labels
    from export.model import create_model

    if args.checkpoint is not None:
        return load_checkpoint_with_labels(args.checkpoint, args.model)
    import torch

    torch.manual_seed(args.seed)
    name = args.model or "stam_16"
    try:
        model = create_model(name, num_classes=args.num_classes)
    except ValueError as error:
        raise StamError(str(error)) from None
    print(
        f"WARNING: no --checkpoint given: exporting {name} with RANDOM weights (seed {args.seed}); "
        "its predictions are meaningless",
        file=sys.stderr,
    )
    return model, None


def resolve_labels(labels_arg: str | None, stored: list[str] | None, num_classes: int) -> list[str] | None:
    """`--labels` first, then the names stored in the checkpoint, then Kinetics-400 for 400 classes."""
    from runtime.labels import load_labels

    if labels_arg is not None:
        return load_labels(labels_arg)
    if stored is not None:
        return stored
    return load_labels("kinetics400") if num_classes == 400 else None


def default_shapes(frames_trained: int) -> list[tuple[int, int]]:
    return [(1, frames_trained), (2, max(1, frames_trained // 2))]


def parse_shapes(text: str | None) -> list[tuple[int, int]] | None:
    """`--verify-shapes 1x16,2x8` as [(1, 16), (2, 8)]; None when not given."""
    if text is None:
        return None
    try:
        shapes = [tuple(int(v) for v in item.lower().split("x")) for item in text.split(",")]
    except ValueError:
        shapes = []
    if not shapes or any(len(s) != 2 or min(s) < 1 for s in shapes):
        raise StamError(f"--verify-shapes must look like 1x16,2x8, got {text!r}")
    return [(batch, frames) for batch, frames in shapes]


if __name__ == "__main__":
    sys.exit(main())
