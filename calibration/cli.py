"""`stam-calibrate`: an fp32 STAM ONNX plus a folder of videos to an INT8 or FP8 Q/DQ ONNX for TensorRT."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from runtime import contract
from runtime.errors import StamError, VideoError, run_cli

DEFAULT_CLIPS = 64
DEFAULT_METHOD = {"int8": "entropy", "fp8": "minmax"}  # TensorRT's and ModelOpt's usual choices


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stam-calibrate", description=__doc__)
    parser.add_argument(
        "model",
        type=Path,
        help="fp32 STAM ONNX (from stam-export), or the frames part of a split "
        "pair (NAME.frames.onnx; write -o beside NAME.temporal.onnx)",
    )
    parser.add_argument("--videos", type=Path, required=True, help="calibration videos, flat or in class folders")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output Q/DQ .onnx")
    parser.add_argument(
        "--clips", type=int, default=DEFAULT_CLIPS, help=f"videos to calibrate on (default {DEFAULT_CLIPS})"
    )
    parser.add_argument("--precision", choices=("int8", "fp8"), default="int8")
    parser.add_argument(
        "--method",
        choices=("entropy", "percentile", "minmax"),
        default=None,
        help="range estimator (default: entropy for int8, minmax for fp8)",
    )
    parser.add_argument("--frames", type=int, default=None, help="frames per clip (default: the model's trained T)")
    parser.add_argument("--sampling", default="uniform", help="runtime.decode sampling mode (default uniform)")
    parser.add_argument(
        "--cache", type=Path, default=default_cache(), help="preprocessed-clip cache (default %(default)s)"
    )
    parser.add_argument("--no-cache", action="store_true", help="decode every clip, write no cache")
    parser.add_argument("--seed", type=int, default=0, help="seed of the choice of videos")
    parser.add_argument(
        "--eval",
        type=Path,
        default=None,
        metavar="DIR",
        help="held-out videos: print fp32 vs quantized agreement (and top-1 when folders are labels)",
    )
    return parser.parse_args(argv)


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "stam-deploy" / "clips"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_cli(run, args)


def run(args: argparse.Namespace) -> int:
    from calibration.data import choose_videos, iter_clips, list_videos
    from calibration.quantize import calibrate, check_options

    method = args.method or DEFAULT_METHOD[args.precision]
    check_options(args.precision, method)
    frames = args.frames if args.frames is not None else _trained_frames(args.model)
    if frames < 1:
        raise StamError(f"--frames must be at least 1, got {frames}")
    chosen = choose_videos(list_videos(args.videos), args.clips, args.seed)
    if len(chosen) < args.clips:
        warn(f"asked for {args.clips} clips but {args.videos} has {len(chosen)} videos; using {len(chosen)}")
    cache = None if args.no_cache else args.cache
    clips = iter_clips(chosen, frames, args.sampling, cache, on_skip=_skip)
    result = calibrate(
        args.model, clips, args.output, precision=args.precision, method=method, total=len(chosen), progress=True
    )
    print(
        f"wrote {result.path} ({result.precision}, {result.method}, {result.clips} clips of "
        f"{result.frames} frames, {result.seconds:.1f} s)"
    )
    if args.eval is not None:
        print(evaluate(args.model, result.path, args.eval, frames, args.sampling, cache, args.precision))
    return 0


def evaluate(
    fp32: Path, quantized: Path, directory: Path, frames: int, mode: str, cache: Path | None, precision: str
) -> str:
    """The accuracy table on held-out videos; true classes come from folder names that are model labels."""
    from calibration.data import iter_clips, list_videos
    from calibration.report import compare_models, folder_labels
    from runtime.split import open_window_model

    videos = list_videos(directory)
    with open_window_model(fp32) as model:
        labels = folder_labels(videos, model.labels)
    report = compare_models(fp32, quantized, iter_clips(videos, frames, mode, cache), labels)
    return f"held-out accuracy ({directory}):\n{report.table(precision)}"


def _trained_frames(path: Path) -> int:
    from calibration.quantize import load_fp32_model
    from runtime.onnx_io import read_metadata

    return int(read_metadata(load_fp32_model(path))[contract.META_FRAMES_TRAINED])


def _skip(video: Path, error: VideoError) -> None:
    warn(f"skipping {video}: {error}")


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
