"""`python -m runtime.infer`: classify videos with an ONNX model (OpenVINO or ONNX Runtime) or a TensorRT plan.

Decoding runs on worker threads while the model runs batches; a bad video is reported on its own
line and the others still get results. Exit codes: 0 all classified, 1 some videos failed,
2 usage or artifact errors (nothing classified).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from runtime import clips, options
from runtime.backends import open_model
from runtime.backends.base import Model
from runtime.contract import trained_frames_range
from runtime.cpu import usable_cpus
from runtime.decode import decoders_per_video, list_videos
from runtime.errors import StamError, run_cli
from runtime.limits import CLI_LIMITS, Limits
from runtime.pipeline import min_batch, run_clips
from runtime.progress import progress_bar
from runtime.results import VideoResult, render_table


@dataclass(frozen=True)
class Options:
    """How `classify` samples and batches: the shared settings once checked against the model."""

    frames: int
    batch_size: int
    topk: int
    sampling: str
    workers: int
    decoders: int | None = None  # per video; None: the CPUs shared among the videos decoded at once
    limits: Limits = CLI_LIMITS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.infer",
        description="Classify videos with a STAM artifact (.onnx on OpenVINO or ONNX Runtime, .plan/.engine on TensorRT).",
    )
    options.add_model(parser, "model.onnx, model.plan or model.engine (with its .json sidecar)")
    parser.add_argument("videos", nargs="+", help="video files, or directories searched recursively")
    options.add_topk(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object per video on stdout")
    parser.add_argument("--logits", action="store_true", help="with --json: include the raw logits")
    options.add_frames(parser)
    options.add_batch_size(parser)
    options.add_sampling(parser)
    parser.add_argument(
        "--workers",
        type=options.positive_int,
        default=min(4, usable_cpus()),
        help="decode threads (default: min(4, CPUs))",
    )
    parser.add_argument(
        "--decoders",
        type=options.positive_int,
        help="decoders seeking one long video side by side (default: the CPUs, at most 8, "
        "shared among the videos decoded at once)",
    )
    parser.add_argument(
        "--providers",
        nargs="+",
        metavar="PROVIDER",
        help="ONNX Runtime providers in order (default: TensorRT, CUDA, CPU; those present)",
    )
    options.add_backend(parser)
    options.add_limits(parser, CLI_LIMITS)
    timeline = options.add_window(parser, "timeline (long videos: a label per time window; docs/long-videos.md)")
    timeline.add_argument(
        "--timeline",
        action="store_true",
        help="classify windows of --window frames (default: --frames, else trained T) every --stride, frames at --fps",
    )
    return parser


def effective_batch_size(requested: int, model: Model) -> int:
    """The requested batch size clamped to the engine profile's maximum."""
    return min(requested, model.batch_range.max) if model.batch_range is not None else requested


def expand_inputs(inputs: Sequence[str]) -> list[str]:
    """Files as given; directories replaced by the videos under them.

    A missing path, or a directory without videos, stays in the list so that it fails on its own line.
    """
    paths: list[str] = []
    for entry in inputs:
        found = [str(p) for p in list_videos(entry)] if Path(entry).is_dir() else []
        paths.extend(found or [entry])
    return paths


def classify(model: Model, paths: Sequence[str], chosen: Options) -> Iterator[VideoResult]:
    """Results in input order; decoding of later videos overlaps inference of earlier ones."""
    decoders = chosen.decoders or decoders_per_video(min(chosen.workers, len(paths)))  # a lone video: all CPUs
    load = partial(
        clips.load_clip, num_frames=chosen.frames, mode=chosen.sampling, decoders=decoders, limits=chosen.limits
    )
    for outcome in run_clips(model, paths, load, batch_size=chosen.batch_size, workers=chosen.workers):
        if outcome.logits is None:  # the video failed: `error` says why
            yield VideoResult(outcome.item, error=str(outcome.error))
        else:
            result = VideoResult.from_logits(outcome.item, outcome.logits, model.labels, chosen.topk)
            result.notes = outcome.notes
            yield result


def check_frames(frames: int, frames_trained: int) -> None:
    """Warn when the frame count is far from what the model was trained on: accuracy is unmeasured there."""
    low, high = trained_frames_range(frames_trained)
    if not low <= frames <= high:
        warnings.warn(
            f"--frames {frames} is far outside the model's trained {frames_trained} frames "
            f"(accuracy is measured within {low}..{high}); expect worse predictions",
            stacklevel=2,
        )


def run(args: argparse.Namespace) -> int:
    """Open the model, check the request against it, classify, print; returns the exit code."""
    if args.logits and not args.json:
        raise StamError("--logits adds the raw logits to the JSON lines: use it with --json")
    paths = expand_inputs(args.videos)
    if not args.timeline and (args.window or args.stride or args.fps):
        raise StamError("--window, --stride and --fps apply to --timeline only")
    if args.timeline:
        if args.backend == "openvino" or args.precision != "fp32":
            raise StamError(
                "--timeline runs its parts on ONNX Runtime or TensorRT: drop --backend openvino/--precision"
            )
        from runtime.timeline import run_cli as run_timeline

        return run_timeline(args, paths)
    settings = options.settings_from(args)
    with open_model(
        settings.model, backend=settings.backend, precision=settings.precision, providers=args.providers
    ) as model:
        frames = settings.frames or model.frames_trained
        batch_size = effective_batch_size(settings.batch_size, model)
        chosen = options.config_from(Options, args, frames=frames, batch_size=batch_size)
        model.check_request(max(batch_size, min_batch(model)), frames)  # before any decoding
        check_frames(frames, model.frames_trained)
        results = []
        with progress_bar(len(paths), unit="video") as progress:
            for result in classify(model, paths, chosen):
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
