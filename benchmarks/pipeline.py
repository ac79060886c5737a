"""`python -m benchmarks.pipeline`: per-video time of decode + sample + preprocess, ours against torchvision's way.

Clips are synthetic 10 s videos (H.264, 30 fps) at 340p and 720p, T frames sampled. "ours" is
`runtime.decode.read_frames` + `runtime.preprocess.preprocess` (count packets, decode once with
frame threads, RGB only for the sampled frames). "reference" is what torchvision's VideoClips does
for the first clip of a video: list every frame's timestamp, decode the clip from its first to its
last sampled frame converting every frame to RGB, index the sampled ones, then per frame PIL
Resize(256), CenterCrop(224) and ToTensor.

A method is a function from (video, T) to stage timings (a dict, stage -> seconds, in pipeline
order); measuring, the JSON document and the table are separate steps, so a later stage (e.g.
inference behind N decode workers) is one more entry in METHODS, not a rewrite.

With `--model ARTIFACT` the end-to-end section follows: decode + preprocess + inference with N
decode workers feeding one model (`benchmarks.end_to_end`), as videos/s and time per stage, on the
backend `--backend` names (default: what `runtime.open_model` picks; `openvino` to see whether
decoding becomes the bottleneck once inference is faster).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from benchmarks import report
from benchmarks.synthetic_video import textured_frame, write_video
from benchmarks.timing import summarize
from runtime.backends import BACKENDS
from runtime.contract import INPUT_SIZE
from runtime.decode import read_frames, sample_indices
from runtime.errors import require_extra, run_cli
from runtime.preprocess import crop_box, preprocess, resized_size

SCHEMA = "stam-deploy/pipeline/v1"
CLIPS = {"340p": (454, 340), "720p": (1280, 720)}  # name -> (width, height)
SECONDS = 10
FPS = 30
BASELINE = "reference"

StageTimes = dict[str, float]  # stage -> seconds, in pipeline order
Method = Callable[[Path, int], StageTimes]


class Stopwatch:
    """Consecutive stage timings: `lap(name)` closes the stage that started at the previous lap."""

    def __init__(self) -> None:
        self.stages: StageTimes = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.stages[stage] = now - self._last
        self._last = now


# --- the methods -------------------------------------------------------------------------------


def run_ours(path: Path, num_frames: int, threads: str = "AUTO") -> StageTimes:
    """The runtime's path, exactly as `runtime.infer` calls it."""
    clock = Stopwatch()
    frames = read_frames(path, num_frames, threads=threads)
    clock.lap("decode")
    preprocess(frames)
    clock.lap("preprocess")
    return clock.stages


def run_reference(path: Path, num_frames: int) -> StageTimes:
    """torchvision VideoClips + the reference transforms, in PyAV and PIL (torchvision is not installed)."""
    clock = Stopwatch()
    with av.open(str(path)) as container:  # VideoClips: every frame's pts, to build the clips
        stream = container.streams.video[0]
        count = sum(1 for packet in container.demux(stream) if packet.pts is not None)
        fps = float(stream.average_rate)
    indices = sample_indices(count, num_frames, mode="reference", fps=fps)
    with av.open(str(path)) as container:  # read_video(start_pts, end_pts): all frames of the clip, RGB
        decoded = []
        for frame in container.decode(video=0):
            decoded.append(frame.to_ndarray(format="rgb24"))
            if len(decoded) > indices[-1]:
                break
    video = np.stack(decoded)[indices]
    clock.lap("decode")
    np.stack([_reference_transform(frame) for frame in video])
    clock.lap("preprocess")
    return clock.stages


def _reference_transform(frame: np.ndarray) -> np.ndarray:
    """ToPILImage, Resize(256), CenterCrop(224), ToTensor, one frame at a time."""
    image = Image.fromarray(frame)
    height, width = resized_size(image.height, image.width)
    image = image.resize((width, height), Image.BILINEAR)
    top, left = crop_box(height, width)
    image = image.crop((left, top, left + INPUT_SIZE, top + INPUT_SIZE))
    return np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / np.float32(255)


METHODS: dict[str, tuple[Method, str]] = {
    "ours": (
        run_ours,
        "read_frames + preprocess: packet count, one decode (frame + slice threads), RGB for sampled frames only",
    ),
    "ours-slice": (partial(run_ours, threads="SLICE"), "as ours, with FFmpeg's default slice threads only"),
    BASELINE: (
        run_reference,
        "torchvision VideoClips way: pts list, decode + RGB every frame of the clip, per-frame PIL transforms",
    ),
}


# --- measuring ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    clips: tuple[str, ...]
    methods: tuple[str, ...]
    frames: int
    repeats: int
    warmup: int


def make_clips(directory: Path, names: Sequence[str]) -> dict[str, Path]:
    """One 10 s, 30 fps H.264 clip per resolution, reused when already written."""
    paths = {}
    for name in names:
        width, height = CLIPS[name]
        path = directory / f"pan_{name}_{SECONDS}s_{FPS}fps.mp4"
        if not path.is_file():
            write_video(path, SECONDS * FPS, width, height, codec="h264", fps=FPS, frame_fn=textured_frame)
        paths[name] = path
    return paths


def measure(methods: Sequence[str], path: Path, num_frames: int, repeats: int, warmup: int) -> dict[str, Any]:
    """Per method: median per stage and of the total over `repeats` runs, after `warmup` untimed ones.

    Methods take turns within each repeat, so a change in machine load affects them alike.
    """
    runs: dict[str, list[StageTimes]] = {name: [] for name in methods}
    for repeat in range(warmup + repeats):
        for name in methods:
            stages = METHODS[name][0](path, num_frames)
            if repeat >= warmup:
                runs[name].append(stages)
    return {name: _summary(name_runs) for name, name_runs in runs.items()}


def _summary(runs: list[StageTimes]) -> dict[str, Any]:
    totals = summarize([sum(run.values()) for run in runs])
    stages = {stage: summarize([run[stage] for run in runs]).median_ms for stage in runs[0]}
    return {
        "stages_ms": stages,
        "total_ms": totals.median_ms,
        "total_min_ms": totals.min_ms,
        "total_max_ms": totals.max_ms,
        "repeats": len(runs),
    }


def run_benchmark(options: Options, clip_dir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Every clip x method, as a results document (JSON-ready)."""
    paths = make_clips(clip_dir, options.clips)
    results = []
    for clip in options.clips:
        width, height = CLIPS[clip]
        log(f"{clip}: {', '.join(options.methods)} ...")
        timings = measure(options.methods, paths[clip], options.frames, options.repeats, options.warmup)
        results += [
            {"clip": clip, "width": width, "height": height, "method": name, **timings[name]}
            for name in options.methods
        ]
    return {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": shlex.join(["python", "-m", "benchmarks.pipeline", *sys.argv[1:]]),
        "settings": {
            "frames": options.frames,
            "seconds": SECONDS,
            "fps": FPS,
            "codec": "h264 (libx264 crf 18)",
            "repeats": options.repeats,
            "warmup": options.warmup,
            "baseline": BASELINE,
            "methods": {name: METHODS[name][1] for name in options.methods},
            "clip_bitrate_mbps": {clip: _bitrate_mbps(paths[clip]) for clip in options.clips},
        },
        "machine": report.describe_machine("cpu"),  # decoding runs on the CPU whatever the device
        "results": results,
    }


def _bitrate_mbps(path: Path) -> float:
    return round(path.stat().st_size * 8 / SECONDS / 1e6, 2)


# --- rendering ---------------------------------------------------------------------------------


def render_table(document: dict[str, Any]) -> str:
    """Fixed-width table: per clip and method, stage medians, total, and speed-up against the baseline."""
    results = document["results"]
    stages = list(dict.fromkeys(stage for result in results for stage in result["stages_ms"]))
    baseline = {r["clip"]: r["total_ms"] for r in results if r["method"] == document["settings"]["baseline"]}
    header = ["clip", "method", *(f"{stage} ms" for stage in stages), "total ms", "speed-up"]
    rows = []
    for result in results:
        reference = baseline.get(result["clip"])
        speedup = f"{reference / result['total_ms']:.2f}x" if reference else "-"
        cells = [f"{result['stages_ms'][s]:.1f}" if s in result["stages_ms"] else "-" for s in stages]
        rows.append(
            [
                f"{result['clip']} ({result['width']}x{result['height']})",
                result["method"],
                *cells,
                f"{result['total_ms']:.1f}",
                speedup,
            ]
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
        for row in [header, *rows]
    ]
    settings, machine = document["settings"], document["machine"]
    caption = (
        f"T={settings['frames']} of {settings['seconds']} s at {settings['fps']} fps; median of "
        f"{settings['repeats']} after {settings['warmup']} warm-up; {machine['cpu_cores_usable']} usable "
        f"cores of {machine['cpu']}; PyAV {av.__version__}"
    )
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:], caption])


# --- command line ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the results document here")
    parser.add_argument("--clips", nargs="+", choices=list(CLIPS), default=list(CLIPS))
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--frames", type=int, default=16, help="frames sampled per video (default 16)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per clip and method (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first (default 1)")
    parser.add_argument(
        "--model",
        type=Path,
        metavar="ARTIFACT",
        help="also measure end to end with this .onnx/.plan (decode workers feeding it)",
    )
    parser.add_argument("--backend", default="auto", choices=BACKENDS, help="runtime backend of --model (default auto)")
    parser.add_argument("--workers", default="1,2,4", help="decode worker counts for --model (default 1,2,4)")
    parser.add_argument("--videos", type=int, default=8, help="videos per end-to-end run (default 8)")
    parser.add_argument("--batch-size", type=int, default=1, help="videos per inference (default 1)")
    parser.add_argument(
        "--clip-dir",
        type=Path,
        help="where the synthetic clips are written and reused (default: a temporary directory)",
    )
    args = parser.parse_args(argv)
    if args.frames < 1 or args.repeats < 1 or args.warmup < 0 or args.videos < 1 or args.batch_size < 1:
        parser.error("--frames, --repeats, --videos and --batch-size must be >= 1, --warmup >= 0")
    try:
        args.workers = [int(count) for count in args.workers.split(",")]
    except ValueError:
        parser.error(f"--workers must be a comma-separated list of integers, got {args.workers!r}")
    return args


def _log(text: str) -> None:
    print(text, file=sys.stderr)


def run_end_to_end_section(args: argparse.Namespace, clip_dir: Path) -> dict[str, Any]:
    """Every worker count over the same videos (the first clip resolution, repeated), after one warm-up."""
    from benchmarks.end_to_end import run_end_to_end
    from runtime import open_model

    videos = [make_clips(clip_dir, args.clips[:1])[args.clips[0]]] * args.videos
    with open_model(args.model, backend=args.backend) as model:
        run_end_to_end(model, videos[:1], args.frames, 1, 1)  # warm-up: session, allocations
        rows = []
        for workers in args.workers:
            _log(f"end to end: {workers} decode worker(s) ...")
            rows.append(run_end_to_end(model, videos, args.frames, args.batch_size, workers))
        return {"model": str(args.model), "backend": model.backend, "clip": args.clips[0], "runs": rows}


def _run(args: argparse.Namespace, clip_dir: Path) -> dict[str, Any]:
    options = Options(tuple(args.clips), tuple(args.methods), args.frames, args.repeats, args.warmup)
    document = run_benchmark(options, clip_dir, _log)
    if args.model is not None:
        document["end_to_end"] = run_end_to_end_section(args, clip_dir)
    return document


def render(document: dict[str, Any]) -> str:
    text = render_table(document)
    section = document.get("end_to_end")
    if section:
        from benchmarks.end_to_end import render_table as render_end_to_end

        caption = (
            f"{section['model']} on {section['backend']}; {section['clip']} clips, T={document['settings']['frames']}"
        )
        text += "\n\nend to end (decode workers feeding one model):\n" + render_end_to_end(section["runs"], caption)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(run, parse_args(argv))


def run(args: argparse.Namespace) -> int:
    require_extra(
        "torch", "python -m benchmarks.pipeline", "export"
    )  # it exports with torch: say so before minutes of work
    if args.clip_dir is not None:
        args.clip_dir.mkdir(parents=True, exist_ok=True)
        document = _run(args, args.clip_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="stam-pipeline-") as directory:
            document = _run(args, Path(directory))
    print(render(document))
    if args.json is not None:
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
