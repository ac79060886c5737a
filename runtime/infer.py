"""`python -m runtime.infer`: classify videos with an ONNX model (OpenVINO or ONNX Runtime) or a TensorRT plan.

Decoding runs on worker threads while the model runs batches; a bad video is reported on its own
line and the others still get results. Exit codes: 0 all classified, 1 some videos failed,
2 usage or artifact errors (nothing classified).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from tqdm import tqdm

from runtime import clips
from runtime.backends import BACKENDS, open_model
from runtime.backends.base import Model
from runtime.backends.openvino import PRECISIONS as OPENVINO_PRECISIONS
from runtime.batching import in_order, pad_batch, prefetch
from runtime.errors import StamError, VideoError, run_cli
from runtime.results import VideoResult, render_table
from runtime.video import list_videos

PROGRESS_THRESHOLD = 3  # more videos than this get a progress bar


@dataclass(frozen=True)
class Options:
    frames: int
    batch_size: int
    topk: int
    sampling: str
    workers: int


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.infer",
        description="Classify videos with a STAM artifact (.onnx on ONNX Runtime, .plan/.engine on TensorRT).",
    )
    parser.add_argument("artifact", help="model.onnx, model.plan or model.engine (with its .json sidecar)")
    parser.add_argument("videos", nargs="+", help="video files, or directories searched recursively")
    parser.add_argument("--topk", type=positive_int, default=5, help="predictions per video (default 5)")
    parser.add_argument("--json", action="store_true", help="one JSON object per video on stdout")
    parser.add_argument("--logits", action="store_true", help="with --json: include the raw logits")
    parser.add_argument("--frames", type=positive_int,
                        help="frames sampled per video (default: the model's trained T)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="videos per inference (default 8)")
    parser.add_argument("--sampling", choices=("uniform", "reference"), default="uniform")
    parser.add_argument("--workers", type=positive_int, default=min(4, os.cpu_count() or 1),
                        help="decode threads (default: min(4, CPUs))")
    parser.add_argument("--providers", nargs="+", metavar="PROVIDER",
                        help="ONNX Runtime providers in order (default: TensorRT, CUDA, CPU; those present)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="auto (default): a plan on TensorRT; an .onnx on OpenVINO when installed "
                             "(ONNX Runtime for FP8 graphs, GPU providers or --providers), else ONNX Runtime")
    parser.add_argument("--precision", choices=OPENVINO_PRECISIONS, default="fp32",
                        help="float math precision (default fp32: the artifact's own); bf16 or auto (bf16 where "
                             "the CPU has avx512_bf16/AMX) run on OpenVINO")
    return parser


def effective_batch_size(requested: int, model: Model) -> int:
    """The requested batch size clamped to the engine profile's maximum."""
    return min(requested, model.batch_range.max) if model.batch_range is not None else requested


def min_batch_size(model: Model) -> int:
    return model.batch_range.min if model.batch_range is not None else 1


def expand_inputs(inputs: Sequence[str]) -> list[str]:
    """Files as given; directories replaced by the videos under them.

    A missing path, or a directory without videos, stays in the list so that it fails on its own line.
    """
    paths: list[str] = []
    for entry in inputs:
        found = [str(p) for p in list_videos(entry)] if Path(entry).is_dir() else []
        paths.extend(found or [entry])
    return paths


def load_clip(path: str, num_frames: int, mode: str) -> np.ndarray:
    """Decode, sample and preprocess one video: (T, 3, 224, 224) float32; sampling notes as warnings."""
    if Path(path).is_dir():
        raise VideoError(f"{path}: no video files in this directory")
    pixels, notes = clips.load_clip(path, num_frames, mode)
    for note in notes:  # e.g. a short video sampled uniformly instead of by the reference rule
        tqdm.write(f"warning: {path}: {note}", file=sys.stderr)
    return pixels


def classify(model: Model, paths: Sequence[str], options: Options) -> Iterator[VideoResult]:
    """Results in input order; decoding of later videos overlaps inference of earlier ones."""
    return in_order(_classify_unordered(model, paths, options))


def _classify_unordered(model: Model, paths: Sequence[str], options: Options) -> Iterator[tuple[int, VideoResult]]:
    load = partial(_load_indexed, num_frames=options.frames, mode=options.sampling)
    window = 2 * options.batch_size + options.workers
    batch: list[tuple[int, str, np.ndarray]] = []
    for (index, path), clip in prefetch(load, list(enumerate(paths)), options.workers, window):
        if isinstance(clip, StamError):
            yield index, VideoResult(path, error=str(clip))
            continue
        batch.append((index, path, clip))
        if len(batch) == options.batch_size:
            yield from _run_batch(model, batch, options.topk)
            batch = []
    if batch:
        yield from _run_batch(model, batch, options.topk)


def _load_indexed(item: tuple[int, str], num_frames: int, mode: str) -> np.ndarray:
    return load_clip(item[1], num_frames, mode)


def _run_batch(
    model: Model, batch: list[tuple[int, str, np.ndarray]], topk: int
) -> Iterator[tuple[int, VideoResult]]:
    logits = model.run(pad_batch([clip for _, _, clip in batch], min_batch_size(model)))
    for row, (index, path, _) in enumerate(batch):
        yield index, VideoResult.from_logits(path, logits[row], model.labels, topk)


def run(args: argparse.Namespace) -> int:
    """Open the model, check the request against it, classify, print; returns the exit code."""
    paths = expand_inputs(args.videos)
    with open_model(args.artifact, backend=args.backend, precision=args.precision,
                    providers=args.providers) as model:
        frames = args.frames or model.frames_trained
        batch_size = effective_batch_size(args.batch_size, model)
        options = Options(frames, batch_size, args.topk, args.sampling, args.workers)
        model.check_request(max(options.batch_size, min_batch_size(model)), frames)  # before any decoding
        results = []
        progress = tqdm(total=len(paths), unit="video", file=sys.stderr, leave=False,
                        disable=True if len(paths) <= PROGRESS_THRESHOLD else None)
        with progress:
            for result in classify(model, paths, options):
                results.append(result)
                progress.update()
                if args.json:
                    print(result.to_json(with_logits=args.logits, backend=model.backend), flush=True)
    if not args.json and results:
        print(render_table(results))
    return report_failures(results)


def report_failures(results: Sequence[VideoResult]) -> int:
    """A one-line count on stderr when some videos failed; the exit code."""
    failed = sum(result.error is not None for result in results)
    if failed:
        print(f"{failed} of {len(results)} videos failed", file=sys.stderr)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(run, args)


if __name__ == "__main__":
    sys.exit(main())
