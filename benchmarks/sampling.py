"""`python -m benchmarks.sampling`: time to sample T frames against video length, seeking vs decoding from the start.

Videos are 454x340 H.264 (libx264 veryfast, crf 18, 30 fps, 3 B-frames) of a textured pan with sensor
noise, with a fixed GOP (2 s and 10 s, no scene-cut keyframes). Encoding an hour on a small machine
takes long, so a 60 s segment is encoded once per GOP and longer videos repeat it by remuxing its
packets with shifted timestamps (closed GOPs, the segment a whole number of GOPs: one valid stream,
decoding cost per frame as for fresh content). They are written once into the cache folder and reused.

"seek" is `runtime.decode.read_clip` (on these mp4s: the frame count from the sample index, then for
each sampled frame a window of packets and a decode from the keyframe before it), with --decoders
containers decoding separate windows side by side (default: as read_clip, the CPUs up to 8), and
again with one decoder ("seek, 1 decoder") when that differs; "from start" is
`read_clip_without_seeking` (a demuxing pass to count frames, then decoding up to the last sampled
frame), the previous path. Each run checks that both give the same indices and pixels. Wall and CPU
time (all threads of the process) are both recorded: on a shared machine CPU time moves less with
the load. Results: a table on stdout, JSON and a PNG plot under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import av
import numpy as np

from benchmarks import report
from benchmarks.synthetic_video import textured_frame, write_video
from benchmarks.timing import summarize
from runtime.decode import decoders_per_video, read_clip, read_clip_without_seeking
from runtime.errors import StamError, run_cli

SCHEMA = "stam-deploy/sampling/v1"
WIDTH, HEIGHT, FPS = 454, 340, 30
SEGMENT_SECONDS = 60
LENGTHS = {"10s": 10, "1m": 60, "5m": 300, "10m": 600, "30m": 1800, "60m": 3600}  # name -> seconds


@dataclass(frozen=True)
class Options:
    lengths: list[str]
    gops: list[int]
    frames: int
    repeats: int
    baseline_repeats: int
    cache: Path
    decoders: int


# --- videos --------------------------------------------------------------------------------------


def x264_fixed_gop(gop_seconds: int) -> dict[str, str]:
    keyint = gop_seconds * FPS
    return {"x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0"}


def make_video(cache: Path, seconds: int, gop_seconds: int) -> Path:
    """The video of `seconds` with a `gop_seconds` GOP, from the cache or written into it."""
    path = cache / f"pan_{WIDTH}x{HEIGHT}_gop{gop_seconds}s_{seconds}s.mp4"
    if path.is_file():
        return path
    if seconds <= SEGMENT_SECONDS:
        options = x264_fixed_gop(gop_seconds)
        return _atomic(
            path,
            lambda out: write_video(
                out, seconds * FPS, WIDTH, HEIGHT, fps=FPS, frame_fn=textured_frame, codec_options=options
            ),
        )
    segment = make_video(cache, SEGMENT_SECONDS, gop_seconds)
    return _atomic(path, lambda out: _repeat(segment, out, seconds // SEGMENT_SECONDS))


def _atomic(path: Path, write: Callable[[Path], Path]) -> Path:
    """Write under a temporary name, then rename: an interrupted run leaves no half video in the cache."""
    partial = path.with_name(f".partial.{path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    write(partial)
    partial.replace(path)
    return path


def _repeat(segment: Path, path: Path, times: int) -> Path:
    """`segment`'s packets `times` over, each copy shifted by the segment's duration."""
    with av.open(str(segment)) as reader, av.open(str(path), mode="w", format="mp4") as writer:
        stream = reader.streams.video[0]
        output = writer.add_stream_from_template(stream)
        packets = [packet for packet in reader.demux(stream) if packet.size]
        span = stream.duration  # the segment's length in its time base: where the next copy starts
        for copy in range(times):
            for packet in packets:
                shifted = av.Packet(bytes(packet))
                shifted.pts, shifted.dts = packet.pts + copy * span, packet.dts + copy * span
                shifted.is_keyframe, shifted.time_base, shifted.stream = packet.is_keyframe, packet.time_base, output
                writer.mux(shifted)
    return path


# --- measuring -----------------------------------------------------------------------------------


def measure(path: Path, clip: Path, options: Options, seconds: int) -> dict[str, Any]:
    """Median wall and CPU milliseconds per method, methods taking turns within each repeat, and
    whether seeking and decoding from the start agree. The 10 s clip of the same GOP is sampled in
    the same turns ("10 s clip"), so the ratio against it holds even when the machine's load changes."""
    seek = partial(read_clip, decoders=options.decoders)
    methods = {"seek": (seek, path), "from start": (read_clip_without_seeking, path), "10 s clip": (seek, clip)}
    if options.decoders > 1:
        methods["seek, 1 decoder"] = (partial(read_clip, decoders=1), path)
    wall: dict[str, list[float]] = {name: [] for name in methods}
    cpu: dict[str, list[float]] = {name: [] for name in methods}
    clips = {}
    for repeat in range(1 + options.repeats):  # the first round warms the page cache and is not timed
        for name, (read, video) in methods.items():
            if name == "from start" and repeat > options.baseline_repeats and seconds > 300:
                continue  # decoding a long video whole takes minutes: fewer repeats of it
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            clips[name] = read(video, options.frames)
            if repeat:
                wall[name].append(time.perf_counter() - start_wall)
                cpu[name].append(time.process_time() - start_cpu)
    full = clips["from start"]
    seeks = [clips[name] for name in methods if name.startswith("seek")]
    identical = all(seek.indices == full.indices and np.array_equal(seek.frames, full.frames) for seek in seeks)
    return {
        "ms": {name: summarize(times).median_ms for name, times in wall.items()},
        "cpu_ms": {name: summarize(times).median_ms for name, times in cpu.items()},
        "repeats": {name: len(times) for name, times in wall.items()},
        "identical": identical,
        "notes": clips["seek"].notes,
    }


def run_benchmark(options: Options, log: Callable[[str], None]) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    results = []
    for gop in options.gops:
        for length in options.lengths:
            seconds = LENGTHS[length]
            log(f"GOP {gop} s, {length}: writing or reusing the video ...")
            path, clip = make_video(options.cache, seconds, gop), make_video(options.cache, LENGTHS["10s"], gop)
            log(f"GOP {gop} s, {length}: measuring ...")
            results.append(
                {
                    "length": length,
                    "seconds": seconds,
                    "gop_seconds": gop,
                    "size_mb": round(path.stat().st_size / 1e6, 1),
                    **measure(path, clip, options, seconds),
                }
            )
    return {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": shlex.join(["python", "-m", "benchmarks.sampling", *sys.argv[1:]]),
        "settings": {
            "frames": options.frames,
            "mode": "uniform",
            "repeats": options.repeats,
            "decoders": options.decoders,
            "baseline_repeats_over_5_min": options.baseline_repeats,
            "video": f"{WIDTH}x{HEIGHT} H.264 (libx264 veryfast crf 18, 3 B-frames), {FPS} fps; "
            f"longer than {SEGMENT_SECONDS} s: a {SEGMENT_SECONDS} s segment repeated by remuxing",
        },
        "machine": report.describe_machine("cpu"),
        "load_average": {"before": round(load_before, 1), "after": round(os.getloadavg()[0], 1)},
        "results": results,
    }


# --- rendering -----------------------------------------------------------------------------------


def render_table(document: dict[str, Any]) -> str:
    """Markdown table: per GOP and length, wall (and CPU) medians of each method, the speed-up, and
    seek against the 10 s clip sampled in the same turns (one decoder's too, when it was measured)."""
    single = any("seek, 1 decoder" in r["ms"] for r in document["results"])
    decoders = document.get("settings", {}).get("decoders", 1)
    header = [
        "GOP",
        "video",
        f"seek ms (CPU), {decoders} decoder{'s' * (decoders > 1)}",
        "from start ms (CPU)",
        "speed-up",
        "seek / 10 s clip",
        *(["1 decoder ms (CPU)", "1 decoder / 10 s clip"] * single),
        "identical",
    ]
    rows = []
    for r in document["results"]:
        wall = r["ms"]
        row = [
            f"{r['gop_seconds']} s",
            r["length"],
            _ms(r, "seek"),
            _ms(r, "from start"),
            f"{wall['from start'] / wall['seek']:.1f}x",
            f"{wall['seek'] / wall['10 s clip']:.1f}x",
        ]
        if single:
            row += [_ms(r, "seek, 1 decoder"), f"{wall['seek, 1 decoder'] / wall['10 s clip']:.1f}x"]
        rows.append([*row, "yes" if r["identical"] else "NO"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _ms(result: dict[str, Any], method: str) -> str:
    return f"{result['ms'][method]:.0f} ({result['cpu_ms'][method]:.0f})"


def render_plot(document: dict[str, Any], path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(figure)
    axis = figure.add_subplot(1, 1, 1)
    for colour, gop in enumerate(sorted({r["gop_seconds"] for r in document["results"]})):
        rows = [r for r in document["results"] if r["gop_seconds"] == gop]
        minutes = [r["seconds"] / 60 for r in rows]
        for name, style in (("seek", "-o"), ("seek, 1 decoder", ":^"), ("from start", "--s")):
            if name not in rows[0]["ms"]:
                continue
            axis.plot(
                minutes, [r["ms"][name] / 1e3 for r in rows], style, color=f"C{colour}", label=f"{name}, GOP {gop} s"
            )
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("video length (minutes)")
    axis.set_ylabel(f"seconds to sample T={document['settings']['frames']}")
    axis.set_title(f"Sampling {WIDTH}x{HEIGHT} H.264: seek vs decode from start", fontsize=10)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path


# --- command line --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sampling", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", default=",".join(LENGTHS), help=f"video lengths (default {','.join(LENGTHS)})")
    parser.add_argument("--gops", default="2,10", help="GOP lengths in seconds (default 2,10)")
    parser.add_argument("--frames", type=int, default=16, help="frames sampled per video (default 16)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per video and method (default 3)")
    parser.add_argument(
        "--baseline-repeats",
        type=int,
        default=1,
        help="timed runs of 'from start' on videos over 5 minutes (default 1)",
    )
    parser.add_argument(
        "--decoders",
        type=int,
        default=decoders_per_video(),
        help="decoders seeking side by side per video (default: the CPUs, at most 8)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path("artifacts/sampling/videos"),
        help="where the videos are written once and reused (default artifacts/sampling/videos)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("artifacts/sampling"),
        help="folder for sampling.json, sampling.md, sampling.png (default artifacts/sampling)",
    )
    return parser.parse_args(argv)


def _options(args: argparse.Namespace) -> Options:
    lengths = [name.strip() for name in args.lengths.split(",") if name.strip()]
    unknown = [name for name in lengths if name not in LENGTHS]
    if unknown or not lengths:
        raise StamError(f"--lengths takes names from {', '.join(LENGTHS)}, got {args.lengths!r}")
    try:
        gops = [int(gop) for gop in args.gops.split(",")]
    except ValueError:
        raise StamError(f"--gops takes whole seconds, got {args.gops!r}") from None
    if min(args.frames, args.repeats, args.baseline_repeats, args.decoders, *gops) < 1:
        raise StamError("--frames, --repeats, --baseline-repeats, --decoders and --gops must be positive")
    bad = [g for g in gops if SEGMENT_SECONDS % g or any(LENGTHS[name] % g for name in lengths)]
    if bad:
        raise StamError(
            f"every video must be whole GOPs: --gops {bad[0]} does not divide {SEGMENT_SECONDS} s and every length"
        )
    return Options(lengths, gops, args.frames, args.repeats, args.baseline_repeats, args.cache, args.decoders)


def run(args: argparse.Namespace) -> int:
    options = _options(args)
    document = run_benchmark(options, lambda line: print(line, file=sys.stderr, flush=True))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sampling.json").write_text(json.dumps(document, indent=2) + "\n")
    table = render_table(document)
    (args.out / "sampling.md").write_text(table + "\n")
    render_plot(document, args.out / "sampling.png")
    print(table)
    load = document["load_average"]
    print(f"{report.machine_line(document['machine'])}; load average {load['before']} before, {load['after']} after")
    print(f"wrote {args.out}/sampling.{{json,md,png}}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
