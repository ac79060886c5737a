"""Closed-loop load on `stam-serve` over localhost: requests/s and latency percentiles, every request counted.

Each cell of the grid (batching on/off x endpoint x concurrent clients) runs C clients, each sending a
fixed number of requests back to back over gRPC (a new one as soon as the last is answered, as
perf_analyzer's concurrency mode does) and stops issuing at a time bound. Reported like perf_analyzer:
throughput in inferences/s, client latency p50/p90/p95/p99, and from Triton's statistics the mean
server queue and compute time and the mean batch it formed. Unlike perf_analyzer, which repeats
windows until throughput is stable, each cell is a fixed number of requests after a warm-up,
repeated `--repeats` times. Both servers (with and without dynamic batching) run side by side and
the two modes' cells alternate, so load from other work on the host falls on both alike; a cell
reports the median throughput of its repeats and the percentiles of all its latencies.

    python -m benchmarks.serve --json benchmarks/results/serve_cpu.json

`--soak MINUTES` runs a soak instead (benchmarks.serve_soak): one server under a steady mix of good
and hostile videos over HTTP and gRPC, its memory, descriptors and threads watched throughout.

    python -m benchmarks.serve --soak 30   # writes benchmarks/results/serve_soak_cpu.json
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import serve_soak
from benchmarks.report import DOCUMENT_KEYS, describe_machine, machine_line, markdown_table, stamp, write_json
from runtime.artifact import describe
from runtime.errors import StamError, run_cli
from runtime.limits import Limits
from serve import config as triton_config
from serve.server import Endpoints, ServeOptions, TritonServer

SCHEMA = "stam-deploy/serve/v1"
MODES = {"dynamic": True, "none": False}
ENDPOINTS = ("tensors", "video")


@dataclass(frozen=True)
class Cell:
    """One measured configuration, as data first (the table is rendered from these)."""

    batching: str
    endpoint: str
    clients: int
    sent: int
    answered: int
    failed: int
    seconds: float
    throughput: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    server_queue_ms: float
    server_compute_ms: float
    mean_batch: float
    load_1min: float  # the host's highest 1-minute load average at the end of a run: other work competing for the cores


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serve", description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="artifact to serve (default: the shipped motion model, exported to ONNX)")
    parser.add_argument("--videos", help="folder of videos for the video endpoint (default: 9 generated motion videos)")
    parser.add_argument("--clients", default="1,4,16", help="concurrent clients per cell (default 1,4,16)")
    parser.add_argument("--requests", type=int, default=24, help="requests per client per cell (default 24)")
    parser.add_argument("--warmup", type=int, default=4, help="untimed requests per cell (default 4)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each cell, modes alternating (default 3)")
    parser.add_argument(
        "--max-seconds", type=float, default=60, help="stop issuing after this long per run (default 60)"
    )
    parser.add_argument("--batching", default="dynamic,none", help="dynamic, none or both (default both)")
    parser.add_argument("--endpoints", default="tensors,video", help="tensors, video or both (default both)")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--max-queue-delay-us", type=int, default=2000)
    parser.add_argument("--frames", type=int, help="frames per clip (default: the model's trained T)")
    parser.add_argument(
        "--base-port",
        type=int,
        default=18600,
        help="first server's HTTP port; its gRPC and metrics follow, the second server's start 10 higher",
    )
    parser.add_argument("--json", help=f"write the results here (a soak's default: {serve_soak.RESULT})")
    serve_soak.add_arguments(parser)
    return parser


def prepare_model(work: Path) -> Path:
    """The shipped motion checkpoint as fp32 ONNX with its labels (small: the grid runs in minutes on 2 cores)."""
    from benchmarks.motion import SHIPPED_CHECKPOINT
    from benchmarks.motion.generate import CLASSES
    from export.checkpoint import load_checkpoint
    from export.onnx import export_onnx

    return export_onnx(load_checkpoint(SHIPPED_CHECKPOINT), work / "stam_motion.onnx", labels=list(CLASSES))


def prepare_videos(work: Path) -> list[Path]:
    from benchmarks.motion import HELD_OUT_SEED
    from benchmarks.motion.generate import generate

    return generate(work / "videos", 1, HELD_OUT_SEED, max_side=200, max_seconds=2.5)


def request_makers(videos: list[Path], frames: int) -> dict[str, Callable[[int], list]]:
    """Per endpoint: request number -> gRPC inputs (videos and their preprocessed clips, cycled)."""
    import tritonclient.grpc as grpcclient

    from runtime.clips import load_clip

    payloads = [path.read_bytes() for path in videos]
    clips = [load_clip(path, frames, "uniform")[0][None] for path in videos]

    def tensors(index: int) -> list:
        tensor = grpcclient.InferInput("frames", list(clips[0].shape), "FP32")
        tensor.set_data_from_numpy(clips[index % len(clips)])
        return [tensor]

    def video(index: int) -> list:
        tensor = grpcclient.InferInput("video", [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[payloads[index % len(payloads)]]], dtype=np.object_))
        frames_input = grpcclient.InferInput("frames", [1, 1], "INT32")
        frames_input.set_data_from_numpy(np.array([[frames]], dtype=np.int32))
        return [tensor, frames_input]

    return {"tensors": tensors, "video": video}


def server_totals(client, model: str) -> dict[str, int]:
    """Triton's cumulative counters for `model` (perf_analyzer reads the same statistics)."""
    stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
    inference = stats["inference_stats"]
    return {
        "requests": int(inference["success"]["count"]),
        "queue_ns": int(inference["queue"]["ns"]),
        "compute_ns": int(inference["compute_infer"]["ns"]),
        "executions": int(stats.get("execution_count", 0)),
        "inferences": int(stats.get("inference_count", 0)),
    }


def run_cell(
    address: str, model: str, make: Callable[[int], list], clients: int, requests: int, warmup: int, max_seconds: float
) -> dict[str, Any]:
    """C clients, each sending `requests` back to back; latencies of the answered ones, counts of all."""
    import tritonclient.grpc as grpcclient

    stats_client = grpcclient.InferenceServerClient(address)
    for index in range(warmup):
        stats_client.infer(model, make(index))
    before = server_totals(stats_client, model)
    deadline = time.monotonic() + max_seconds
    lock = threading.Lock()
    latencies: list[float] = []
    counts = {"sent": 0, "answered": 0, "failed": 0}

    def client_loop(client_index: int) -> None:
        client = grpcclient.InferenceServerClient(address)
        try:
            for number in range(requests):
                if time.monotonic() > deadline:
                    return
                start = time.perf_counter()
                try:
                    client.infer(model, make(client_index * requests + number))
                    outcome = "answered"
                except grpcclient.InferenceServerException:
                    outcome = "failed"
                elapsed = time.perf_counter() - start
                with lock:
                    counts["sent"] += 1
                    counts[outcome] += 1
                    if outcome == "answered":
                        latencies.append(elapsed)
        finally:
            client.close()

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(client_loop, range(clients)))
    seconds = time.perf_counter() - start
    after = server_totals(stats_client, model)
    stats_client.close()
    return {
        "counts": counts,
        "latencies": latencies,
        "seconds": seconds,
        "load_1min": os.getloadavg()[0],
        "server": {key: after[key] - before[key] for key in after},
    }


def to_cell(batching: str, endpoint: str, clients: int, runs: list[dict[str, Any]]) -> Cell:
    """Counts and server statistics summed over the runs, latency percentiles over all answered
    requests, throughput the median of the runs'."""
    counts = {key: sum(run["counts"][key] for run in runs) for key in ("sent", "answered", "failed")}
    server = {key: sum(run["server"][key] for run in runs) for key in runs[0]["server"]}
    latencies_ms = np.asarray([value for run in runs for value in run["latencies"]]) * 1e3
    p50, p90, p95, p99 = np.percentile(latencies_ms, [50, 90, 95, 99]) if latencies_ms.size else [float("nan")] * 4
    requests = max(server["requests"], 1)
    return Cell(
        batching,
        endpoint,
        clients,
        counts["sent"],
        counts["answered"],
        counts["failed"],
        seconds=round(sum(run["seconds"] for run in runs), 3),
        throughput=float(np.median([run["counts"]["answered"] / run["seconds"] for run in runs])),
        p50_ms=float(p50),
        p90_ms=float(p90),
        p95_ms=float(p95),
        p99_ms=float(p99),
        server_queue_ms=server["queue_ns"] / requests / 1e6,
        server_compute_ms=server["compute_ns"] / requests / 1e6,
        mean_batch=server["inferences"] / max(server["executions"], 1),
        load_1min=max(run["load_1min"] for run in runs),
    )


def start_servers(args: argparse.Namespace, model: Path, modes: list[str], stack: ExitStack) -> dict[str, str]:
    """One server per batching mode, all loaded before any load is sent; mode -> gRPC address."""
    info = describe(model)
    servers, addresses = [], {}
    for number, mode in enumerate(modes):
        batching = triton_config.Batching(args.max_batch, args.max_queue_delay_us, 1, MODES[mode])
        port = args.base_port + 10 * number
        endpoints = Endpoints("127.0.0.1", port, port + 1, port + 2)
        servers.append(
            stack.enter_context(
                TritonServer(info, ServeOptions(model, triton_config.model_name(model), batching), endpoints)
            )
        )
        addresses[mode] = f"127.0.0.1:{port + 1}"
    for server in servers:
        server.wait_ready(300)
    return addresses


def run_grid(args: argparse.Namespace, model: Path, makers: dict, modes: list[str], clients: list[int]) -> list[Cell]:
    """Every (endpoint, clients) cell, `repeats` times, the modes alternating in order from repeat to repeat."""
    name = triton_config.model_name(model)
    runs: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    with ExitStack() as stack:
        addresses = start_servers(args, model, modes, stack)
        for repeat in range(args.repeats):
            for endpoint in args.endpoints.split(","):
                target = name if endpoint == "tensors" else name + triton_config.VIDEO_SUFFIX
                for count in clients:
                    for mode in modes if repeat % 2 == 0 else modes[::-1]:
                        measured = run_cell(
                            addresses[mode],
                            target,
                            makers[endpoint],
                            count,
                            args.requests,
                            args.warmup,
                            args.max_seconds,
                        )
                        runs.setdefault((mode, endpoint, count), []).append(measured)
                        print(
                            f"repeat {repeat + 1}: {mode} {endpoint} x{count}: "
                            f"{measured['counts']['answered'] / measured['seconds']:.1f} requests/s",
                            file=sys.stderr,
                            flush=True,
                        )
    return [
        to_cell(mode, endpoint, count, runs[(mode, endpoint, count)])
        for (mode, endpoint, count) in sorted(runs, key=lambda key: (modes.index(key[0]), key[1], key[2]))
    ]


HEADER = [
    "batching",
    "endpoint",
    "clients",
    "answered / sent",
    "requests/s",
    "p50 ms",
    "p90 ms",
    "p95 ms",
    "p99 ms",
    "server queue ms",
    "server compute ms",
    "mean batch",
    "load",
]


def render_rows(cells: Sequence[Cell]) -> str:
    rows = [
        [
            c.batching,
            c.endpoint,
            str(c.clients),
            f"{c.answered} / {c.sent}",
            f"{c.throughput:.1f}",
            f"{c.p50_ms:.0f}",
            f"{c.p90_ms:.0f}",
            f"{c.p95_ms:.0f}",
            f"{c.p99_ms:.0f}",
            f"{c.server_queue_ms:.1f}",
            f"{c.server_compute_ms:.1f}",
            f"{c.mean_batch:.2f}",
            f"{c.load_1min:.1f}",
        ]
        for c in cells
    ]
    return markdown_table(HEADER, rows)


@contextmanager
def soak_server(
    args: argparse.Namespace, model: Path, limits: Limits, decode_workers: int
) -> Iterator[tuple[TritonServer, str]]:
    """One dynamically batching server with these limits, ready; with its video model's name."""
    name = triton_config.model_name(model)
    batching = triton_config.Batching(args.max_batch, args.max_queue_delay_us, 1, True)
    options = ServeOptions(model, name, batching, decode_workers=decode_workers, limits=limits)
    endpoints = Endpoints("127.0.0.1", args.base_port, args.base_port + 1, args.base_port + 2)
    with TritonServer(describe(model), options, endpoints) as server:
        server.wait_ready(300)
        yield server, name + triton_config.VIDEO_SUFFIX


def run_soak(args: argparse.Namespace) -> int:
    """The soak: all answered, or exit 1."""
    if args.soak <= 0 or args.soak_clients < 1 or args.decode_workers < 1:
        raise StamError("--soak needs MINUTES > 0, --soak-clients >= 1 and --decode-workers >= 1")
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as work:
        model = Path(args.model) if args.model else prepare_model(Path(work))
        videos = sorted(Path(args.videos).rglob("*.mp4")) if args.videos else prepare_videos(Path(work))
        frames = args.frames or describe(model).frames_trained

        def start(limits: Limits, workers: int):
            return soak_server(args, model, limits, workers)

        document = serve_soak.soak(args, model, videos, frames, Path(work), start)
    print(serve_soak.render(document["summary"]))
    print(f"\n{machine_line(document['machine'])}; {document['command']}")
    path = Path(args.json) if args.json else serve_soak.RESULT
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(document, path, required=(*DOCUMENT_KEYS, "summary"))
    summary = document["summary"]
    return 0 if summary["answered"] == summary["sent"] and summary["server_exit"] is None else 1


def run(args: argparse.Namespace) -> int:
    if args.soak is not None:
        return run_soak(args)
    clients = [int(value) for value in args.clients.split(",")]
    unknown = set(args.batching.split(",")) - set(MODES) | set(args.endpoints.split(",")) - set(ENDPOINTS)
    if unknown or min(clients) < 1 or args.requests < 1 or args.repeats < 1:
        raise StamError(f"bad grid: unknown {sorted(unknown)} or clients/requests < 1")
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as work:
        model = Path(args.model) if args.model else prepare_model(Path(work))
        videos = sorted(Path(args.videos).rglob("*.mp4")) if args.videos else prepare_videos(Path(work))
        frames = args.frames or describe(model).frames_trained
        makers = request_makers(videos, frames)
        cells = run_grid(args, model, makers, args.batching.split(","), clients)
    machine = describe_machine("cpu")
    print(render_rows(cells))
    print(
        f"\n{machine_line(machine)}; model {model.name}, {frames} frames, gRPC, "
        f"{args.requests} requests per client x {args.repeats} repeats"
    )
    if args.json:
        settings = {key: value for key, value in vars(args).items() if key not in ("json", "argv")}
        document = {
            "schema": SCHEMA,
            **stamp("benchmarks.serve", args.argv),
            "machine": machine,
            "settings": settings,
            "frames": frames,
            "cells": [asdict(c) for c in cells],
        }
        write_json(document, Path(args.json), required=("schema", "created", "command", "machine", "cells"))
    unanswered = sum(cell.sent - cell.answered for cell in cells)
    return 1 if unanswered else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command, as the results record it
    return run_cli(run, args)


if __name__ == "__main__":
    sys.exit(main())
