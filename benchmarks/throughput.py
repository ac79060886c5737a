"""`python -m benchmarks.throughput`: the STAM paper's videos/s table, measured here per backend and precision.

For each model it counts the work per video (MACs, FLOPs) and compares it with the paper's GFLOPs
column; for each backend x precision x batch it times forward passes (warm-up, device-synchronised,
median and p90/p99), derives videos/s and achieved TFLOP/s, and relates them to a matrix-multiply
peak measured in the same run: on a CPU the best of PyTorch, numpy, ONNX Runtime and OpenVINO per
dtype (`benchmarks.peak`, which also gives the theoretical peak where the CPU says enough), on a GPU
PyTorch's. Results go to JSON first; Markdown and a PNG are rendered from it. Combinations that
cannot run here are listed with the reason.

Outputs go to `artifacts/benchmarks/` unless `--out` says otherwise: publishing into the committed
`benchmarks/results/` is a deliberate `--out benchmarks/results`, never a side effect of a try.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.backends import (
    BACKENDS,
    COMPILE_MODES,
    DEVICES,
    PRECISIONS,
    Runner,
    Skip,
    default_compile_mode,
    describe_backends,
    open_runner,
    static_skip_reason,
)
from benchmarks.flops import count_work, counted_ops_note
from benchmarks.timing import matmul_peak, summarize, time_step
from runtime.errors import ArtifactError, StamError, error_line, run_cli

MODELS = ("stam_8", "stam_16", "stam_32", "stam_64", "stam_tiny")
DEFAULT_OUT = Path("artifacts/benchmarks")
Log = Callable[[str], None]


@dataclass(frozen=True)
class Options:
    """One benchmark run, validated."""

    models: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...]  # (backend, precision), in measuring order
    batches: tuple[int, ...]
    device: str
    iters: int
    warmup: int
    onnx_dir: Path | None = None
    peak_size: int = 2048
    interleave: bool = False
    compile_mode: str = "default"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.throughput",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--models", default="stam_16,stam_64", help=f"comma list of {', '.join(MODELS)}")
    parser.add_argument("--backends", default=",".join(BACKENDS), help=f"comma list of {', '.join(BACKENDS)}")
    parser.add_argument("--precision", default=",".join(PRECISIONS), help=f"comma list of {', '.join(PRECISIONS)}")
    parser.add_argument(
        "--pairs",
        help="comma list of BACKEND:PRECISION to run instead of --backends x --precision "
        "(e.g. torch:fp32,torch:fp16,torch-compile:fp16)",
    )
    parser.add_argument("--batch", default="1", help="comma list of batch sizes (videos per call)")
    parser.add_argument("--device", default="auto", choices=("auto", *DEVICES), help="auto: cuda when torch sees one")
    parser.add_argument("--iters", type=int, default=10, help="timed iterations per configuration")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations first (compilation happens here)")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"folder of throughput_DEVICE.{{json,md,png}} (default {DEFAULT_OUT}; "
        f"publish with --out benchmarks/results)",
    )
    parser.add_argument("--json", type=Path, help="results JSON (default OUT/throughput_DEVICE.json)")
    parser.add_argument("--markdown", type=Path, help="Markdown tables (default: beside the JSON, .md)")
    parser.add_argument("--plot", type=Path, help="PNG plot (default: beside the JSON, .png)")
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="open every pair of a model together and time them in turns (fair on a shared machine)",
    )
    parser.add_argument(
        "--compile-mode",
        choices=COMPILE_MODES,
        help="torch.compile mode of torch-compile (default: max-autotune on cuda, default on cpu; "
        "max-autotune spends minutes per batch size autotuning on a GPU)",
    )
    parser.add_argument("--peak-size", type=int, default=2048, help="side of the square matmuls of the CPU peak")
    parser.add_argument("--onnx-dir", type=Path, help="keep ONNX/plan artifacts here and reuse them across runs")
    return parser.parse_args(argv)


def build_options(args: argparse.Namespace) -> Options:
    """Validate every list before any work, with one clear error."""
    if args.peak_size < 16:
        raise StamError(f"--peak-size must be >= 16, got {args.peak_size}")
    if args.iters < 1 or args.warmup < 0:
        raise StamError(f"--iters must be >= 1 and --warmup >= 0, got {args.iters} and {args.warmup}")
    if args.onnx_dir is not None:
        _make_dir(args.onnx_dir, "--onnx-dir")
    device = _resolve_device(args.device)
    return Options(
        models=_choices(args.models, MODELS, "--models"),
        pairs=_pairs(args),
        batches=_batches(args.batch),
        device=device,
        iters=args.iters,
        warmup=args.warmup,
        onnx_dir=args.onnx_dir,
        peak_size=args.peak_size,
        interleave=args.interleave,
        compile_mode=args.compile_mode or default_compile_mode(device),
    )


def _make_dir(folder: Path, flag: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ArtifactError(f"{flag} {folder}: cannot create the folder ({error.strerror})") from None


def _choices(text: str, allowed: Sequence[str], flag: str) -> tuple[str, ...]:
    values = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [value for value in values if value not in allowed]
    if unknown or not values:
        raise StamError(f"{flag}: unknown {', '.join(unknown) or '(empty)'}; choose from {', '.join(allowed)}")
    return values


def _pairs(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    """--pairs as given, else every backend with every precision."""
    if args.pairs is None:
        backends = _choices(args.backends, BACKENDS, "--backends")
        return tuple((b, p) for b in backends for p in _choices(args.precision, PRECISIONS, "--precision"))
    pairs = tuple(dict.fromkeys(tuple(part.strip().split(":", 1)) for part in args.pairs.split(",") if part.strip()))
    if not pairs or any(len(pair) != 2 for pair in pairs):
        raise StamError(f"--pairs must be a comma list of BACKEND:PRECISION, got {args.pairs!r}")
    _choices(",".join(b for b, _ in pairs), BACKENDS, "--pairs backend")
    _choices(",".join(p for _, p in pairs), PRECISIONS, "--pairs precision")
    return pairs


def _batches(text: str) -> tuple[int, ...]:
    try:
        batches = tuple(dict.fromkeys(int(part) for part in text.split(",")))
    except ValueError:
        batches = ()
    if not batches or min(batches) < 1:
        raise StamError(f"--batch must be a comma list of positive integers, got {text!r}")
    return batches


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise StamError("--device cuda: torch sees no CUDA device (a CUDA build of torch and a GPU are needed)")
    return device


def output_paths(args: argparse.Namespace, device: str) -> tuple[Path, Path, Path]:
    """JSON, Markdown and PNG paths; their folders must exist before minutes of measuring."""
    if args.json is None:
        _make_dir(args.out, "--out")
    json_path = args.json or args.out / f"throughput_{device}.json"
    paths = (json_path, args.markdown or json_path.with_suffix(".md"), args.plot or json_path.with_suffix(".png"))
    for path in paths:
        if not path.parent.is_dir():
            raise ArtifactError(f"{path}: output directory {path.parent} does not exist")
    return paths


# --- measuring ---------------------------------------------------------------------------------------


def measure_peaks(options: Options, log: Log) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The peak per dtype the run uses (the best library's on a CPU), and the detail behind it.

    CPU: fp32 always (the reference), bf16 and int8 when a run uses them; GPU: PyTorch's matmul for
    each floating-point precision (fp16 only there).
    """
    used = {precision for _, precision in options.pairs}
    if options.device == "cuda":
        return _cuda_peaks([p for p in ("fp32", "fp16", "bf16") if p in used], log), {}
    from benchmarks.peak import measure_cpu_peaks, peaks_document, theoretical_peak

    dtypes = tuple(p for p in ("fp32", "bf16", "int8") if p == "fp32" or p in used)
    measured = measure_cpu_peaks(dtypes, size=options.peak_size, log=log)
    detail = peaks_document(measured, {})
    best = detail["best"]
    detail["theoretical_fp32"] = theoretical_peak(best["fp32"]["tflops"] if "fp32" in best else None)
    log(f"theoretical fp32 peak: {report.theory_line(detail['theoretical_fp32'])}")
    peaks = [
        {"device": "cpu", "dtype": dtype, "size": m["size"], "tflops": m["tflops"], "library": m["library"]}
        for dtype, m in best.items()
    ]
    return peaks, detail


def _cuda_peaks(dtypes: list[str], log: Log) -> list[dict[str, Any]]:
    peaks = []
    for dtype in dtypes:
        peak = matmul_peak("cuda", dtype)
        log(f"matmul peak cuda {dtype} ({peak.size}x{peak.size}): {peak.tflops:.2f} TFLOP/s")
        peaks.append({**asdict(peak), "library": "torch"})
    return peaks


def measure(
    runner: Runner, batch: int, options: Options, work: dict[str, Any], peaks: dict[str, float], label: tuple[str, str]
) -> dict[str, Any]:
    """Time one (runner, batch) and derive videos/s, TFLOP/s and the fraction of the matmul peak."""
    step = runner.prepare(batch)
    return derive(time_step(step, options.iters, options.warmup, runner.clock), runner.clock, batch, work, peaks, label)


def derive(
    latencies: list[float],
    clock: str,
    batch: int,
    work: dict[str, Any],
    peaks: dict[str, float],
    label: tuple[str, str],
) -> dict[str, Any]:
    """One result entry from per-iteration seconds: median latency, videos/s, TFLOP/s, fraction of the peak."""
    stats = summarize(latencies)
    videos_per_s = batch / (stats.median_ms / 1e3)
    tflops = work["gflops"] * videos_per_s / 1e3
    peak = peaks.get(label[1])
    return {
        "model": work["model"],
        "frames": work["frames"],
        "backend": label[0],
        "precision": label[1],
        "batch": batch,
        "clock": clock,
        "latency": asdict(stats),
        "videos_per_s": videos_per_s,
        "tflops": tflops,
        "peak_fraction": tflops / peak if peak else None,
    }


def run_interleaved(
    options: Options, works: list[dict[str, Any]], peaks: dict[str, float], workdir: Path, log: Log
) -> tuple[list[dict], list[dict]]:
    """Every pair of one model and batch opened together and timed in turns, one call each per round.

    On a shared machine the load changes over minutes; taking turns exposes every backend to the
    same load, so their ratios hold even when the absolute numbers move (a sequential run would
    credit whichever ran in a quiet minute).
    """
    results, skipped = [], []
    for work in works:
        for batch in options.batches:
            opened, missed = _open_all(options, work, batch, workdir, log)
            skipped += missed
            try:
                latencies = _take_turns([(step, runner.clock) for _, runner, step in opened], options)
            finally:
                for _, runner, _ in opened:
                    runner.close()
            for (label, runner, _), seconds in zip(opened, latencies):
                results.append(derive(seconds, runner.clock, batch, work, peaks, label))
                log(_progress_line(results[-1]))
    return results, skipped


def _open_all(
    options: Options, work: dict[str, Any], batch: int, workdir: Path, log: Log
) -> tuple[list[tuple[tuple[str, str], Runner, Any]], list[dict]]:
    opened, skipped = [], []
    for backend, precision in options.pairs:
        try:
            if static_skip_reason(backend, precision, options.device):
                raise Skip(static_skip_reason(backend, precision, options.device))
            runner = open_runner(backend, work["model"], precision, options.device, workdir, options.compile_mode)
            opened.append(((backend, precision), runner, runner.prepare(batch)))
        except (Skip, StamError) as reason:
            skipped.append({"backend": backend, "precision": precision, "model": work["model"], "reason": str(reason)})
            log(f"skip {backend} {precision} {work['model']}: {reason}")
    return opened, skipped


def _take_turns(steps: list[tuple[Any, str]], options: Options) -> list[list[float]]:
    """Per (step, clock), its seconds per call over `iters` rounds after `warmup` untimed rounds."""
    for _ in range(options.warmup):
        for step, _ in steps:
            step()
    latencies: list[list[float]] = [[] for _ in steps]
    for _ in range(options.iters):
        for index, (step, clock) in enumerate(steps):
            latencies[index] += time_step(step, 1, 0, clock)
    return latencies


def run_combination(
    backend: str,
    precision: str,
    options: Options,
    works: list[dict[str, Any]],
    peaks: dict[str, float],
    workdir: Path,
    log: Log,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """All models and batches of one backend x precision; (results, skipped)."""
    results: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for work in works:
        try:
            runner = open_runner(backend, work["model"], precision, options.device, workdir, options.compile_mode)
        except (Skip, StamError) as reason:  # StamError: an export or build this machine cannot do
            skipped.append({"backend": backend, "precision": precision, "model": work["model"], "reason": str(reason)})
            log(f"skip {backend} {precision} {work['model']}: {reason}")
            continue
        try:
            for batch in options.batches:
                outcome = _measure_or_skip(runner, batch, options, work, peaks, (backend, precision))
                (results if "latency" in outcome else skipped).append(outcome)
                log(_progress_line(outcome))
        finally:
            runner.close()
    return results, skipped


def _measure_or_skip(
    runner: Runner, batch: int, options: Options, work: dict[str, Any], peaks: dict[str, float], label: tuple[str, str]
) -> dict[str, Any]:
    """A measurement, or a skipped entry when the batch does not fit or cannot be built."""
    try:
        return measure(runner, batch, options, work, peaks, label)
    except (Skip, StamError, MemoryError, _cuda_oom()) as error:
        reason = error_line(error)
        return {
            "backend": label[0],
            "precision": label[1],
            "model": work["model"],
            "batch": batch,
            "reason": f"batch {batch}: {reason}",
        }


def _cuda_oom() -> type[BaseException]:
    import torch

    return torch.cuda.OutOfMemoryError


def _progress_line(outcome: dict[str, Any]) -> str:
    head = f"{outcome['model']} {outcome['backend']} {outcome['precision']} batch {outcome.get('batch')}"
    if "latency" not in outcome:
        return f"skip {head}: {outcome['reason']}"
    latency = outcome["latency"]
    return (
        f"{head}: median {latency['median_ms']:.1f} ms (p90 {latency['p90_ms']:.1f}, p99 {latency['p99_ms']:.1f}), "
        f"{outcome['videos_per_s']:.3g} videos/s, {outcome['tflops']:.3g} TFLOP/s"
    )


def run_benchmark(options: Options, command: str, log: Log = print) -> dict[str, Any]:
    """Everything the report needs, as one JSON-ready document."""
    machine = report.describe_machine(options.device)
    log(f"machine: {report.machine_line(machine)}")
    works = [count_work(model).to_dict() for model in options.models]
    for work in works:
        log(_work_line(work))
    log(counted_ops_note())
    peak_list, peak_detail = measure_peaks(options, log)
    peaks = {peak["dtype"]: peak["tflops"] for peak in peak_list}
    results: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    with _workdir(options.onnx_dir) as folder:
        workdir = Path(folder)
        if options.interleave:
            results, skipped = run_interleaved(options, works, peaks, workdir, log)
        for backend, precision in () if options.interleave else options.pairs:
            reason = static_skip_reason(backend, precision, options.device)
            if reason:
                skipped.append({"backend": backend, "precision": precision, "model": None, "reason": reason})
                continue
            found, missed = run_combination(backend, precision, options, works, peaks, workdir, log)
            results += found
            skipped += missed
    return {
        "schema": report.SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command,
        "settings": {
            "models": list(options.models),
            "pairs": [list(pair) for pair in options.pairs],
            "backends": list(dict.fromkeys(b for b, _ in options.pairs)),
            "batches": list(options.batches),
            "device": options.device,
            "iters": options.iters,
            "warmup": options.warmup,
            "interleaved": options.interleave,
            "compile_mode": options.compile_mode,
            "backends_detail": describe_backends(options.device, options.compile_mode),
        },
        "machine": machine,
        "work": works,
        "work_note": counted_ops_note(),
        "peaks": peak_list,
        "peak_detail": peak_detail,
        "results": results,
        "skipped": skipped,
        "paper": report.PAPER,
    }


def _work_line(work: dict[str, Any]) -> str:
    text = (
        f"work {work['model']} ({work['frames']} frames): {work['gmacs']:.1f} GMACs = {work['gflops']:.1f} GFLOPs "
        f"per video ({work['gmacs_without_attention']:.1f} GMACs without attention matmuls)"
    )
    if work["paper_gmacs"]:
        text += (
            f"; paper {work['paper_gmacs']:.0f} GFLOPs (MACs): ratio {work['ratio']:.3f}, "
            f"{work['ratio_without_attention']:.3f} without attention matmuls"
        )
    return text


def _workdir(folder: Path | None) -> contextlib.AbstractContextManager:
    """The given artifact folder, or a temporary one removed afterwards."""
    return contextlib.nullcontext(folder) if folder else tempfile.TemporaryDirectory(prefix="stam-throughput-")


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(run, list(sys.argv[1:] if argv is None else argv))


def run(argv: list[str]) -> int:
    args = parse_args(argv)
    options = build_options(args)
    json_path, markdown_path, plot_path = output_paths(args, options.device)
    command = shlex.join(["python", "-m", "benchmarks.throughput", *argv])
    document = run_benchmark(options, command)
    report.write_json(document, json_path)
    markdown = report.render_markdown(document)
    markdown_path.write_text(markdown)
    print("\n" + markdown)
    print(f"wrote {json_path}, {markdown_path}, {write_plot(document, plot_path, json_path)}")
    return 0


def write_plot(document: dict[str, Any], plot_path: Path, json_path: Path) -> str:
    """The PNG, or why there is none: a machine without matplotlib still gets its JSON and Markdown."""
    try:
        return str(report.render_plot(document, plot_path))
    except ImportError:
        return (
            f"no plot (matplotlib not installed: pip install '.[bench]', then "
            f"python -m benchmarks.report {json_path} --json {json_path})"
        )


if __name__ == "__main__":
    sys.exit(main())
