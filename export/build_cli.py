"""`stam-build`: a STAM ONNX file to a TensorRT plan + sidecar, or (`--check`) an operator check without TensorRT."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from runtime.contract import DimRange
from runtime.errors import StamError, run_cli


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stam-build", description=__doc__)
    parser.add_argument("onnx", type=Path, help="the .onnx exported by stam-export")
    parser.add_argument("-o", "--output", type=Path, help="plan path (default: MODEL.plan, MODEL.fp16.plan)")
    parser.add_argument("--frames", help="MIN:OPT:MAX frames per video (default: T/2:T:min(4T,128), T trained)")
    parser.add_argument("--batch", help="MIN:OPT:MAX videos per call (default: 1:8:32, lower for long T)")
    parser.add_argument("--precision", choices=("fp32", "fp16"),
                        help="engine precision (default: the ONNX's own; fp16 converts an fp32 graph first)")
    parser.add_argument("--timing-cache", type=Path, help="timing cache file: loaded if present, saved after")
    parser.add_argument("--workspace", type=float, metavar="GIB", help="builder workspace memory limit in GiB")
    parser.add_argument("--opt-level", type=int, choices=range(6), metavar="N",
                        help="builder optimization level 0-5 (TensorRT default: 3)")
    parser.add_argument("--inspect", action="store_true", help="print the engine's layers and their precisions")
    parser.add_argument("--check", action="store_true", help="only check the operators (no TensorRT needed)")
    parser.add_argument("--trt-major", type=int, choices=(10, 11), default=None,
                        help="--check against this TensorRT major (default: the installed one, else 10)")
    parser.add_argument("--compare", action="store_true", help="compare the plan with ONNX Runtime (Polygraphy)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_cli(run, args)


def run(args: argparse.Namespace) -> int:
    if args.check:
        return run_check(args.onnx, args.trt_major)
    from export.tensorrt import build_engine

    result = build_engine(args.onnx, build_options(args))
    sidecar = result.sidecar
    print(f"built {result.plan_path} ({sidecar.precision}, TensorRT {sidecar.tensorrt_version}, {sidecar.gpu_name}) "
          f"in {result.seconds:.1f} s; profile batch {sidecar.profile.batch}, frames {sidecar.profile.frames}")
    if result.layers:
        from export.trt_build import layers_table

        print(layers_table(result.layers))
    if args.compare:
        from export.trt_compare import compare_with_polygraphy

        if not compare_with_polygraphy(result.plan_path, result.built_onnx, sidecar.profile, sidecar.precision):
            print("error: TensorRT and ONNX Runtime outputs differ beyond tolerance", file=sys.stderr)
            return 1
    return 0


def build_options(args: argparse.Namespace):
    from export.tensorrt import BuildOptions

    if args.workspace is not None and args.workspace <= 0:
        raise StamError(f"--workspace must be a positive number of GiB, got {args.workspace:g}")
    return BuildOptions(
        plan_path=args.output,
        precision=args.precision,
        batch=DimRange.parse(args.batch, "batch") if args.batch else None,
        frames=DimRange.parse(args.frames, "frames") if args.frames else None,
        timing_cache=args.timing_cache,
        workspace_gib=args.workspace,
        opt_level=args.opt_level,
        inspect=args.inspect,
    )


def run_check(path: Path, trt_major: int | None) -> int:
    """Print the operator table; exit 1 if the parser would reject the graph."""
    from export.trt_ops import check_operators
    from export.trt_profile import load_graph

    report = check_operators(load_graph(path), trt_major or installed_major())
    print(report.table())
    return 0 if report.passed else 1


def installed_major() -> int:
    try:
        import tensorrt
    except ImportError:
        return 10
    from export.trt_build import version_tuple

    return version_tuple(tensorrt.__version__)[0]


if __name__ == "__main__":
    sys.exit(main())
