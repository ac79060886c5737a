"""`python -m benchmarks.docs_tables`: the docs' measured tables, rendered from `benchmarks/results/*.json`.

Every number the docs show is read from a results file, so a table cannot drift from what was
measured. Each results file has one renderer in `RENDERERS` (file name -> function of the JSON
document returning Markdown); the output, `docs/generated/<stem>.md`, ends with the machine (CPU
model and flags, cores, GPU, library versions), the date and the command of that file, and the
docs pages include it with pymdownx.snippets (`--8<-- "generated/<stem>.md"`). A results file
without its machine, date or command is refused. Adding a results file is one renderer and one
registry line. The README's headline numbers are rendered here too, between two markers, and a
test checks that the README holds exactly that rendering.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks import accuracy_table, batch, batch_cluster, report, sampling, serve, serve_soak, timeline
from runtime.errors import StamError, run_cli

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = RESULTS.parents[1]
OUT = ROOT / "docs" / "generated"
README = ROOT / "README.md"
REQUIRED = ("machine", "created", "command")
HEADLINE_START = "<!-- headline numbers: rendered by python -m benchmarks.docs_tables -->"
HEADLINE_END = "<!-- end of headline numbers -->"

Document = dict[str, Any]


# --- provenance -------------------------------------------------------------------------------


def check_provenance(name: str, document: Any) -> None:
    """Refuse a results file that does not say where, when and how it was measured."""
    if not isinstance(document, dict):
        raise StamError(f"{name}: a results file is a JSON object with {', '.join(REQUIRED)}")
    missing = [key for key in REQUIRED if not document.get(key)]
    if missing:
        raise StamError(f"{name}: no {', '.join(missing)}: every results file records its machine, date and command")


def provenance(name: str, document: Document) -> str:
    """The footer of every generated table: machine, date and command, from the results file itself."""
    return (
        f"Measured on: {report.machine_line(document['machine'])}.  \n"
        f"Date: {document['created'][:10]}. Command: `{document['command']}`  \n"
        f"Results file: `benchmarks/results/{name}`."
    )


# --- renderers --------------------------------------------------------------------------------


def videos_per_second_by_batch(document: Document, model: str) -> str:
    """One row per batch size, one column per (backend, precision): videos/s of `model`."""
    results = [r for r in document["results"] if r["model"] == model]
    series = report._series(results)
    by_key = {(r["backend"], r["precision"], r["batch"]): r for r in results}
    rows = [
        [str(size)]
        + [report._sig(by_key[(b, p, size)]["videos_per_s"]) if (b, p, size) in by_key else "—" for b, p in series]
        for size in sorted({r["batch"] for r in results})
    ]
    return report.markdown_table(["batch", *(f"{b} {p}" for b, p in series)], rows)


def backends_side_by_side(document: Document) -> str:
    """Batch-1 latency of each backend, against ONNX Runtime fp32 and the best matmul of its dtype."""
    results = [r for r in document["results"] if r["batch"] == 1]
    baseline = next(
        (r["latency"]["median_ms"] for r in results if (r["backend"], r["precision"]) == ("onnxruntime", "fp32")),
        None,
    )
    header = ["model", "backend", "precision", "s/video (median)", "videos/s", "vs ONNX Runtime fp32", "of matmul peak"]
    rows = [
        [
            r["model"],
            r["backend"],
            r["precision"],
            f"{r['latency']['median_ms'] / 1000:.2f}",
            report._sig(r["videos_per_s"]),
            f"{baseline / r['latency']['median_ms']:.2f}x" if baseline else "—",
            "—" if r["peak_fraction"] is None else f"{100 * r['peak_fraction']:.0f}%",
        ]
        for r in results
    ]
    return report.markdown_table(header, rows)


def matmul_peaks(document: Document) -> str:
    """The matmul every library reached in the same run, and the theoretical peak where known."""
    parts = [
        'Matrix-multiply peak of the same run (the denominator of "of matmul peak"):',
        report.markdown_table(*report._peak_rows(document)),
        *(part.replace("### ", "") + (":" if part.startswith("###") else "") for part in report._peak_detail(document)),
    ]
    return "\n\n".join(parts)


def render_throughput(document: Document) -> str:
    models = list(dict.fromkeys(r["model"] for r in document["results"]))
    parts = ["Work per video, counted from the model:", "", report.markdown_table(*report._work_rows(document))]
    parts += ["", document["work_note"], ""]
    if document["settings"]["batches"] == [1]:
        parts += ["Backends side by side at batch 1:", "", backends_side_by_side(document)]
    for model in models:
        parts += ["", f"{model}: videos/s by batch size:", "", videos_per_second_by_batch(document, model)]
    parts += ["", "Every measurement (latency percentiles, TFLOP/s, share of the matmul peak):", ""]
    parts += [report.markdown_table(*report._result_rows(document)), "", matmul_peaks(document)]
    return "\n".join(parts)


def render_pipeline(document: Document) -> str:
    """Decode + sample + preprocess per clip and method, then the end-to-end runs when present."""
    results = document["results"]
    methods = list(dict.fromkeys(r["method"] for r in results))
    baseline = document["settings"]["baseline"]
    by_key = {(r["clip"], r["method"]): r for r in results}
    clips = list(dict.fromkeys(r["clip"] for r in results))
    header = ["clip", *(f"{method} ms" for method in methods)]
    header += [f"{baseline} / {method}" for method in methods if method != baseline]
    rows = []
    for clip in clips:
        first = next(r for r in results if r["clip"] == clip)
        row = [f"{clip} ({first['width']}x{first['height']})"]
        row += [f"{by_key[(clip, m)]['total_ms']:.0f}" if (clip, m) in by_key else "—" for m in methods]
        reference = by_key.get((clip, baseline))
        row += [
            f"{reference['total_ms'] / by_key[(clip, m)]['total_ms']:.1f}x"
            if reference and (clip, m) in by_key
            else "—"
            for m in methods
            if m != baseline
        ]
        rows.append(row)
    settings = document["settings"]
    parts = [
        f"T={settings['frames']} of a {settings['seconds']} s clip at {settings['fps']} fps ({settings['codec']}); "
        f"median of {settings['repeats']} after {settings['warmup']} warm-up. Methods: "
        + "; ".join(f"**{name}**: {text}" for name, text in settings["methods"].items()),
        "",
        report.markdown_table(header, rows),
    ]
    section = document.get("end_to_end")
    if section:
        parts += ["", f"End to end: decode workers feeding one model ({section['model']} on {section['backend']}):", ""]
        parts.append(end_to_end_table(section["runs"]))
    return "\n".join(parts)


def end_to_end_table(runs: Sequence[Document]) -> str:
    stages = list(runs[0]["per_video_ms"])
    header = ["decode workers", "batch", "videos/s", *(f"{stage} ms/video" for stage in stages), "inference busy"]
    rows = [
        [
            str(r["workers"]),
            str(r["batch_size"]),
            report._sig(r["videos_per_s"]),
            *(f"{r['per_video_ms'][stage]:.0f}" for stage in stages),
            f"{r['inference_busy']:.0%}",
        ]
        for r in runs
    ]
    return report.markdown_table(header, rows)


def render_sampling(document: Document) -> str:
    settings = document["settings"]
    return (
        f"{settings['video']}; T={settings['frames']} {settings['mode']}; median of {settings['repeats']} runs "
        f"(decoding from the start on videos over 5 minutes: {settings['baseline_repeats_over_5_min']}); "
        "wall ms with the process's CPU ms (all threads) in brackets.\n\n" + sampling.render_table(document)
    )


def render_timeline(document: Document) -> str:
    return timeline.render(document)


def render_batch(document: Document) -> str:
    return batch.render(document)


def render_serve(document: Document) -> str:
    settings = document["settings"]
    cells = [serve.Cell(**cell) for cell in document["cells"]]
    return (
        f"{document['frames']} frames per request; gRPC on localhost; {settings['requests']} requests per client, "
        f"{settings['repeats']} repeats per cell; `--max-batch {settings['max_batch']} --max-queue-delay-us "
        f"{settings['max_queue_delay_us']}`; `load` is the host's 1-minute load average.\n\n" + serve.render_rows(cells)
    )


def render_soak(document: Document) -> str:
    """The soak's settings in one line, then its table and the server's resources (the writer's own rendering)."""
    settings = document["settings"]
    return (
        f"{settings['minutes']:g} minutes; {settings['clients']} clients; {settings['frames']} frames per request; "
        f"{settings['decode_workers']} decode workers; model {settings['model']}; server limits: {limits_text(settings['limits'])}.\n\n"
        + serve_soak.render(document["summary"])
    )


def render_hostile(document: Document) -> str:
    """Each hostile file through runtime.infer against the 720p clip, then the server's case, with the targets."""
    reference, targets = document["reference_720p"], document["targets"]
    header = ["file", "bytes", "wall s", "peak RSS MB", "refused in one line", "classified with --max-pixels raised"]
    rows = [
        [
            f"720p reference ({reference['file']})",
            "—",
            f"{reference['seconds']:.2f}",
            f"{reference['peak_rss_mb']:.0f}",
            "—",
            "—",
        ]
    ]
    cases = [document[key] for key in ("huge_declared", "size_switch") if key in document]
    rows += [
        [
            case["file"],
            str(case["bytes"]),
            f"{case['default']['seconds']:.2f} ({case['extra_seconds']:+.2f})",
            f"{case['default']['peak_rss_mb']:.0f} ({case['extra_rss_mb']:+.0f})",
            _yes(case["refused_in_one_line"]),
            _yes(case["classified_when_admitted"]),
        ]
        for case in cases
    ]
    parts = [
        f"`python -m runtime.infer MODEL FILE --json` with its default limits; in brackets, the difference from the "
        f"720p clip. Target: refused in one line within {targets['cli_extra_seconds']:g} s and "
        f"{targets['cli_extra_rss_mb']:g} MB of the 720p clip; met: "
        + ", ".join(f"{case['file']} {_yes(case['meets_target'])}" for case in cases)
        + ".",
        report.markdown_table(header, rows),
    ]
    if "serve" in document:
        parts.append(hostile_serve_line(document["serve"], targets))
    return "\n\n".join(parts)


def hostile_serve_line(case: Document, targets: Document) -> str:
    """The server's case in one paragraph: the huge upload among good ones, its memory, the over-size upload."""
    huge, good, rss, oversized = case["huge"], case["good"], case["rss_mb"], case["oversized"]
    return (
        f"`stam-serve` with limits {limits_text(case['limits'])}: the 8192x8192 upload among {good['sent']} concurrent good "
        f"requests ended `{huge['outcome']}` after {huge['seconds']:.2f} s"
        + (f" (`{huge['message']}`)" if huge["message"] else "")
        + f"; good requests answered {good['answered_ok']} / {good['sent']}, slowest {good['max_seconds']:.2f} s; "
        f"server RSS MB before {rss['before']}, peak {rss['peak']}, after {rss['after']} (growth {rss['growth']}); "
        f"an upload of {oversized['bytes']} bytes ended `{oversized['outcome']}`; ready throughout: {_yes(case['ready_throughout'])}. "
        f"Target: refused within {targets['serve_refusal_seconds']:g} s, growth under "
        f"{targets['serve_growth_mb']:g} MB, every good request answered; met: {_yes(case['meets_target'])}."
    )


def limits_text(limits: Document) -> str:
    """`Limits` as its flags: `--max-pixels 8847360, ...` (none where lifted)."""
    return ", ".join(
        f"`--{name.replace('_', '-')} {'none' if value is None else f'{value:.15g}'}`" for name, value in limits.items()
    )


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def render_live(document: Document) -> str:
    """Live sources in real time (N sources, latency, drops), the per-frame cost in each precision (INT8: how it
    was made and run, and its agreement with fp32), and the acceptance and overload runs."""
    runs = [
        [
            str(run["sources"]),
            ", ".join(run["kinds"]),
            f"{run['windows_per_s']:g}",
            *(f"{run['latency_ms'][q]:g}" for q in ("p50", "p95", "p99")),
            str(run["dropped_samples"]),
            f"{run['decode_cpu_s']:g}",
            f"{run['model_wall_s']:g}",
            _yes(run["real_time"]),
        ]
        for run in document["runs"]
    ]
    header = [
        "sources",
        "kinds",
        "windows/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "drops",
        "decode CPU s",
        "model s",
        "real time",
    ]
    cores = document["machine"]["cpu_cores_usable"]
    costs = [
        [
            cost["model"],
            cost["precision"] + (" (simulated)" if cost.get("kernels") == "simulated" else ""),
            f"{cost['frame_s'] * 1000:.1f}",
            f"{cost['window_s'] * 1000:.1f}",
            f"{cost['fps']:g}",
            f"{cost['cameras_per_core']:g}",
        ]
        for cost in document["per_frame"].values()
    ]
    parts = [
        f"Largest number of sources kept in real time: {document['largest_real_time']} "
        f"(p95 latency at most {document['settings']['max_p95']:g} s, no drops).",
        "",
        report.markdown_table(header, runs),
        "",
        f"Cost per sampled frame and per window on {cores} cores, and the cameras one core carries:",
        "",
        report.markdown_table(["model", "precision", "ms/frame", "ms/window", "F", "cameras/core"], costs),
    ]
    if document.get("int8"):
        parts += ["", live_int8(document["int8"])]
    gpu = document.get("gpu_on_paper")
    if gpu:
        parts += ["", f"One {gpu['gpu']}, on paper ({gpu['from']}): {gpu['cameras']} STAM-16 cameras at F = 1.6."]
    acceptance = document.get("acceptance")
    if acceptance:
        parts += ["", live_acceptance(acceptance)]
    overload = document.get("overload")
    if overload:
        latency = overload["latency_ms"]
        parts += [
            "",
            f"Overload: {overload['sources']} STAM-16 cameras (fp32) at F = {overload['fps']:g} (this CPU carries about "
            f"{overload['cameras_carried']:g}), a queue of {overload['queue']} samples per source: "
            f"{overload['dropped_samples']} of {overload['samples']} samples dropped, "
            f"{overload['windows']} windows, latency p50/p95/p99 {latency['p50']:g} / {latency['p95']:g} / "
            f"{latency['p99']:g} ms.",
        ]
    return "\n".join(parts)


def live_int8(int8: Document) -> str:
    """How STAM-16's INT8 pair was made, how ONNX Runtime ran it on this CPU, and how far it is from fp32."""
    kernels = {
        "integer": "ONNX Runtime fused the Q/DQ pairs into integer kernels (8-bit dot products with 32-bit sums)",
        "simulated": "this CPU has no VNNI, so ONNX Runtime ran the Q/DQ graph as simulated quantization "
        "(exact, and no faster than fp32: [Calibration](calibration.md#int8-on-cpus-without-vnni))",
    }[int8["kernels"]]
    agreement = int8["agreement"]
    return (
        f"INT8: the frames part `{int8['frames_part']}` calibrated by `calibration.quantize` ({int8['calibration']}; "
        f"{int8['calibration_videos']}), the temporal part {int8['temporal_part']}; {kernels}. Against the fp32 pair "
        f"on the same {agreement['windows']} windows ({int8['agreement_videos']}): the same top-1 in "
        f"{round(agreement['top1_agreement'] * agreement['windows'])}, max |logit diff| {agreement['max_abs_logit_diff']:g} (mean "
        f"{agreement['mean_abs_logit_diff']:g}) against fp32 logits up to {agreement['fp32_max_abs_logit']:g} in size "
        f"and a median top-1 margin of {agreement['fp32_median_top1_margin']:g} (random weights: near ties make "
        f"top-1 fragile); the two frames parts' embeddings of one frame have a cosine of at least "
        f"{agreement['min_embedding_cosine']:g}."
    )


def live_acceptance(acceptance: Document) -> str:
    """Three live sources against `runtime.infer --timeline`: events, windows and agreement per source."""
    rows = [
        [name, " -> ".join(source["events"]), str(source["windows_before_loss"]), f"{source['agreement']:.0%}"]
        for name, source in acceptance["sources"].items()
    ]
    latency = acceptance["latency_ms"]
    return "\n".join(
        [
            f"Acceptance run: agreement with `runtime.infer --timeline` ({acceptance['timeline_windows']} windows):",
            "",
            report.markdown_table(["source", "events", "windows before a loss", "agreement"], rows),
            "",
            f"Latency p50/p95/p99: {latency['p50']:g} / {latency['p95']:g} / {latency['p99']:g} ms; "
            f"exit code after SIGTERM: {acceptance['exit_code_after_sigterm']}.",
        ]
    )


def render_accuracy(document: Document) -> str:
    return accuracy_table.render_markdown(document["rows"], "").rstrip()


RENDERERS: dict[str, Callable[[Document], str]] = {
    "throughput_cpu.json": render_throughput,
    "throughput_cuda.json": render_throughput,
    "pipeline_decode_cpu.json": render_pipeline,
    "pipeline_cpu.json": render_pipeline,
    "pipeline_cpu_openvino.json": render_pipeline,
    "sampling_cpu.json": render_sampling,
    "timeline_cpu.json": render_timeline,
    "batch_cpu.json": render_batch,
    "serve_cpu.json": render_serve,
    "serve_soak_cpu.json": render_soak,
    "hostile_cpu.json": render_hostile,
    "batch_cluster_cpu.json": batch_cluster.render_table,
    "accuracy_motion.json": render_accuracy,
    "live_cpu.json": render_live,
}


def load(path: Path) -> Document:
    """A results file's JSON object, refused when it lacks its machine, date or command."""
    try:
        document: Document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise StamError(f"{path}: not a readable results file ({error})") from error
    check_provenance(path.name, document)
    return document


def render_file(path: Path) -> str:
    """A results file as the Markdown its page includes: its table(s), then machine, date and command."""
    renderer = RENDERERS.get(path.name)
    if renderer is None:
        raise StamError(f"{path.name}: no renderer registered in benchmarks.docs_tables.RENDERERS")
    document = load(path)
    return f"{renderer(document)}\n\n{provenance(path.name, document)}\n"


# --- the README's headline numbers ----------------------------------------------------------------


def headline(results: Path = RESULTS) -> str:
    """The README's few numbers, each with its machine and the docs page that measured it."""
    cpu = load(results / "throughput_cpu.json")
    gpu = load(results / "throughput_cuda.json")
    accuracy = load(results / "accuracy_motion.json")
    long_videos = load(results / "timeline_cpu.json")
    seek = load(results / "sampling_cpu.json")

    def rate(document: Document, backend: str, precision: str, size: int) -> float:
        return max(
            float(r["videos_per_s"])
            for r in document["results"]
            if (r["model"], r["backend"], r["precision"], r["batch"]) == ("stam_16", backend, precision, size)
        )

    best_cpu = max((r for r in cpu["results"] if r["model"] == "stam_16"), key=lambda r: r["videos_per_s"])
    best_gpu = max((r for r in gpu["results"] if r["model"] == "stam_16"), key=lambda r: r["videos_per_s"])
    ran = {(r["backend"], r["precision"], r["frames"], r["reverse"]): r for r in accuracy["rows"] if "top1" in r}
    fp32, int8 = ran[("onnxruntime", "fp32", 8, False)], ran[("onnxruntime", "int8", 8, False)]
    stride_1 = next(row for row in long_videos["rows"] if row["stride"] == 1)
    longest = max(seek["results"], key=lambda r: (r["seconds"], -r["gop_seconds"]))
    lines = [
        f"- STAM-16 on one {gpu['machine']['gpu']['name']}: {rate(gpu, 'torch', 'fp16', 1):.0f} videos/s eager fp16 "
        f"at batch 1, {best_gpu['videos_per_s']:.0f} videos/s with {best_gpu['backend']} {best_gpu['precision']} "
        f"at batch {best_gpu['batch']} ([performance](docs/performance.md)).",
        f"- STAM-16 on {cpu['machine']['cpu_cores_usable']} cores of an {report.cpu_line(cpu['machine'])}: "
        f"{best_cpu['latency']['median_ms'] / 1000:.2f} s per video ({best_cpu['backend']} {best_cpu['precision']}, "
        f"{100 * best_cpu['peak_fraction']:.0f}% of the best measured matmul) ([performance](docs/performance.md)).",
        f"- Accuracy kept: the shipped motion model scores {100 * fp32['top1']:.1f}% top-1 as fp32 ONNX and "
        f"{100 * int8['top1']:.1f}% as INT8 on {fp32['videos']} held-out videos ([accuracy](docs/accuracy.md)).",
        f"- Long videos: sampling {seek['settings']['frames']} frames from a {longest['seconds'] / 60:g}-minute video takes "
        f"{longest['ms']['seek'] / 1000:.2f} s by seeking against {longest['ms']['from start'] / 1000:.0f} s decoding "
        f"from the start; a sliding window with stride 1 runs {stride_1['speedup']:.1f}x faster on the split pair "
        f"than on the whole model ([long videos](docs/long-videos.md)).",
    ]
    return "\n".join(lines)


def replace_headline(text: str, block: str) -> str:
    """`text` with the lines between the headline markers replaced by `block`."""
    start, end = text.find(HEADLINE_START), text.find(HEADLINE_END)
    if start < 0 or end < start:
        raise StamError(f"README.md: the headline markers are missing ({HEADLINE_START} ... {HEADLINE_END})")
    return text[: start + len(HEADLINE_START)] + "\n" + block + "\n" + text[end:]


# --- command line ---------------------------------------------------------------------------------


def write_all(results: Path, out: Path) -> list[Path]:
    """Render every registered results file into `out`; a results file without a renderer is an error."""
    unregistered = sorted(p.name for p in results.glob("*.json") if p.name not in RENDERERS)
    if unregistered:
        raise StamError(f"no renderer for {', '.join(unregistered)}: add one to benchmarks.docs_tables.RENDERERS")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in RENDERERS:
        target = out / f"{Path(name).stem}.md"
        target.write_text(render_file(results / name))
        written.append(target)
    return written


def run(args: argparse.Namespace) -> int:
    written = write_all(args.results, args.out)
    if args.readme:
        args.readme.write_text(replace_headline(args.readme.read_text(), headline(args.results)))
    print(f"wrote {len(written)} tables into {args.out}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.docs_tables", description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"results folder (default {RESULTS})")
    parser.add_argument("--out", type=Path, default=OUT, help=f"generated Markdown folder (default {OUT})")
    parser.add_argument("--readme", type=Path, default=README, help="README whose headline block is rewritten")
    parser.add_argument("--no-readme", dest="readme", action="store_const", const=None, help="leave the README alone")
    return run_cli(run, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
