"""Benchmark results as data: the JSON document, the machine description, the Markdown and plot made from it, merges.

JSON is written first and is the only source: the Markdown tables and the PNG are rendered from the
JSON dict alone, so an old results file can be re-rendered without re-measuring.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from runtime.contract import write_atomic
from runtime.cpu import cpu_flags, cpu_model, usable_cpus

SCHEMA = "stam-deploy/throughput/v1"
TOP_LEVEL_KEYS = (
    "schema",
    "created",
    "command",
    "settings",
    "machine",
    "work",
    "work_note",
    "peaks",
    "results",
    "skipped",
    "paper",
)
_SETTINGS_KEYS = ("models", "pairs", "backends", "batches", "device", "iters", "warmup", "backends_detail")
RESULT_KEYS = (
    "model",
    "frames",
    "backend",
    "precision",
    "batch",
    "clock",
    "latency",
    "videos_per_s",
    "tflops",
    "peak_fraction",
)

# The paper's throughput column: one V100, mixed precision (STAM, Sharir et al. 2021, Table 1).
PAPER = {
    "hardware": "1x NVIDIA V100, mixed precision",
    "videos_per_s": {"stam_16": 20.0, "stam_64": 4.8},
    "gflops": {"stam_8": 135.0, "stam_16": 270.0, "stam_32": 540.0, "stam_64": 1080.0},
}
# The x86 flags that decide which kernels run STAM (fp32 width, int8 dot products, bf16): a table
# measured on an AVX2 CPU and one measured on an AVX-512 VNNI/BF16 CPU are not comparable.
ISA_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_bf16",
    "amx_int8",
    "asimd",
    "sve",
)
_LIBRARIES = (
    "torch",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
    "openvino",
    "numpy",
    "tensorrt",
    "tensorrt_rtx",
    "matplotlib",
)


# --- machine -----------------------------------------------------------------------------------------


def stamp(module: str, argv: Sequence[str] | None) -> dict[str, str]:
    """When and by which command a results document was made: every results file carries both."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": shlex.join(["python", "-m", module, *arguments]),
    }


def describe_machine(device: str) -> dict[str, Any]:
    """CPU model and cores, GPU name and driver (on CUDA), OS, Python and library versions."""
    import torch

    machine: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_flags": [flag for flag in ISA_FLAGS if flag in cpu_flags()],
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": usable_cpus(),
        "torch_threads": torch.get_num_threads(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "libraries": {name: _version(name) for name in _LIBRARIES if _version(name)},
        "gpu": _describe_gpu() if device == "cuda" else None,
    }
    return machine


def _version(distribution: str) -> str | None:
    try:
        return importlib_metadata.version(distribution)
    except importlib_metadata.PackageNotFoundError:
        return None


def _describe_gpu() -> dict[str, Any]:
    import torch

    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    return {
        "name": props.name,
        "compute_capability": f"{props.major}.{props.minor}",
        "memory_gib": round(props.total_memory / 2**30, 1),
        "driver": _nvidia_driver(),
        "cuda_runtime": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
    }


def _nvidia_driver() -> str | None:
    try:
        output = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return output.strip().splitlines()[0] if output.strip() else None


def machine_line(machine: dict[str, Any]) -> str:
    """One line of prose for the tables' caption (fields a results file does not record are left out)."""
    libraries = ", ".join(f"{name} {version}" for name, version in machine["libraries"].items())
    gpu = machine.get("gpu")
    gpu_text = (
        f"GPU {gpu['name']} (sm {gpu['compute_capability']}, driver {gpu['driver']}, CUDA {gpu['cuda_runtime']}); "
        if gpu
        else "no GPU; "
    )
    threads = f", torch threads {machine['torch_threads']}" if machine.get("torch_threads") else ""
    system = ", ".join(part for part in (machine.get("os"), _python(machine)) if part)
    return (
        f"CPU {cpu_line(machine)}, {machine['cpu_cores_usable']} of {machine['cpu_cores']} cores usable"
        f"{threads}; {gpu_text}{system + '; ' if system else ''}{libraries}"
    )


def cpu_line(machine: dict[str, Any]) -> str:
    """The CPU model with its microarchitecture and instruction-set flags, as far as the results file records them."""
    details = [machine[key] for key in ("cpu_microarchitecture", "cpu_note") if machine.get(key)]
    if "cpu_flags" in machine:
        details.append("flags: " + (" ".join(machine["cpu_flags"]) or "none of " + " ".join(ISA_FLAGS)))
    elif not machine.get("cpu_note"):
        details.append("flags not recorded")
    return f"{machine['cpu']} ({'; '.join(details)})"


def _python(machine: dict[str, Any]) -> str | None:
    return f"Python {machine['python']}" if machine.get("python") else None


# --- JSON --------------------------------------------------------------------------------------------


# What every results document that docs may quote carries: its format, when, how and where it was measured.
DOCUMENT_KEYS = ("schema", "created", "command", "machine")


def write_json(document: Any, path: Path, required: Sequence[str] = TOP_LEVEL_KEYS) -> Path:
    """The one results writer of the benchmarks: checks that a document (a dict) holds the `required`
    keys (the throughput schema's by default), then writes it whole or not at all; an unwritable path
    is one ArtifactError."""
    missing = [key for key in required if key not in document]
    if missing:
        raise ValueError(f"results document lacks {', '.join(missing)}")
    write_atomic(path, (json.dumps(document, indent=2) + "\n").encode())
    return path


def read_json(path: Path) -> dict[str, Any]:
    """A results file, checked for the keys the renderers and the merge read."""
    document = json.loads(path.read_text())
    missing = [key for key in TOP_LEVEL_KEYS if key not in document]
    missing += [f"settings.{key}" for key in _SETTINGS_KEYS if key not in document.get("settings", {})]
    if missing or document["schema"] != SCHEMA:
        raise ValueError(
            f"{path}: not a {SCHEMA} results file (missing {', '.join(missing) or 'nothing'}, "
            f"schema {document.get('schema')!r})"
        )
    return document


# --- Markdown ----------------------------------------------------------------------------------------


def render_markdown(document: dict[str, Any]) -> str:
    """Every table of the report, from the JSON document alone."""
    settings = document["settings"]
    parts = [
        "# STAM throughput",
        f"Machine: {machine_line(document['machine'])}.",
        f"Device `{settings['device']}`; {settings['iters']} timed iterations after {settings['warmup']} warm-up"
        f"{' (backends taking turns, one call each per round)' if settings.get('interleaved') else ''}; "
        f"random weights; frames per video = the variant's trained count. Command: `{document['command']}`",
        "Backends: "
        + "; ".join(
            f"**{name}**: {text}" for name, text in settings["backends_detail"].items() if name in settings["backends"]
        )
        + ".",
        "## Work per video",
        markdown_table(*_work_rows(document)),
        document["work_note"],
    ]
    for batch in settings["batches"]:
        parts += [f"## Beside the paper: videos/s at batch {batch}", markdown_table(*_paper_rows(document, batch))]
    parts += [
        "## All measurements",
        markdown_table(*_result_rows(document)),
        '## Matrix-multiply peak (same run; "of matmul peak" uses these)',
        markdown_table(*_peak_rows(document)),
        *_peak_detail(document),
        "## Skipped",
        _skipped_list(document),
    ]
    return "\n\n".join(part for part in parts if part) + "\n"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """The one Markdown table writer of the benchmarks: a header row, its rule, one line per row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _sig(value: float | None) -> str:
    """Three significant digits: throughputs span 0.02 (STAM-64 on a CPU) to thousands (a GPU at batch 32)."""
    return "—" if value is None else f"{value:.3g}"


def _work_rows(document: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = [
        "Model",
        "Frames",
        "Paper GFLOPs (= GMACs)",
        "Ours GMACs",
        "Ours GMACs w/o attention matmuls",
        "Ours GFLOPs (2 x MACs)",
        "Ours / paper",
        "w/o attention / paper",
    ]
    rows = [
        [
            w["model"],
            str(w["frames"]),
            _fmt(w["paper_gmacs"], 0),
            _fmt(w["gmacs"], 1),
            _fmt(w["gmacs_without_attention"], 1),
            _fmt(w["gflops"], 1),
            _fmt(w["ratio"], 3),
            _fmt(w["ratio_without_attention"], 3),
        ]
        for w in document["work"]
    ]
    return header, rows


def _series(results: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    """(backend, precision) pairs in the order they were measured."""
    return list(dict.fromkeys((r["backend"], r["precision"]) for r in results))


def _paper_rows(document: dict[str, Any], batch: int) -> tuple[list[str], list[list[str]]]:
    results = [r for r in document["results"] if r["batch"] == batch]
    series = _series(results)
    header = ["Model", "Frames", "Paper GFLOPs", f"Paper videos/s ({document['paper']['hardware']})"]
    header += [f"{backend} {precision}" for backend, precision in series]
    rows = []
    for work in document["work"]:
        by_series = {(r["backend"], r["precision"]): r for r in results if r["model"] == work["model"]}
        row = [
            work["model"],
            str(work["frames"]),
            _fmt(work["paper_gmacs"], 0),
            _fmt(document["paper"]["videos_per_s"].get(work["model"]), 1),
        ]
        row += [_sig(by_series[key]["videos_per_s"]) if key in by_series else "—" for key in series]
        rows.append(row)
    return header, rows


def _result_rows(document: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = [
        "Model",
        "Frames",
        "Backend",
        "Precision",
        "Batch",
        "Median ms",
        "p90 ms",
        "p99 ms",
        "Videos/s",
        "TFLOP/s",
        "Of matmul peak",
    ]
    rows = []
    for r in document["results"]:
        latency = r["latency"]
        fraction = None if r["peak_fraction"] is None else 100 * r["peak_fraction"]
        rows.append(
            [
                r["model"],
                str(r["frames"]),
                r["backend"],
                r["precision"],
                str(r["batch"]),
                _fmt(latency["median_ms"], 1),
                _fmt(latency["p90_ms"], 1),
                _fmt(latency["p99_ms"], 1),
                _sig(r["videos_per_s"]),
                _sig(r["tflops"]),
                "—" if fraction is None else f"{fraction:.0f}%",
            ]
        )
    return header, rows


def _peak_rows(document: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["Device", "dtype", "Best library", "Size", "TFLOP/s"]
    return header, [
        [p["device"], p["dtype"], p.get("library", "torch"), str(p["size"]), _sig(p["tflops"])]
        for p in document["peaks"]
    ]


def _peak_detail(document: dict[str, Any]) -> list[str]:
    """Every library's matmul and the theoretical peak (CPU runs; older results files have none)."""
    detail = document.get("peak_detail") or {}
    if not detail:
        return []
    rows = [
        [m["library"], m["dtype"], str(m["size"]), _sig(m["tflops"]) if m["tflops"] else "—", m["note"]]
        for m in detail["measured"]
    ]
    return [
        "### Every library's matmul",
        markdown_table(["Library", "dtype", "Size", "TFLOP/s", "Not measured because"], rows),
        f"Theoretical fp32 peak: {theory_line(detail['theoretical_fp32'])}.",
    ]


def theory_line(theory: dict[str, Any]) -> str:
    """The theoretical fp32 peak in one sentence: what it is computed from, and what is not known."""
    if theory.get("fp32_flops_per_cycle_per_core") is None:
        return f"not known ({theory.get('note', 'no CPU description')}: {theory.get('microarchitecture')})"
    base = (
        f"{theory['microarchitecture']}, {theory['fp32_flops_per_cycle_per_core']} FLOPs/cycle/core x "
        f"{theory['cores']} cores"
    )
    if theory["tflops"] is None:
        text = f"{base}; clock unknown"
    else:
        text = f"{base} x {theory[theory['clock_used'] + '_clock_ghz']:.2f} GHz ({theory['clock_used']}) = {theory['tflops']:.3g} TFLOP/s"
    implied = theory.get("implied_clock_ghz")
    if implied:
        text += f"; the best measured fp32 matmul implies {implied:.2f} GHz"
        nominal = theory.get("nominal_clock_ghz")
        if nominal and implied < 0.8 * nominal:
            text += " (below the nominal clock: the cores were shared with other work while measuring)"
    if theory.get("clock_used") == "nominal":
        text += "; the maximum clock is hidden (no cpufreq, e.g. under a hypervisor), so the nominal one is used and boost can exceed it"
    return text


def _skipped_list(document: dict[str, Any]) -> str:
    if not document["skipped"]:
        return "Nothing skipped."
    return "\n".join(
        f"- {s['backend']} {s['precision']}" + (f" ({s['model']})" if s.get("model") else "") + f": {s['reason']}"
        for s in document["skipped"]
    )


# --- plot --------------------------------------------------------------------------------------------


def render_plot(document: dict[str, Any], path: Path) -> Path:
    """Videos/s against frames per video, one line per backend and precision, one panel per batch size."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    batches = document["settings"]["batches"]
    figure = Figure(figsize=(6 * len(batches), 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(batches), squeeze=False)[0]
    for axis, batch in zip(axes, batches):
        _plot_batch(axis, document, batch)
    figure.suptitle(f"STAM throughput on {document['settings']['device']}: {_short_machine(document['machine'])}")
    figure.savefig(path, dpi=120)
    return path


def _plot_batch(axis: Any, document: dict[str, Any], batch: int) -> None:
    from matplotlib.ticker import FuncFormatter, LogFormatter, NullFormatter

    results = [r for r in document["results"] if r["batch"] == batch]
    for backend, precision in _series(results):
        points = sorted(
            (r["frames"], r["videos_per_s"]) for r in results if (r["backend"], r["precision"]) == (backend, precision)
        )
        axis.plot(*zip(*points), marker="o", label=f"{backend} {precision}")
    frames = {w["model"]: w["frames"] for w in document["work"]}
    paper = [(frames[m], v) for m, v in document["paper"]["videos_per_s"].items() if m in frames]
    if paper:
        axis.plot(
            *zip(*sorted(paper)),
            "k*",
            markersize=12,
            linestyle="none",
            label=f"paper ({document['paper']['hardware']})",
        )
    axis.set(
        xscale="log", yscale="log", xlabel="frames per video (model variant)", ylabel="videos/s", title=f"batch {batch}"
    )
    axis.set_xticks(sorted(set(frames.values())))
    axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.xaxis.set_minor_formatter(NullFormatter())
    axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize="small")


def _short_machine(machine: dict[str, Any]) -> str:
    gpu = machine.get("gpu")
    return gpu["name"] if gpu else f"{machine['cpu']} ({machine['cpu_cores_usable']} cores)"


# --- merging runs ------------------------------------------------------------------------------------


def merge_documents(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """One document from runs on the same machine and device (e.g. eager and compiled runs made separately)."""
    first = documents[0]
    for other in documents[1:]:
        if (other["schema"], other["settings"]["device"], _short_machine(other["machine"])) != (
            first["schema"],
            first["settings"]["device"],
            _short_machine(first["machine"]),
        ):
            raise ValueError("cannot merge runs of different schemas, devices or machines")
    merged = json.loads(json.dumps(first))
    settings = merged["settings"]
    for other in documents[1:]:
        for key in ("models", "pairs", "backends", "batches"):
            settings[key] += [item for item in other["settings"][key] if item not in settings[key]]
        merged["work"] += [w for w in other["work"] if w["model"] not in {m["model"] for m in merged["work"]}]
        merged["peaks"] += [
            p
            for p in other["peaks"]
            if (p["device"], p["dtype"]) not in {(q["device"], q["dtype"]) for q in merged["peaks"]}
        ]
        for backend in other["settings"]["backends"]:  # each backend as the run that measured it ran it
            settings["backends_detail"][backend] = other["settings"]["backends_detail"][backend]
        merged["results"] += other["results"]
        merged["skipped"] += other["skipped"]
        merged["command"] += " && " + other["command"]
    settings["batches"].sort()
    return merged


def main(argv: list[str] | None = None) -> int:
    """`python -m benchmarks.report RUN.json... --json OUT`: merge runs and render Markdown and PNG beside OUT."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=main.__doc__)
    parser.add_argument("runs", nargs="+", type=Path, help="results JSON files of benchmarks.throughput")
    parser.add_argument("--json", type=Path, required=True, help="merged JSON; .md and .png are written beside it")
    args = parser.parse_args(argv)
    try:
        document = merge_documents([read_json(path) for path in args.runs])
        write_json(document, args.json)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args.json.with_suffix(".md").write_text(render_markdown(document))
    render_plot(document, args.json.with_suffix(".png"))
    print(f"wrote {args.json} and its .md and .png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
