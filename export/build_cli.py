"""`stam-build`: a STAM ONNX file to a TensorRT or TensorRT-RTX plan + sidecar, or (`--check`) an operator check."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from runtime import contract
from runtime.contract import DimRange
from runtime.errors import MissingDependencyError, StamError, run_cli


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stam-build", description=__doc__)
    parser.add_argument("onnx", type=Path, help="the .onnx exported by stam-export (a whole model or one split part)")
    parser.add_argument("-o", "--output", type=Path, help="plan path (default: MODEL.plan, MODEL.fp16.plan)")
    parser.add_argument(
        "--target",
        choices=tuple(contract.TRT_TARGETS),
        default="tensorrt",
        help="tensorrt: TensorRT 10/11, builds on the GPU it targets; rtx: TensorRT-RTX, builds "
        "anywhere (no GPU needed) for RTX GPUs (default: tensorrt)",
    )
    parser.add_argument(
        "--compute-capability",
        metavar="X.Y[,X.Y]",
        help="rtx only: compute capabilities to build for, e.g. 8.6,8.9 (default: the library's)",
    )
    parser.add_argument("--frames", help="MIN:OPT:MAX frames per video (default: T/2:T:min(4T,128), T trained)")
    parser.add_argument("--batch", help="MIN:OPT:MAX videos per call (default: 1:8:32, lower for long T)")
    parser.add_argument(
        "--precision",
        choices=("fp32", "fp16"),
        help="engine precision (default: the ONNX's own; fp16 converts an fp32 graph first)",
    )
    parser.add_argument(
        "--tf32",
        action="store_true",
        help="let fp32 matmuls run in TF32 (faster on Ampere+, ~1e-3 relative error; off by default)",
    )
    parser.add_argument(
        "--timing-cache", type=Path, help="tensorrt only: timing cache file, loaded if present, saved after"
    )
    parser.add_argument("--workspace", type=float, metavar="GIB", help="builder workspace memory limit in GiB")
    parser.add_argument(
        "--opt-level",
        type=int,
        choices=range(6),
        metavar="N",
        help="builder optimization level 0-5 (TensorRT default: 3)",
    )
    parser.add_argument(
        "--inspect",
        action="store_true",
        help="print the engine's layers and their precisions (builds with DETAILED profiling)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="only check that the graph parses: with the real ONNX parser when tensorrt or "
        "tensorrt_rtx imports, else with the shipped operator table",
    )
    parser.add_argument(
        "--trt-major",
        type=int,
        choices=(10, 11),
        default=None,
        help="--check against the operator table of this TensorRT major (default: 10)",
    )
    parser.add_argument("--compare", action="store_true", help="compare the plan with ONNX Runtime (Polygraphy)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter(
            "always", RuntimeWarning
        )  # the builder's own warnings; other categories keep their filters
        code = run_cli(run, args)
    for warning in caught:  # library code warns; the command line shows each as one line
        print(f"warning: {' '.join(str(warning.message).split())}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    if args.check:
        return run_check(args.onnx, args.target, args.trt_major)
    from export.tensorrt import build_engine

    result = build_engine(args.onnx, build_options(args))
    sidecar = result.sidecar
    part = f" {sidecar.profile.part} part," if sidecar.profile.part else ""
    ranges = ", ".join(f"{name} {allowed}" for name, allowed in sidecar.profile.dims())
    print(
        f"built {result.plan_path} ({sidecar.precision},{part} {sidecar.library} {sidecar.tensorrt_version}, "
        f"{sidecar.gpu_name}, compute capability {sidecar.compute_capability}) in {result.seconds:.1f} s; "
        f"profile {ranges}"
    )
    if result.layers:
        from export.trt_build import layers_table

        print(layers_table(result.layers))
    if args.compare:
        from export.trt_compare import compare_with_polygraphy

        if not compare_with_polygraphy(result.plan_path, result.built_onnx, sidecar):
            print("error: TensorRT and ONNX Runtime outputs differ beyond tolerance", file=sys.stderr)
            return 1
    return 0


def build_options(args: argparse.Namespace):
    from export.tensorrt import BuildOptions

    if args.compare and args.target == "rtx":
        raise StamError(
            "--compare runs the plan through Polygraphy, which needs tensorrt and a GPU; for an rtx plan "
            "compare on the RTX PC with python -m benchmarks.trt_selftest"
        )
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
        target=args.target,
        compute_capabilities=parse_capabilities(args.compute_capability),
        tf32=args.tf32,
    )


def parse_capabilities(text: str | None) -> tuple[str, ...]:
    """ "8.6,8.9" -> ("8.6", "8.9"); each must look like MAJOR.MINOR (the library then says which it offers)."""
    if not text:
        return ()
    values = tuple(part.strip() for part in text.split(","))
    bad = [value for value in values if not _is_capability(value)]
    if bad:
        raise StamError(f"--compute-capability takes MAJOR.MINOR values such as 8.6,8.9; got {', '.join(bad)}")
    return values


def _is_capability(value: str) -> bool:
    major, _, minor = value.partition(".")
    return major.isdigit() and minor.isdigit()


def run_check(path: Path, target: str, trt_major: int | None) -> int:
    """Ask the real ONNX parser when a TensorRT library imports (the target's first), else the operator
    table; print which was asked and exit 1 if the graph would not parse."""
    from export.trt_profile import load_graph

    model = load_graph(path)  # one-line errors for a missing or corrupt file, whichever checks it
    trt = None if trt_major is not None else _first_library(target)
    if trt is None:
        from export.trt_ops import check_operators

        report = check_operators(model, trt_major or 10)
        print(report.table())
        print(
            f"checked with the shipped operator table (TensorRT {report.trt_major}); "
            "install the rtx extra to ask the real ONNX parser"
        )
        return 0 if report.passed else 1
    from export.trt_build import check_with_parser

    errors = check_with_parser(trt, path)
    for error in errors:
        print(f"error: {error}")
    verdict = "FAILED" if errors else "PASSED"
    print(
        f"{verdict}: checked with the {trt.__name__} {trt.__version__} ONNX parser ({len(model.graph.node)} nodes, "
        f"{len(errors)} errors)"
    )
    return 1 if errors else 0


def _first_library(target: str):
    from runtime.backends.trt import import_tensorrt

    for library in dict.fromkeys([target, *contract.TRT_TARGETS]):
        try:
            return import_tensorrt(library)
        except MissingDependencyError:
            continue
    return None


if __name__ == "__main__":
    sys.exit(main())
