"""`python -m benchmarks.live`: how many live sources one machine classifies in real time.

N local live sources (MPEG-TS over TCP, live HLS, and files played with --realtime, in turn) of one
generated motion video, all read by one LiveRunner with the motion model's split pair. N doubles
until a run is no longer real time (samples dropped, or latency p95 over `--max-p95` seconds); each
run reports windows/s, latency p50/p95/p99, drops, and CPU seconds spent reading and decoding
against wall seconds in the model. Separately, STAM-16's split pair (random weights) is timed per
frame (frames part, batch `--batch-size`) and per window (temporal part) on this CPU, and turned
into cameras per core at F = 1.6, in fp32 and in INT8: the frames part calibrated by
`calibration.quantize` (min-max ranges) on a few generated motion videos, the temporal part fp32,
both on ONNX Runtime; the two pairs are compared on the same windows of other generated videos. The
GPU figure is on paper, from the STAM-16 rate in benchmarks/results/throughput_cuda.json. Results
are JSON first (`--out`), the table is rendered from them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.motion import HELD_OUT_SEED
from benchmarks.report import describe_machine
from runtime.errors import StamError, run_cli

SCHEMA = "stam-deploy/live/v1"
RESULTS = Path(__file__).resolve().parent / "results"
KINDS = ("ts", "hls", "file")
REFERENCE_FPS = 1.6  # STAM-16's rate: 16 frames over 10 s
OVERLOAD_SECONDS = 60  # long enough for an overloaded source's queue of one window to overflow
OVERLOAD_QUEUE = 16  # one STAM-16 window: 10 s of samples at F = 1.6
STAM16_FRAMES = 16  # STAM-16's window: the frames per calibration clip and per compared window
INT8_METHOD = "minmax"  # the quickest ranges (no histograms); the graph, so its speed, is the same for any


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None}
    return {f"p{q}": round(float(np.percentile(values, q)), 1) for q in (50, 95, 99)}


def run_sources(
    model_path: Path,
    video: Path,
    count: int,
    args: argparse.Namespace,
    kinds_cycle: Sequence[str] = KINDS,
    queue: int | None = None,
) -> dict[str, Any]:
    """One run of `count` sources, kinds in turn, until every source has played the video once."""
    from benchmarks.live_sources import live_source
    from runtime.live import LiveOptions, LiveRunner, WindowRecord, parse_source
    from runtime.split import open_window_model
    from runtime.windows import TimelineOptions

    windows = TimelineOptions.resolve(args.window, args.stride, args.fps, batch_size=args.batch_size, topk=1)
    kinds = [kinds_cycle[i % len(kinds_cycle)] for i in range(count)]
    with ExitStack() as stack, open_window_model(model_path) as model:
        names = []
        for i, kind in enumerate(kinds):
            url = str(video) if kind == "file" else stack.enter_context(live_source(kind, video))[0]
            names.append(f"{kind}{i}={url}")
        runner = LiveRunner(
            model,
            [parse_source(n) for n in names],
            LiveOptions(windows, realtime=True, stall_timeout=10.0, queue=queue),
        )
        latencies: list[float] = []
        finished: set[str] = set()
        started, cpu_started = time.perf_counter(), time.process_time()
        for record in runner:
            if isinstance(record, WindowRecord):
                if record.source not in finished:  # an ended HLS playlist replays on reconnection: not counted
                    latencies.append(record.latency_ms)
            elif record.event in ("lost", "ended"):
                finished.add(record.source)
                if len(finished) == count:
                    runner.stop()
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    dropped = sum(c.dropped for c in runner.hub.counts)
    return {
        "sources": count,
        "kinds": kinds,
        "wall_s": round(wall, 2),
        "windows": len(latencies),
        "windows_per_s": round(len(latencies) / wall, 2),
        "latency_ms": percentiles(latencies),
        "dropped_samples": dropped,
        "samples": sum(c.samples for c in runner.hub.counts),
        "cpu_s": round(cpu, 2),
        "decode_cpu_s": round(runner.decode_seconds(), 2),
        "model_wall_s": round(runner.model_seconds, 2),
        "real_time": bool(dropped == 0 and latencies and np.percentile(latencies, 95) <= args.max_p95 * 1000),
    }


def overload(frames_part: Path, video: Path, cost: dict[str, float], args: argparse.Namespace) -> dict[str, Any]:
    """STAM-16 cameras at F = 1.6 (T = 16, S = 4), half again as many as the measured cost says this CPU
    carries (at least 2), played in real time from files with a queue of one window (T samples, 10 s):
    the backlog overflows, drops are counted, and latency stays near the queue's bound. (Past
    T/(T+queue) of a source's samples handled, the drop policy leaves no whole window: docs/live.md.)"""
    from runtime.cpu import usable_cpus

    carried = cost["cameras_per_core"] * usable_cpus()
    count = max(2, int(np.ceil(1.5 * carried)))
    settings = argparse.Namespace(**{**vars(args), "window": 16, "stride": 4, "fps": REFERENCE_FPS})
    result = run_sources(frames_part, video, count, settings, kinds_cycle=("file",), queue=OVERLOAD_QUEUE)
    return {
        "model": "stam_16",
        "fps": REFERENCE_FPS,
        "queue": OVERLOAD_QUEUE,
        "cameras_carried": round(carried, 1),
        **result,
    }


def timeline_labels(model_path: Path, video: Path, args: argparse.Namespace) -> dict[float, str]:
    """start -> top-1 label from `python -m runtime.infer MODEL FILE --timeline` with the same T, S, F."""
    command = [sys.executable, "-m", "runtime.infer", str(model_path), str(video), "--timeline", "--json"]
    command += ["--window", str(args.window), "--stride", str(args.stride), "--fps", f"{args.fps:g}", "--topk", "1"]
    lines = subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()
    rows = [json.loads(line) for line in lines]
    return {round(r["start"], 3): r["topk"][0]["label"] for r in rows if "start" in r}


def acceptance(model_path: Path, video: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Two MPEG-TS over TCP and one live HLS of `video` in real time through `stam-live --json`; the second
    TCP source is killed a third of the way in and restarted on its address 3 s later; SIGTERM once the
    other two have played the whole video. Agreement with --timeline per source, events, latency, exit code."""
    from benchmarks.live_sources import free_port, live_source

    expected = timeline_labels(model_path, video, args)
    port = free_port()
    records: list[dict[str, Any]] = []
    with ExitStack() as stack:
        a = stack.enter_context(live_source("ts", video))[0]
        hls = stack.enter_context(live_source("hls", video))[0]
        dying = ExitStack()
        b = dying.enter_context(live_source("ts", video, port=port))[0]
        command = [sys.executable, "-m", "runtime.live.cli", str(model_path), f"a={a}", f"b={b}", f"hls={hls}"]
        command += ["--window", str(args.window), "--stride", str(args.stride), "--fps", f"{args.fps:g}"]
        command += ["--json", "--topk", "1", "--stall-timeout", "5"]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stack.callback(process.kill)
        reader = threading.Thread(target=lambda: records.extend(json.loads(line) for line in process.stdout or []))
        reader.start()
        time.sleep(args.seconds / 3)
        dying.close()  # the camera dies
        time.sleep(3.0)
        stack.enter_context(live_source("ts", video, port=port))  # and comes back on its address
        deadline = time.monotonic() + args.seconds * 2
        while time.monotonic() < deadline and not all(
            any(r.get("event") == "lost" and r["source"] == name for r in records) for name in ("a", "hls")
        ):
            time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(60)
        reader.join(10)
    windows = [r for r in records if "latency_ms" in r]
    result: dict[str, Any] = {"exit_code_after_sigterm": returncode, "timeline_windows": len(expected), "sources": {}}
    for name in ("a", "b", "hls"):
        events = [r for r in records if r["source"] == name and "event" in r]
        first_loss = next((r["time"] for r in events if r["event"] == "lost"), None)
        mine = [w for w in windows if w["source"] == name and (first_loss is None or w["end"] <= first_loss)]
        matched = [w for w in mine if round(w["start"], 3) in expected]
        agree = sum(expected[round(w["start"], 3)] == w["topk"][0]["label"] for w in matched)
        result["sources"][name] = {
            "events": [r["event"] for r in events],
            "windows_before_loss": len(mine),
            "windows_total": sum(w["source"] == name for w in windows),
            "agreement": round(agree / len(matched), 3) if matched else None,
        }
    result["latency_ms"] = percentiles([w["latency_ms"] for w in windows])
    return result


def per_frame_cost(frames_part: Path, args: argparse.Namespace, window: int = STAM16_FRAMES) -> dict[str, float]:
    """Seconds per frame through the frames part (batches of `--batch-size`) and per window of `window`
    embeddings through the temporal part, each the mean of `--iters` calls after one warm-up call."""
    from runtime.split import open_window_model

    with open_window_model(frames_part) as model:
        frames = np.random.default_rng(0).random((args.batch_size, 3, 224, 224), dtype=np.float32)
        model.embed(frames)  # warm-up
        started = time.perf_counter()
        for _ in range(args.iters):
            embeddings = model.embed(frames)
        frame_s = (time.perf_counter() - started) / (args.iters * args.batch_size)
        windows = np.repeat(embeddings[:1][None], window, axis=1)
        model.classify(windows)
        started = time.perf_counter()
        for _ in range(args.iters):
            model.classify(windows)
        window_s = (time.perf_counter() - started) / args.iters
    return {"frame_s": frame_s, "window_s": window_s}


def cameras(cost: dict[str, float], cores: int, fps: float, stride: int) -> float:
    """Cameras one core carries at `fps`: each camera needs fps frames and fps/stride windows per second."""
    per_camera = fps * cost["frame_s"] + fps / stride * cost["window_s"]
    return round(1.0 / (per_camera * cores), 1)


def gpu_on_paper(fps: float) -> dict[str, Any] | None:
    """Cameras per GPU from the best STAM-16 videos/s measured (16 frames each) in throughput_cuda.json."""
    path = RESULTS / "throughput_cuda.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    rows = [r for r in data["results"] if r["model"] == "stam_16" and r.get("videos_per_s")]
    best = max(rows, key=lambda r: r["videos_per_s"])
    frames_per_s = best["videos_per_s"] * best["frames"]
    return {
        "gpu": (data.get("machine", {}).get("gpu") or {}).get("name"),
        "from": f"{best['backend']} {best['precision']} batch {best['batch']}: {best['videos_per_s']:.1f} videos/s",
        "frames_per_s": round(frames_per_s, 1),
        "cameras": int(frames_per_s / fps),
    }


def stam16_pair(directory: Path) -> Path:
    """STAM-16's split pair with random weights (speed does not depend on them), reused when present."""
    import torch

    from export.model import create_model
    from export.onnx import export_split, split_paths

    frames_part = split_paths(directory / "stam_16.onnx")[0]
    if not frames_part.is_file():
        torch.manual_seed(0)
        export_split(create_model("stam_16"), directory / "stam_16.onnx")
    return frames_part


def generated_clips(folder: Path, seed: int, count: int, frames: int) -> Iterator[np.ndarray]:
    """`count` generated motion videos (classes in turn, written into `folder`), `frames` frames each,
    decoded and preprocessed by the runtime's loader, one at a time."""
    from benchmarks.motion.generate import CLASSES, generate
    from calibration.data import choose_videos, iter_clips

    videos = generate(folder, -(-count // len(CLASSES)), seed, max_side=320, max_seconds=2.5)
    return iter_clips(choose_videos(videos, count, seed), frames)


def int8_part(frames_part: Path, work: Path, clips: int, frames: int) -> tuple[Path, float | None]:
    """The frames part calibrated to INT8 (Q/DQ, `calibration.quantize`) on `clips` generated videos,
    written beside its fp32 temporal partner and reused when present; and the seconds calibration took
    (None when reused). The file is written under a temporary name and renamed, so it is whole or absent."""
    from calibration.quantize import calibrate
    from runtime.contract import CALIBRATION_SEED

    output = frames_part.with_name(frames_part.name.replace(".onnx", ".int8.onnx"))
    if output.is_file():
        return output, None
    data = generated_clips(work / "int8_calibration", CALIBRATION_SEED, clips, frames)
    partial = output.with_name(f"partial.{output.name}")
    result = calibrate(frames_part, data, partial, precision="int8", method=INT8_METHOD, total=clips)
    os.replace(partial, output)
    return output, round(result.seconds, 1)


def int8_agreement(fp32_part: Path, int8_part: Path, clips: Iterable[np.ndarray]) -> dict[str, Any]:
    """Both pairs on the same windows (one clip each): top-1 agreement and logit differences, with the
    fp32 logits' scale and top-1 margin to judge them by (random weights leave near ties), and the
    smallest cosine between the two frames parts' embeddings of one frame (what quantization changes)."""
    from calibration.report import summarize
    from runtime.split import open_window_model

    logits: list[tuple[np.ndarray, np.ndarray]] = []
    cosines: list[np.ndarray] = []
    with open_window_model(fp32_part) as reference, open_window_model(int8_part) as candidate:
        for clip in clips:
            ours, theirs = reference.embed(clip), candidate.embed(clip)
            norms = np.linalg.norm(ours, axis=-1) * np.linalg.norm(theirs, axis=-1)
            cosines.append(np.sum(ours * theirs, axis=-1) / norms)
            logits.append((reference.classify(ours[None]), candidate.classify(theirs[None])))
    if not logits:
        raise StamError("no windows to compare the fp32 and INT8 pairs on")
    fp32, int8 = (np.concatenate(side) for side in zip(*logits))
    report = summarize(fp32, int8)
    ranked = np.sort(fp32, axis=-1)
    return {
        "windows": report.clips,
        "top1_agreement": round(report.top1_agreement, 3),
        "max_abs_logit_diff": round(report.max_abs_diff, 4),
        "mean_abs_logit_diff": round(report.mean_abs_diff, 4),
        "fp32_max_abs_logit": round(float(np.abs(fp32).max()), 4),
        "fp32_median_top1_margin": round(float(np.median(ranked[:, -1] - ranked[:, -2])), 4),
        "min_embedding_cosine": round(float(np.concatenate(cosines).min()), 5),
    }


def stam16_int8(frames_part: Path, work: Path, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """STAM-16's pair with its frames part in INT8: the per-frame cost, and how it was made and how
    far it moves from fp32. Whether ONNX Runtime runs integer kernels or simulates the quantization
    depends on the CPU (`runtime.cpu.int8_saturates`: no VNNI), and is recorded with the numbers."""
    from calibration.quantize import META_CALIBRATION
    from runtime.artifact import describe
    from runtime.contract import CALIBRATION_SEED
    from runtime.cpu import int8_saturates

    quantized, seconds = int8_part(frames_part, work, args.calibration_clips, STAM16_FRAMES)
    kernels = "simulated" if int8_saturates() else "integer"
    cost = {"model": "stam_16", "precision": "int8", "kernels": kernels, **per_frame_cost(quantized, args)}
    held_out = generated_clips(work / "int8_held_out", HELD_OUT_SEED, args.agreement_clips, STAM16_FRAMES)
    details = {
        "frames_part": quantized.name,
        "temporal_part": "fp32",
        "calibration": describe(quantized).metadata.get(META_CALIBRATION),
        "calibration_s": seconds,
        "calibration_videos": f"generated motion videos, seed {CALIBRATION_SEED}",
        "agreement_videos": f"generated motion videos, seed {HELD_OUT_SEED}",
        "kernels": kernels,
        "agreement": int8_agreement(frames_part, quantized, held_out),
    }
    return cost, details


def motion_pair(directory: Path) -> Path:
    from benchmarks.motion import SHIPPED_CHECKPOINT
    from benchmarks.motion.generate import CLASSES
    from export.checkpoint import load_checkpoint
    from export.onnx import export_split, split_paths

    frames_part = split_paths(directory / "stam_motion.onnx")[0]
    if not frames_part.is_file():
        export_split(load_checkpoint(SHIPPED_CHECKPOINT), directory / "stam_motion.onnx", labels=list(CLASSES))
    return frames_part


def render(result: dict[str, Any]) -> str:
    lines = [
        "sources  kinds            windows/s  p50 ms  p95 ms  p99 ms  drops  decode CPU s  model s  real time",
    ]
    for run in result["runs"]:
        latency = run["latency_ms"]
        lines.append(
            f"{run['sources']:>7}  {','.join(run['kinds'])[:15]:<15}  {run['windows_per_s']:>9}  "
            f"{latency['p50']!s:>6}  {latency['p95']!s:>6}  {latency['p99']!s:>6}  {run['dropped_samples']:>5}  "
            f"{run['decode_cpu_s']:>12}  {run['model_wall_s']:>7}  {run['real_time']}"
        )
    lines.append(f"largest real-time N: {result['largest_real_time']}")
    for entry in result["per_frame"].values():
        lines.append(
            f"{entry['model']} {entry['precision']}: {entry['frame_s'] * 1000:.1f} ms/frame, "
            f"{entry['window_s'] * 1000:.1f} ms/window on {result['machine']['cpu_cores_usable']} cores -> "
            f"{entry['cameras_per_core']} cameras per core at F = {entry['fps']:g}"
        )
    if result.get("int8"):
        int8 = result["int8"]
        lines.append(
            f"stam_16 int8 ({int8['calibration']}, {int8['kernels']} kernels) against fp32: {int8['agreement']}"
        )
    if result.get("gpu_on_paper"):
        gpu = result["gpu_on_paper"]
        lines.append(f"GPU on paper ({gpu['gpu']}, {gpu['from']}): {gpu['cameras']} cameras at F = {REFERENCE_FPS}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.live", description=__doc__.split("\n")[0])
    parser.add_argument("--max-sources", type=int, default=8, help="largest N tried (default 8)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the generated video (default 20)")
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--stride", type=int, default=2)
    parser.add_argument("--fps", type=float, default=4.0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-p95", type=float, default=2.0, help="latency p95 (s) a real-time run stays under")
    parser.add_argument("--iters", type=int, default=3, help="timed calls per model for the per-frame cost")
    parser.add_argument("--no-acceptance", action="store_true", help="skip the three-source acceptance run")
    parser.add_argument("--no-stam16", action="store_true", help="skip STAM-16 (its export takes minutes)")
    parser.add_argument("--no-int8", action="store_true", help="skip STAM-16 in INT8 (its calibration takes minutes)")
    parser.add_argument(
        "--calibration-clips", type=int, default=4, help="generated videos the INT8 frames part is calibrated on"
    )
    parser.add_argument(
        "--agreement-clips", type=int, default=8, help="generated windows the fp32 and INT8 pairs are compared on"
    )
    parser.add_argument("--work", help="folder for exports and the video (default: a temporary one)")
    parser.add_argument("--out", default=str(RESULTS / "live_cpu.json"))
    return parser


def run(args: argparse.Namespace) -> int:
    from benchmarks.motion.generate import plan_long_video, write_long_video
    from runtime.cpu import usable_cpus

    if args.calibration_clips < 1 or args.agreement_clips < 1:
        raise StamError("--calibration-clips and --agreement-clips must be at least 1")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(args.work or scratch)
        work.mkdir(parents=True, exist_ok=True)
        video = work / f"live_{args.seconds:g}s.mp4"
        if not video.is_file():
            write_long_video(
                plan_long_video(max(1, round(args.seconds / 3.2)), 11, width=320, height=240, fps=25), video
            )
        motion = motion_pair(work)
        accepted = None if args.no_acceptance else acceptance(motion, video, args)
        if accepted is not None:
            print(json.dumps(accepted), file=sys.stderr)
        runs, count = [], 1
        while count <= args.max_sources:
            runs.append(run_sources(motion, video, count, args))
            print(
                render({"runs": runs[-1:], "largest_real_time": None, "per_frame": {}, "machine": {}}).splitlines()[1],
                file=sys.stderr,
            )
            if not runs[-1]["real_time"]:
                break
            count *= 2
        cores = usable_cpus()
        per_frame: dict[str, dict[str, Any]] = {
            "motion": {"model": "stam_motion", "precision": "fp32", **per_frame_cost(motion, args, args.window)}
        }
        int8 = None
        if not args.no_stam16:
            stam16 = stam16_pair(work)
            per_frame["stam_16"] = {"model": "stam_16", "precision": "fp32", **per_frame_cost(stam16, args)}
            if not args.no_int8:
                per_frame["stam_16_int8"], int8 = stam16_int8(stam16, work, args)
        for cost in per_frame.values():
            stride = args.stride if cost["model"] == "stam_motion" else 4
            fps = args.fps if cost["model"] == "stam_motion" else REFERENCE_FPS
            cost["cameras_per_core"] = cameras(cost, cores, fps, stride)
            cost["fps"] = fps
        overloaded = None
        if not args.no_stam16:
            long_video = work / f"live_{OVERLOAD_SECONDS}s.mp4"
            if not long_video.is_file():
                scenes = max(1, round(OVERLOAD_SECONDS / 3.2))
                write_long_video(plan_long_video(scenes, 11, width=320, height=240, fps=25), long_video)
            overloaded = overload(stam16_pair(work), long_video, per_frame["stam_16"], args)
    real_time = [r["sources"] for r in runs if r["real_time"]]
    result = {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": "python -m benchmarks.live " + " ".join(sys.argv[1:]),
        "machine": describe_machine("cpu"),  # with the CPU flags, from runtime.cpu
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "work")},
        "runs": runs,
        "largest_real_time": max(real_time) if real_time else 0,
        "per_frame": per_frame,
        "int8": int8,
        "gpu_on_paper": gpu_on_paper(REFERENCE_FPS),
        "acceptance": accepted,
        "overload": overloaded,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(render(result))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
