"""stam-batch (Ray Data) against `python -m runtime.infer` on the same machine, model and videos.

    python -m benchmarks.batch [--videos 200] [--actors 1,2] [--json benchmarks/results/batch_cpu.json]

Each command runs as a fresh process, timed from launch to exit (what a user waits for): the
motion model on ONNX Runtime, the same held-out-style motion videos for every command. Also timed:
Ray's own start-up (import + `ray.init` + `ray.shutdown` with no work), and a rerun of a finished
job (resuming with nothing left: no Ray, no model). Per-video decode and model times come from
stam-batch's Parquet rows. Results as JSON first; the Markdown table is rendered from the JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from benchmarks.motion.generate import CLASSES, generate
from benchmarks.report import DOCUMENT_KEYS, describe_machine, machine_line, markdown_table, stamp, write_json

ROOT = Path(__file__).resolve().parents[1]
VIDEO_SEED = 2000  # neither the training nor the held-out seed
RAY_STARTUP = (
    "import time; t = time.perf_counter(); import ray; ray.init(include_dashboard=False); "
    "ready = time.perf_counter() - t; ray.shutdown(); print(ready)"
)
STARTUP_PATTERN = re.compile(r"Ray start-up ([0-9.]+) s")


def prepare_videos(folder: Path, count: int) -> list[Path]:
    """`count` motion videos (generated once, byte-identical from run to run), in a stable order."""
    existing = sorted(folder.glob("*/*.mp4"))
    if len(existing) < count:
        generate(folder, math.ceil(count / len(CLASSES)), VIDEO_SEED)
        existing = sorted(folder.glob("*/*.mp4"))
    return existing[:count]


def prepare_model(path: Path) -> Path:
    """The shipped motion checkpoint exported to fp32 ONNX (once)."""
    if not path.is_file():
        from benchmarks.motion import SHIPPED_CHECKPOINT
        from export.checkpoint import load_checkpoint
        from export.onnx import export_onnx

        path.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(load_checkpoint(SHIPPED_CHECKPOINT), path, labels=list(CLASSES))
    return path


def timed(command: Sequence[str], env: dict[str, str] | None = None) -> tuple[float, subprocess.CompletedProcess]:
    """Wall seconds of one fresh process, and its output; a failure stops the benchmark."""
    start = time.perf_counter()
    result = subprocess.run(list(command), cwd=ROOT, capture_output=True, text=True, timeout=3600, env=env)
    seconds = time.perf_counter() - start
    if result.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(command[:4])} ... exited {result.returncode}: {result.stderr[-2000:]}")
    return seconds, result


def run_infer(model: Path, videos: list[Path], batch_size: int) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "runtime.infer",
        str(model),
        *map(str, videos),
        "--json",
        "--batch-size",
        str(batch_size),
    ]
    seconds, result = timed(command)
    classified = sum(1 for line in result.stdout.splitlines() if line.strip())
    return {
        "command": "python -m runtime.infer",
        "actors": None,
        "videos": classified,
        "wall_s": seconds,
        "ray_startup_s": None,
    }


def run_batch(
    model: Path,
    manifest: Path,
    out: Path,
    actors: int,
    batch_size: int,
    extra: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One stam-batch job from an empty --out, then its rerun (nothing left to do); `extra` arguments
    (e.g. --address) and environment (e.g. the cluster's token) as given."""
    shutil.rmtree(out, ignore_errors=True)
    command = [
        sys.executable,
        "-m",
        "batch.cli",
        str(model),
        str(manifest),
        "--out",
        str(out),
        "--actors",
        str(actors),
        "--batch-size",
        str(batch_size),
        *extra,
    ]
    seconds, result = timed(command, env)
    startup = STARTUP_PATTERN.search(result.stderr)
    rerun_seconds, rerun = timed(command, env)
    if "nothing to do" not in rerun.stderr:
        raise RuntimeError(f"the rerun of a finished job did work: {rerun.stderr[-500:]}")
    return {
        "command": "stam-batch",
        "actors": actors,
        "videos": count_rows(out),
        "wall_s": seconds,
        "ray_startup_s": float(startup.group(1)) if startup else None,
        "rerun_s": rerun_seconds,
        **stage_means(out),
    }


def count_rows(out: Path) -> int:
    import pyarrow.dataset as ds

    return ds.dataset(out, format="parquet").count_rows()


def stage_means(out: Path) -> dict[str, float]:
    """Mean decode and model milliseconds per video, from the rows stam-batch wrote."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    table = ds.dataset(out, format="parquet").to_table(columns=["decode_ms", "infer_ms"])
    return {"decode_ms_mean": pc.mean(table["decode_ms"]).as_py(), "infer_ms_mean": pc.mean(table["infer_ms"]).as_py()}


def ray_startup() -> float:
    """Seconds for `import ray` + `ray.init()` on this machine, with no work (the shutdown not counted)."""
    _, result = timed([sys.executable, "-c", RAY_STARTUP])
    return float(result.stdout.strip().splitlines()[-1])


def render(document: dict[str, Any]) -> str:
    header = [
        "command",
        "actors",
        "videos",
        "wall (s)",
        "videos/s",
        "Ray start-up (s)",
        "videos/s after start-up",
        "decode ms/video",
        "model ms/video",
        "rerun, nothing new (s)",
    ]
    rows = []
    for row in document["results"]:
        cells = [row["command"], str(row["actors"] or "-"), *rate_cells(row)]
        rows.append(cells)
    lines = [markdown_table(header, rows), ""]
    lines.append(
        f"Ray alone (import + `ray.init()`, no work): {document['ray_startup_s']:.1f} s. "
        f"Machine: {machine_line(document['machine'])}{versions(document)}. "
        f"Load average before: {document['load_before']}."
    )
    return "\n".join(lines)


def rate_cells(row: dict[str, Any]) -> list[str]:
    """videos, wall, videos/s, Ray start-up, videos/s after it, decode and model ms/video, rerun: the
    columns every stam-batch table shares, computed from one result row."""
    startup = row.get("ray_startup_s")
    after = row["videos"] / (row["wall_s"] - startup) if startup else None
    return [
        str(row["videos"]),
        f"{row['wall_s']:.1f}",
        f"{row['videos'] / row['wall_s']:.2f}",
        number(startup, 1),
        number(after, 2),
        number(row.get("decode_ms_mean"), 0),
        number(row.get("infer_ms_mean"), 0),
        number(row.get("rerun_s"), 1),
    ]


def versions(document: dict[str, Any]) -> str:
    found = document.get("versions", {})  # absent from documents written before it was recorded
    return "".join(f", {name} {version}" for name, version in found.items())


def number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def add_common_arguments(parser: argparse.ArgumentParser, videos: int) -> None:
    """The options every stam-batch benchmark takes: the videos, the model, where to work and write."""
    parser.add_argument("--videos", type=int, default=videos)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workdir", type=Path, default=ROOT / "artifacts" / "bench_batch")
    parser.add_argument("--model", type=Path, help="an ONNX model (default: the shipped motion model, exported)")
    parser.add_argument("--json", type=Path, help="write the results document here (and its .md table)")
    parser.add_argument("--render", type=Path, metavar="JSON", help="only print the table of a results document")


def prepare_inputs(args: argparse.Namespace, manifest_name: str) -> tuple[list[Path], Path, Path]:
    """(videos, model, a manifest listing the videos), generated or exported once in the work folder."""
    videos = prepare_videos(args.workdir / "videos", args.videos)
    model = args.model or prepare_model(args.workdir / "stam_motion.onnx")
    manifest = args.workdir / manifest_name
    manifest.write_text("".join(f"{path}\n" for path in videos))
    return videos, model, manifest


def document_head(
    schema: str,
    module: str,
    argv: Sequence[str] | None,
    machine: dict[str, Any],
    model: Path,
    videos: Sequence[Path],
    libraries: Sequence[str] = ("ray", "pyarrow"),
) -> dict[str, Any]:
    """What a batch results file starts with: its format, date, command, machine, load and inputs."""
    return {
        "schema": schema,
        **stamp(module, argv),
        "machine": machine,
        "load_before": [round(x, 2) for x in os.getloadavg()],
        "model": model.name,
        "videos": len(videos),
        "versions": {name: importlib_metadata.version(name) for name in libraries},
    }


def publish(document: dict[str, Any], path: Path | None, render: Callable[[dict[str, Any]], str]) -> int:
    """Write the results file and its table beside it (when a path is given), and print the table."""
    if path:
        write_json(document, path, required=DOCUMENT_KEYS)
        path.with_suffix(".md").write_text(render(document) + "\n")
    print(render(document))
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.batch", description=__doc__.splitlines()[0])
    add_common_arguments(parser, videos=200)
    parser.add_argument("--actors", default="1,2", help="comma-separated actor counts for stam-batch")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        print(render(json.loads(args.render.read_text())))
        return 0
    videos, model, manifest = prepare_inputs(args, "videos.txt")
    head = document_head("stam-deploy/batch/v1", "benchmarks.batch", argv, describe_machine("cpu"), model, videos)
    document: dict[str, Any] = head | {"batch_size": args.batch_size}
    document["ray_startup_s"] = ray_startup()
    results = [run_infer(model, videos, args.batch_size)]
    for actors in (int(a) for a in args.actors.split(",")):
        results.append(run_batch(model, manifest, args.workdir / f"out_actors{actors}", actors, args.batch_size))
    document["results"] = results
    return publish(document, args.json, render)


if __name__ == "__main__":
    sys.exit(main())
