"""`python -m benchmarks.timeline`: windows per second of the timeline, split pair against whole model.

Over one long video (default 10 minutes, the motion generator's long mode), for each stride S the
timeline runs with the split pair (each frame embedded once, the temporal part per window) and with
the whole model (every window runs all T frames). A STAM-16 frame costs ~0.1 s on a 2-core CPU, so
each configuration is timed over a fixed number of windows in steady state: the first batch of
windows (which pays for filling the ring buffer) is the warm-up, and the clock runs from its
arrival to the arrival of `--windows` more. The cache hit rate is measured over the run and
computed for the whole video from its sample count. `--rss-minutes M` adds a separate run over an
M-minute video with a small model, reporting the process's peak RSS (decoding streams; nothing per
frame is kept). Results are data first (JSON with --json), the table is rendered from them.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runtime.cpu import usable_cpus
from runtime.errors import StamError, require_extra, run_cli

SCHEMA = "stam-deploy/timeline/v1"
BATCH_WINDOWS = 8


def export_pair(model_name: str, directory: Path) -> tuple[Path, Path]:
    """(whole model, frames part) of a random-weight export, reused when already in `directory`."""
    import torch

    from export.model import create_model
    from export.onnx import export_onnx, export_split, split_paths

    whole, split_base = directory / f"{model_name}.onnx", directory / f"{model_name}.split.onnx"
    frames_part = split_paths(split_base)[0]
    if not (whole.is_file() and frames_part.is_file()):
        torch.manual_seed(0)
        model = create_model(model_name)
        export_onnx(model, whole)
        export_split(model, split_base)
    return whole, frames_part


def long_video(directory: Path, minutes: float, size: tuple[int, int], fps: int, seed: int = 0) -> Path:
    """A motion long video of about `minutes` (shots of 2.8-3.6 s), reused when present."""
    from benchmarks.motion.generate import plan_long_video, write_long_video

    path = directory / f"long_{minutes:g}min_{size[0]}x{size[1]}_{fps}fps.mp4"
    if not path.is_file():
        segments = max(1, round(minutes * 60 / 3.2))
        write_long_video(plan_long_video(segments, seed, width=size[0], height=size[1], fps=fps), path)
    return path


def time_windows(artifact: Path, video: Path, window: int, stride: int, fps: float, windows: int) -> dict[str, Any]:
    """Steady-state windows per second: the clock starts when the first batch has arrived."""
    from runtime.split import open_window_model
    from runtime.timeline import Timeline, TimelineOptions

    options = TimelineOptions.resolve(window, stride, fps, batch_size=BATCH_WINDOWS, topk=1)
    with open_window_model(artifact) as model:
        runner = Timeline(model, str(video), options)
        started = time.perf_counter()
        arrivals = []
        for _ in zip(range(BATCH_WINDOWS + windows), runner):
            arrivals.append(time.perf_counter())
        embedded, used = runner.stats.embedded, runner.stats.used
    if len(arrivals) < BATCH_WINDOWS + windows:
        raise StamError(
            f"{video}: only {len(arrivals)} windows at stride {stride}; use a longer video or fewer --windows"
        )
    steady = arrivals[-1] - arrivals[BATCH_WINDOWS - 1]
    return {
        "windows_timed": windows,
        "seconds": steady,
        "windows_per_second": windows / steady,
        "first_batch_seconds": arrivals[BATCH_WINDOWS - 1] - started,
        "hit_rate_run": 1 - embedded / used if model.embeds_once else 0.0,
    }


def full_video_hit_rate(samples: int, window: int, stride: int) -> float:
    """1 - embeddings / window slots over a whole video of `samples` samples, as the timeline counts them."""
    from runtime.timeline import TimelineOptions

    options = TimelineOptions.resolve(window, stride, 1.0)
    count = (samples - window) // stride + 1
    tail = stride <= window and (count - 1) * stride + window < samples
    embedded = sum(options.wanted(k) for k in range(samples))
    return 1 - embedded / ((count + tail) * window)


def measure(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    from runtime.decode import FrameStream

    whole, frames_part = export_pair(args.model, directory)
    video = args.video or long_video(directory, args.minutes, tuple(args.size), args.video_fps)
    fps = args.fps or args.window / 10
    duration = FrameStream(str(video), fps).duration() or 0.0
    samples = int(duration * fps)
    rows = []
    for stride in args.strides:
        row: dict[str, Any] = {"stride": stride}
        for name, artifact in (("split", frames_part), ("whole", whole)):
            print(f"stride {stride}: {name} ...", file=sys.stderr, flush=True)
            row[name] = time_windows(artifact, video, args.window, stride, fps, args.windows)
        row["speedup"] = row["split"]["windows_per_second"] / row["whole"]["windows_per_second"]
        row["hit_rate_full_video"] = full_video_hit_rate(samples, args.window, stride)
        rows.append(row)
    return {
        "schema": SCHEMA,
        "model": f"{args.model} fp32, random weights, ONNX Runtime CPU",
        "video": {"path": str(video), "seconds": duration, "samples": samples},
        "window": args.window,
        "fps": fps,
        "batch_windows": BATCH_WINDOWS,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "machine": machine(),
        "rows": rows,
    }


# ru_maxrss survives exec (the child would report this process's peak): VmHWM is the new process's own.
RSS_RUN = """
import re, sys, time
from pathlib import Path
from runtime.split import open_window_model
from runtime.timeline import Timeline, TimelineOptions
started = time.perf_counter()
with open_window_model(sys.argv[1]) as model:
    runner = Timeline(model, sys.argv[2], TimelineOptions.resolve(int(sys.argv[3]), topk=1))
    windows = sum(1 for _ in runner)
peak_kib = re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1)
print(windows, runner.stats.samples, time.perf_counter() - started, peak_kib)
"""


def measure_rss(minutes: float, window: int, directory: Path) -> dict[str, Any]:
    """Peak RSS of a whole timeline over a long video, in a fresh process, with stam_tiny (split)."""
    import torch

    from export.model import create_model
    from export.onnx import export_split

    frames_part = directory / "stam_tiny.frames.onnx"
    if not frames_part.is_file():
        torch.manual_seed(0)
        export_split(create_model("stam_tiny"), directory / "stam_tiny.onnx")
    video = long_video(directory, minutes, (320, 240), 15)
    done = subprocess.run(
        [sys.executable, "-c", RSS_RUN, str(frames_part), str(video), str(window)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise StamError(f"the RSS run failed: {done.stderr.strip().splitlines()[-1:]}")
    windows, samples, seconds, rss_kib = done.stdout.split()
    return {
        "minutes": minutes,
        "video": str(video),
        "windows": int(windows),
        "samples": int(samples),
        "seconds": float(seconds),
        "peak_rss_mib": int(rss_kib) / 1024,
        "model": "stam_tiny (split), random weights",
    }


def machine() -> str:
    from benchmarks.report import _cpu_model

    return f"{_cpu_model()}, {usable_cpus()} cores usable, no GPU"


def render(document: dict[str, Any]) -> str:
    video = document["video"]
    lines = [
        f"timeline, {document['model']}, T={document['window']}, F={document['fps']:g}/s, "
        f"windows in batches of {document['batch_windows']}; {document['machine']}",
        f"video: {video['seconds'] / 60:.1f} min, {video['samples']} samples; each row times "
        f"{document['rows'][0]['split']['windows_timed']} windows after the first batch",
        "",
        "| stride | split pair windows/s | whole model windows/s | split / whole | hit rate (run) | hit rate (whole video) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in document["rows"]:
        lines.append(
            f"| {row['stride']} | {row['split']['windows_per_second']:.3f} | "
            f"{row['whole']['windows_per_second']:.3f} | {row['speedup']:.1f}x | "
            f"{row['split']['hit_rate_run']:.1%} | {row['hit_rate_full_video']:.1%} |"
        )
    lines.append(
        f"\npeak RSS of the benchmark process (torch, the exports, both models): {document['peak_rss_mib']:.0f} MiB"
    )
    rss = document.get("rss")
    if rss:
        lines.append(
            f"{rss['minutes']:g}-minute video, whole timeline ({rss['model']}): {rss['windows']} windows, "
            f"{rss['samples']} samples in {rss['seconds']:.0f} s, peak RSS {rss['peak_rss_mib']:.0f} MiB"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.timeline", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="stam_16", help="variant, random weights (default stam_16)")
    parser.add_argument("--window", type=int, default=16, help="T (default 16)")
    parser.add_argument("--fps", type=float, default=None, help="F (default T/10)")
    parser.add_argument("--strides", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--windows", type=int, default=16, help="windows timed per configuration after the first batch")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the generated video (default 10)")
    parser.add_argument("--size", type=int, nargs=2, default=(320, 240), metavar=("W", "H"))
    parser.add_argument("--video-fps", type=int, default=15)
    parser.add_argument("--video", type=Path, help="time this video instead of a generated one")
    parser.add_argument(
        "--rss-minutes", type=float, default=None, help="also run a whole timeline over a video this long"
    )
    parser.add_argument("--work-dir", type=Path, help="keep exports and videos here (default: a temporary directory)")
    parser.add_argument("--json", type=Path, help="write the results document here")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    require_extra(
        "torch", "python -m benchmarks.timeline", "export"
    )  # it exports with torch: say so before minutes of work
    if args.windows < 1 or any(s < 1 for s in args.strides) or args.window < 1:
        raise StamError("--windows, --strides and --window must be positive")
    with tempfile.TemporaryDirectory(prefix="stam-timeline-") as scratch:
        directory = args.work_dir or Path(scratch)
        directory.mkdir(parents=True, exist_ok=True)
        document = measure(args, directory)
        if args.rss_minutes:
            document["rss"] = measure_rss(args.rss_minutes, args.window, directory)
    print(render(document))
    if args.json is not None:
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
