"""`python -m benchmarks.trt_selftest`: build, check and time TensorRT engines of random-weight STAMs on this GPU.

For stam_tiny and stam_16 at fp32 and fp16: export ONNX, `stam-build` with a small profile, run the
plan through `runtime.open_model` at the profile's min/opt/max shapes, compare with ONNX Runtime
and PyTorch (max abs diff, top-1 agreement) and time it (median latency, videos/s). One table, and
`--json FILE` for the data. `--target rtx` does the same with TensorRT-RTX on an RTX GPU. Needs the
library, cuda-python and a GPU; without them, one line and exit 2. `--build-only` exports and builds
with stam-build's default profile and reports export/build seconds and plan size: with `--target rtx`
it runs on a machine without a GPU.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np

from benchmarks.report import write_json
from runtime.contract import DimRange, Profile, input_shape
from runtime.errors import run_cli

MODELS = ("stam_tiny", "stam_16")
PRECISIONS = ("fp32", "fp16")
NUM_CLASSES = 400


@dataclass
class Row:
    model: str
    precision: str
    batch: int
    frames: int
    diff_onnxruntime: float
    diff_torch: float
    top1_onnxruntime: float
    top1_torch: float
    median_ms: float
    videos_per_s: float


def selftest_profile(frames_trained: int) -> Profile:
    """Small enough for the PyTorch and ONNX Runtime references to run at its max shape."""
    return Profile(
        batch=DimRange(1, 2, 4), frames=DimRange(max(1, frames_trained // 2), frames_trained, 2 * frames_trained)
    )


def shape_points(profile: Profile) -> list[tuple[int, int]]:
    """(batch, frames) at the profile's min, opt and max."""
    return [(getattr(profile.batch, key), getattr(profile.frames, key)) for key in ("min", "opt", "max")]


def agreement(reference: np.ndarray, actual: np.ndarray) -> tuple[float, float]:
    """(max abs diff, top-1 agreement) of two (B, C) logit arrays."""
    diff = float(np.max(np.abs(reference.astype(np.float64) - actual.astype(np.float64))))
    return diff, float(np.mean(reference.argmax(-1) == actual.argmax(-1)))


def median_latency(run: Callable[[], object], warmup: int = 3, iterations: int = 20) -> float:
    """Median wall time of `run` in seconds; `Model.run` returns host logits, so each call is synchronised."""
    from benchmarks.timing import summarize, time_host

    return summarize(time_host(run, iterations, warmup)).median_ms / 1e3


def render_table(rows: Sequence[Row]) -> str:
    header = (
        f"{'model':<10} {'prec':<5} {'B':>3} {'T':>4} {'|d| ORT':>9} {'|d| torch':>9} "
        f"{'top1 ORT':>8} {'top1 pt':>8} {'median ms':>10} {'videos/s':>9}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.model:<10} {r.precision:<5} {r.batch:>3} {r.frames:>4} {r.diff_onnxruntime:>9.2e} "
            f"{r.diff_torch:>9.2e} {r.top1_onnxruntime:>8.0%} {r.top1_torch:>8.0%} {r.median_ms:>10.2f} "
            f"{r.videos_per_s:>9.1f}"
        )
    return "\n".join(lines)


@dataclass
class BuildRow:
    model: str
    precision: str
    target: str
    library_version: str
    profile: str
    export_s: float
    build_s: float
    plan_mb: float


def export_and_build(name: str, precision: str, workdir: Path, target: str, small_profile: bool = True):
    """(model, ONNX path, BuildResult, export seconds) of one random-weight (model, precision)."""
    import torch

    from export.model import create_model
    from export.onnx import export_onnx
    from export.tensorrt import BuildOptions, build_engine

    torch.manual_seed(0)
    model = create_model(name, num_classes=NUM_CLASSES)
    started = time.perf_counter()
    onnx_path = export_onnx(model, workdir / f"{name}.{precision}.onnx", precision=precision)
    export_s = time.perf_counter() - started
    profile = selftest_profile(model.config.frames_trained) if small_profile else None
    options = BuildOptions(
        plan_path=workdir / f"{name}.{precision}.plan",
        target=target,
        batch=profile.batch if profile else None,
        frames=profile.frames if profile else None,
    )
    return model, onnx_path, build_engine(onnx_path, options), export_s


def build_case(name: str, precision: str, workdir: Path, target: str) -> BuildRow:
    """Export and build only, with stam-build's default profile: what `--build-only` measures (no GPU needed for rtx)."""
    _, _, result, export_s = export_and_build(name, precision, workdir, target, small_profile=False)
    profile = result.sidecar.profile
    return BuildRow(
        name,
        precision,
        target,
        result.sidecar.tensorrt_version,
        f"batch {profile.batch}, frames {profile.frames}",
        round(export_s, 1),
        round(result.seconds, 1),
        round(result.plan_path.stat().st_size / 1e6, 1),
    )


def render_build_table(rows: Sequence[BuildRow]) -> str:
    header = f"{'model':<10} {'prec':<5} {'target':<8} {'library':<12} {'export s':>8} {'build s':>8} {'plan MB':>8}  profile"
    lines = [header, "-" * len(header)]
    lines += [
        f"{r.model:<10} {r.precision:<5} {r.target:<8} {r.library_version:<12} {r.export_s:>8.1f} "
        f"{r.build_s:>8.1f} {r.plan_mb:>8.1f}  {r.profile}"
        for r in rows
    ]
    return "\n".join(lines)


def run_case(name: str, precision: str, workdir: Path, iterations: int, target: str = "tensorrt") -> list[Row]:
    """Export, build, then compare and time one (model, precision) at three shapes."""
    import torch

    from runtime import open_model

    model, onnx_path, result, _ = export_and_build(name, precision, workdir, target)
    profile = result.sidecar.profile
    rows = []
    with open_model(result.plan_path) as engine, open_model(onnx_path) as reference:
        for batch, frames in shape_points(profile):
            inputs = np.random.default_rng(batch * 1000 + frames).random(input_shape(batch, frames), dtype=np.float32)
            logits = engine.run(inputs)
            with torch.no_grad():
                expected = model(torch.from_numpy(inputs)).numpy()
            seconds = median_latency(partial(engine.run, inputs), iterations=iterations)
            rows.append(
                Row(
                    name,
                    precision,
                    batch,
                    frames,
                    *_pair(reference.run(inputs), expected, logits),
                    median_ms=seconds * 1e3,
                    videos_per_s=batch / seconds,
                )
            )
    return rows


def _pair(ort_logits: np.ndarray, torch_logits: np.ndarray, logits: np.ndarray) -> tuple[float, float, float, float]:
    diff_ort, top1_ort = agreement(ort_logits, logits)
    diff_torch, top1_torch = agreement(torch_logits, logits)
    return diff_ort, diff_torch, top1_ort, top1_torch


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.trt_selftest", description=__doc__)
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="default: stam_tiny stam_16")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--iterations", type=int, default=20, help="timed runs per shape")
    parser.add_argument(
        "--target",
        choices=("tensorrt", "rtx"),
        default="tensorrt",
        help="library that builds and runs the plans (rtx: TensorRT-RTX on an RTX GPU)",
    )
    parser.add_argument(
        "--build-only",
        action="store_true",
        help="export and build with the default profile, no run: times the builder (with --target rtx, on any machine)",
    )
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--workdir", type=Path, help="keep the ONNX files and plans here (default: a temp dir)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(run, parse_args(argv))


def run(args: argparse.Namespace) -> int:
    from runtime.backends.cuda import driver_problem
    from runtime.backends.trt import import_tensorrt, require_gpu

    import_tensorrt(args.target)  # fail in one line before minutes of export
    if not args.build_only:
        require_gpu("the self-test", driver_problem())
    with tempfile.TemporaryDirectory(prefix="stam-selftest-") as scratch:
        workdir = args.workdir or Path(scratch)
        if args.build_only:
            builds = [
                build_case(name, precision, workdir, args.target)
                for name in args.models
                for precision in args.precisions
            ]
            table, records = render_build_table(builds), [asdict(row) for row in builds]
        else:
            runs = [
                row
                for name in args.models
                for precision in args.precisions
                for row in run_case(name, precision, workdir, args.iterations, args.target)
            ]
            table, records = render_table(runs), [asdict(row) for row in runs]
    print(table)
    if args.json:
        write_json(records, args.json, required=())
    return 0


if __name__ == "__main__":
    sys.exit(main())
