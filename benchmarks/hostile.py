"""What hostile videos cost the command line and the server, against an ordinary 720p clip.

(a) `python -m runtime.infer MODEL huge.mp4 --json` (8192x8192 declared in the header) against the
same command on a 720p clip: wall time and peak RSS of each process (from the kernel: wait4's
rusage), the record it printed; then with `--max-pixels 70000000` the huge file must be classified.
(b) The same for the MPEG-TS stream that switches from 320x240 to 8192x8192 mid-way.
(c) `stam-serve` with its server limits: the 8192x8192 upload sent while concurrent good requests
run; its latency and one-line error, every good request's answer, and the growth of the server's
process tree (RSS) over the run. Then an upload one byte over `--max-video-bytes` and its answer.
The targets (`TARGETS`) are written next to the numbers, with whether each is met.

    python -m benchmarks.hostile   # writes benchmarks/results/hostile_cpu.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.hostile_video import FULL, huge_declared, size_switch
from benchmarks.report import DOCUMENT_KEYS, stamp, write_json
from benchmarks.synthetic_video import textured_frame, write_video
from runtime.errors import run_cli
from runtime.limits import SERVER_LIMITS

RESULT = Path(__file__).parent / "results" / "hostile_cpu.json"
SCHEMA = "stam-deploy/hostile/v1"
TARGETS = {
    "cli_extra_seconds": 4.0,  # the huge file's error record within this long of the 720p clip's result
    "cli_extra_rss_mb": 300.0,  # and this much more peak memory
    "serve_refusal_seconds": 5.0,  # the server refuses the huge upload within this long
    "serve_growth_mb": 400.0,  # while its process tree grows less than this
}
ADMIT_PIXELS = 70_000_000  # past 8192x8192 = 67,108,864: the huge file is admitted and classified
GOOD_CONCURRENT = 4
HWM_POLL_S = 0.02  # a peak is held for as long as a decode runs: seconds, not milliseconds


def timed_child(command: list[str], timeout_s: float = 600) -> dict[str, Any]:
    """Run a command; its wall time, its peak RSS, exit code and the last line of stdout and of stderr.

    The peak is the child's own VmHWM, read from /proc while it runs: the kernel's rusage (ru_maxrss)
    would also count the pages of this process that the child shared between fork and exec.
    """
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    output: dict[str, str] = {}
    readers = [
        threading.Thread(target=lambda name, pipe: output.__setitem__(name, pipe.read()), args=(name, pipe))
        for name, pipe in (("stdout", process.stdout), ("stderr", process.stderr))
    ]
    for reader in readers:
        reader.start()
    peak_kib = 0
    try:
        while process.poll() is None:
            peak_kib = max(peak_kib, _high_water_kib(process.pid))
            if time.perf_counter() - started > timeout_s:
                process.kill()
            time.sleep(HWM_POLL_S)
    finally:
        process.wait()
    for reader in readers:
        reader.join()
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "peak_rss_mb": round(peak_kib / 1024, 1),
        "exit": process.returncode,
        "stdout": (output["stdout"].strip().splitlines() or [""])[-1],
        "stderr": (output["stderr"].strip().splitlines() or [""])[-1],
    }


def _high_water_kib(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM), 0 once it has exited."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def infer(model: Path, video: Path, *extra: str) -> dict[str, Any]:
    """`python -m runtime.infer MODEL VIDEO --json [extra]`, measured."""
    command = [sys.executable, "-m", "runtime.infer", str(model), str(video), "--json", *extra]
    return {"command": shlex.join(["python", *command[1:]]), **timed_child(command)}


def record(run: dict[str, Any]) -> dict[str, Any]:
    """The JSON record runtime.infer printed (a result or an error), or None."""
    try:
        return json.loads(run["stdout"])
    except (json.JSONDecodeError, TypeError):
        return {}


def cli_case(model: Path, video: Path, reference: dict[str, Any]) -> dict[str, Any]:
    """A hostile file through runtime.infer, by default and with the pixel limit raised past it."""
    refused = infer(model, video)
    admitted = infer(model, video, "--max-pixels", str(ADMIT_PIXELS))
    extra_seconds = refused["seconds"] - reference["seconds"]
    extra_rss = refused["peak_rss_mb"] - reference["peak_rss_mb"]
    refused_record, admitted_record = record(refused), record(admitted)
    return {
        "file": video.name,
        "bytes": video.stat().st_size,
        "default": refused,
        "extra_seconds": round(extra_seconds, 2),
        "extra_rss_mb": round(extra_rss, 1),
        "refused_in_one_line": "--max-pixels" in refused_record.get("error", ""),
        "meets_target": bool(
            "--max-pixels" in refused_record.get("error", "")
            and extra_seconds <= TARGETS["cli_extra_seconds"]
            and extra_rss <= TARGETS["cli_extra_rss_mb"]
        ),
        "raised_limit": admitted,
        "classified_when_admitted": bool(admitted_record.get("topk")),
    }


def serve_case(model: Path, good: Path, huge: Path, port: int) -> dict[str, Any]:
    """The huge upload among concurrent good ones on a server with its default limits; then one over the byte limit."""
    from benchmarks import serve as serve_bench
    from benchmarks.serve_soak import Client, Monitor

    byte_limit = 1 << 20
    limits = SERVER_LIMITS.lifted(max_video_bytes=byte_limit)
    args = argparse.Namespace(max_batch=8, max_queue_delay_us=2000, base_port=port)
    frames = serve_bench.describe(model).frames_trained
    with serve_bench.soak_server(args, model, limits, 2) as (server, name):
        client = Client(server.endpoints, name, frames)
        client.send("good", good.read_bytes(), "grpc")  # warm: the models have run once
        with Monitor(server.process, server.endpoints, time.monotonic()) as monitor:
            before = monitor.sample()
            with ThreadPoolExecutor(GOOD_CONCURRENT + 1) as pool:
                goods = [
                    pool.submit(_send_once, server.endpoints, name, frames, good.read_bytes(), "good")
                    for _ in range(GOOD_CONCURRENT)
                ]
                hostile = pool.submit(_send_once, server.endpoints, name, frames, huge.read_bytes(), "huge")
                huge_sent = hostile.result()
                good_sent = [future.result() for future in goods]
            after = monitor.sample()
        peak = max(sample.rss_mb for sample in monitor.samples + [after])
        oversized = client.send("oversized", np.random.default_rng(0).bytes(byte_limit + 1), "http")
        client.close()
    growth = round(peak - before.rss_mb, 1)
    return {
        "limits": asdict(limits),
        "huge": {"outcome": huge_sent.outcome, "seconds": round(huge_sent.seconds, 2), "message": huge_sent.message},
        "good": {
            "sent": len(good_sent),
            "answered_ok": sum(s.outcome == "ok" for s in good_sent),
            "max_seconds": round(max(s.seconds for s in good_sent), 2),
        },
        "rss_mb": {"before": before.rss_mb, "peak": peak, "after": after.rss_mb, "growth": growth},
        "oversized": {"bytes": byte_limit + 1, "outcome": oversized.outcome, "message": oversized.message},
        "ready_throughout": all(sample.ready for sample in monitor.samples),
        "meets_target": bool(
            huge_sent.outcome == "limit --max-pixels"
            and huge_sent.seconds <= TARGETS["serve_refusal_seconds"]
            and all(s.outcome == "ok" for s in good_sent)
            and growth <= TARGETS["serve_growth_mb"]
            and oversized.outcome == "limit --max-video-bytes"
            and "\n" not in oversized.message
        ),
    }


def _send_once(endpoints, model: str, frames: int, data: bytes, kind: str):
    """One request on its own connection (the HTTP client is bound to its thread; gRPC is used here)."""
    from benchmarks.serve_soak import Client

    client = Client(endpoints, model, frames)
    try:
        return client.send(kind, data, "grpc")
    finally:
        client.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hostile", description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="artifact (default: the shipped motion model, exported to ONNX)")
    parser.add_argument("--skip-serve", action="store_true", help="measure the command line only")
    parser.add_argument("--huge-side", type=int, default=FULL.huge_side, help="side of the huge frames (default 8192)")
    parser.add_argument("--base-port", type=int, default=18950, help="the server's HTTP port; gRPC and metrics follow")
    parser.add_argument("--json", default=str(RESULT), help=f"where to write the results (default {RESULT})")
    return parser


def run(args: argparse.Namespace) -> int:
    from benchmarks.report import machine_line
    from benchmarks.serve import prepare_model
    from benchmarks.serve_soak import describe_soak_machine

    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as work_dir:
        work = Path(work_dir)
        model = Path(args.model) if args.model else prepare_model(work)
        clip_720p = write_video(work / "clip_720p.mp4", 150, 1280, 720, frame_fn=textured_frame)
        sizes = replace(FULL, huge_side=args.huge_side)
        huge, switch = huge_declared(work, sizes), size_switch(work, sizes)
        reference = infer(model, clip_720p)
        document: dict[str, Any] = {
            "schema": SCHEMA,
            "machine": describe_soak_machine(),
            **stamp("benchmarks.hostile", args.argv),
            "targets": TARGETS,
            "reference_720p": {"file": "1280x720, 150 frames, H.264", **reference},
            "huge_declared": cli_case(model, huge, reference),
            "size_switch": cli_case(model, switch, reference),
        }
        if not args.skip_serve:
            good = write_video(work / "good.mp4", 48, 320, 240, frame_fn=textured_frame)
            document["serve"] = serve_case(model, good, huge, args.base_port)
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(document, path, required=DOCUMENT_KEYS)
    print(json.dumps({key: value for key, value in document.items() if key != "machine"}, indent=2))
    print(machine_line(document["machine"]))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return run_cli(run, args)


if __name__ == "__main__":
    sys.exit(main())
