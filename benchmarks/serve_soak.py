"""Soak `stam-serve` with a steady mix of good and hostile videos over HTTP and gRPC; watch what it costs.

C clients send, back to back until the time is up, a fixed cycle of payloads: good motion videos,
truncated ones, noise, empty uploads, an H.264 file declaring huge frames, an MPEG-TS stream that
switches to huge frames mid-way and an upload over the server's byte limit. Requests alternate
between HTTP and gRPC. Every request must be answered (a result or a one-line error); errors are
counted by kind (which limit, a video error, a full queue, or no answer at all) for each payload.
Meanwhile a monitor samples the server's whole process tree (tritonserver and its Python-backend
stubs): resident memory, open file descriptors and threads, and whether it says it is ready.

Reported: answered/sent, outcomes per payload kind, latency p50/p99, the tree's RSS at start, peak
and end with its trend (slope of a least-squares line, MB/min, over the run and over the run after
its first tenth), and file descriptors and threads at the end against the start (both sampled with
the clients connected and idle). `--soak-kinds` keeps the cycle to some payload kinds, to see which
one a cost comes from.

    python -m benchmarks.serve --soak 30
"""

from __future__ import annotations

import argparse
import itertools
import os
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.hostile_video import Sizes, huge_declared, size_switch
from benchmarks.report import markdown_table, stamp
from runtime.limits import SERVER_LIMITS, Limits

RESULT = Path(__file__).parent / "results" / "serve_soak_cpu.json"
SCHEMA = "stam-deploy/serve-soak/v1"
LIMIT_FLAGS = ("--max-pixels", "--max-duration", "--max-video-bytes", "--decode-timeout")
# The cycle each client walks through (ten good videos to six hostile payloads), from a different start.
CYCLE = (
    "good",
    "truncated",
    "good",
    "noise",
    "good",
    "empty",
    "good",
    "huge",
    "good",
    "good",
    "switch",
    "good",
    "oversized",
    "good",
    "good",
    "good",
)
EXPECTED = {
    "good": "ok",
    "truncated": "video error",
    "noise": "video error",
    "empty": "video error",
    "huge": "limit --max-pixels",
    "switch": "limit --max-pixels",
    "oversized": "limit --max-video-bytes",
}
PROTOCOLS = ("http", "grpc")
SAMPLE_EVERY_S = 1.0
# The first tenth of the load fills the allocators' arenas and Triton's pools; a leak shows after it too.
WARMUP_FRACTION = 0.1
CLIENT_TIMEOUT_S = 600.0  # far past the decode timeout: a request still unanswered after this is lost


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The soak's options on `python -m benchmarks.serve`."""
    group = parser.add_argument_group("soak (--soak MINUTES)")
    group.add_argument("--soak", type=float, metavar="MINUTES", help="run the soak for this long instead of the grid")
    group.add_argument("--soak-clients", type=int, default=4, help="concurrent clients (default 4)")
    group.add_argument(
        "--soak-kinds",
        type=kinds_argument,
        default=CYCLE,
        metavar="KIND[,KIND...]",
        help=f"send only these payload kinds, in the cycle's order (default all: {', '.join(EXPECTED)})",
    )
    group.add_argument(
        "--huge-side", type=int, default=8192, help="side of the huge-frame payloads in pixels (default 8192)"
    )
    group.add_argument("--decode-workers", type=int, default=2, help="the server's decode workers (default 2)")
    group.add_argument(
        "--max-pixels", type=int, default=SERVER_LIMITS.max_pixels, help="the server's pixel limit (its default)"
    )
    group.add_argument(
        "--max-video-bytes",
        type=int,
        default=4 << 20,
        help="the server's byte limit; the oversized payload is one byte more (default 4 MiB)",
    )
    group.add_argument(
        "--decode-timeout", type=float, default=SERVER_LIMITS.decode_timeout, help="the server's decode time limit"
    )


def kinds_argument(text: str) -> tuple[str, ...]:
    """The cycle kept to the named kinds: to see which payload a cost comes from."""
    kinds = {kind.strip() for kind in text.split(",") if kind.strip()}
    unknown = kinds - set(EXPECTED)
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"payload kinds are {', '.join(EXPECTED)}; got {text!r}")
    return tuple(kind for kind in CYCLE if kind in kinds)


def server_limits(args: argparse.Namespace) -> Limits:
    return SERVER_LIMITS.lifted(
        max_pixels=args.max_pixels, max_video_bytes=args.max_video_bytes, decode_timeout=args.decode_timeout
    )


# --- payloads ------------------------------------------------------------------------------------


def build_payloads(work: Path, videos: list[Path], args: argparse.Namespace) -> dict[str, list[bytes]]:
    """Every payload kind of the cycle, as the bytes a client uploads."""
    sizes = Sizes(huge_side=args.huge_side)
    goods = [path.read_bytes() for path in videos]
    rng = np.random.default_rng(0)
    return {
        "good": goods,
        "truncated": [data[: len(data) // 2] for data in goods],
        "noise": [rng.bytes(64 * 1024)],
        "empty": [b""],
        "huge": [huge_declared(work, sizes).read_bytes()],
        "switch": [size_switch(work, sizes).read_bytes()],
        "oversized": [rng.bytes(args.max_video_bytes + 1)],
    }


# --- one request ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """One request: what was sent, how, what came back (an outcome kind) and how long it took."""

    kind: str
    protocol: str
    outcome: str
    seconds: float
    message: str = ""


def classify(message: str) -> str:
    """An error the server answered with, by kind: the limit its flag names, a full queue, or a video error."""
    for flag in LIMIT_FLAGS:
        if f"({flag})" in message:
            return f"limit {flag}"
    if "maximum queue size" in message:
        return "queue full"
    return "video error"


class Client:
    """One client's HTTP and gRPC connections to the video model."""

    def __init__(self, endpoints, model: str, frames: int):
        import tritonclient.grpc as grpcclient
        import tritonclient.http as httpclient

        self.modules = {"http": httpclient, "grpc": grpcclient}
        self.clients = {
            "http": httpclient.InferenceServerClient(
                f"127.0.0.1:{endpoints.http_port}", network_timeout=CLIENT_TIMEOUT_S, connection_timeout=60
            ),
            "grpc": grpcclient.InferenceServerClient(f"127.0.0.1:{endpoints.grpc_port}"),
        }
        self.model, self.frames = model, frames

    def send(self, kind: str, data: bytes, protocol: str) -> Sent:
        from tritonclient.utils import InferenceServerException

        module = self.modules[protocol]
        video = module.InferInput("video", [1, 1], "BYTES")
        video.set_data_from_numpy(np.array([[data]], dtype=np.object_))
        frames = module.InferInput("frames", [1, 1], "INT32")
        frames.set_data_from_numpy(np.array([[self.frames]], dtype=np.int32))
        extra = {"client_timeout": CLIENT_TIMEOUT_S} if protocol == "grpc" else {}
        started = time.perf_counter()
        try:
            self.clients[protocol].infer(self.model, [video, frames], **extra)
            outcome, message = "ok", ""
        except InferenceServerException as error:
            message = error.message() or str(error)
            outcome = _transport_failure(error) or classify(message)
        except Exception as error:  # a dropped connection or a client timeout: the request was not answered
            outcome, message = f"unanswered {type(error).__name__}", str(error).splitlines()[0] if str(error) else ""
        return Sent(kind, protocol, outcome, time.perf_counter() - started, message)

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


def _transport_failure(error) -> str | None:
    """gRPC statuses that mean no answer came from the model (the server's own errors are INTERNAL/INVALID_ARGUMENT)."""
    status = str(error.status() or "")
    if any(code in status for code in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "RESOURCE_EXHAUSTED")):
        return f"unanswered {status.rsplit('.', 1)[-1]}"
    return None


# --- the server's process tree -------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """`pid` and its live descendants, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        tree += children
        frontier += children
    return tree


@dataclass(frozen=True)
class Sample:
    """The server's process tree at one moment."""

    t: float  # seconds since the load started
    rss_mb: float
    fds: int
    threads: int
    processes: int
    ready: bool


def proc_status(pid: int) -> dict[str, str]:
    """/proc/PID/status as fields; OSError when the process has exited."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if ":" in line)


def rss_kib(status: dict[str, str]) -> int:
    return int(status.get("VmRSS", "0 kB").split()[0])


def sample_tree(pid: int, t: float, ready: bool) -> Sample:
    rss = threads = fds = processes = 0
    for member in process_tree(pid):
        try:
            status = proc_status(member)
            fds += len(os.listdir(f"/proc/{member}/fd"))
        except OSError:
            continue  # it exited between the listing and the read
        rss += rss_kib(status)
        threads += int(status["Threads"])
        processes += 1
    return Sample(round(t, 2), round(rss / 1024, 1), fds, threads, processes, ready)


def process_role(pid: int) -> str:
    try:
        return role_of(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0"))
    except OSError:
        return "exited"


def role_of(argv: list[str]) -> str:
    """`tritonserver`, or the model a Python-backend stub serves (its first argument is the model's file)."""
    if len(argv) > 1 and argv[0].endswith("triton_python_backend_stub"):
        return f"stub {Path(argv[1]).parents[1].name}"
    return Path(argv[0]).name


def rss_by_role(pid: int) -> dict[str, float]:
    """Resident MB of the server's processes by role (a model's stubs added together)."""
    roles: Counter[str] = Counter()
    for member in process_tree(pid):
        try:
            roles[process_role(member)] += rss_kib(proc_status(member))
        except OSError:
            continue  # it exited between the listing and the read
    return {role: round(kib / 1024, 1) for role, kib in sorted(roles.items())}


def is_ready(endpoints) -> bool:
    try:
        with urllib.request.urlopen(endpoints.url("/v2/health/ready"), timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


class Monitor:
    """Samples the tree every second on a thread until stopped; notes when the server process exits."""

    def __init__(self, process, endpoints, started: float):
        self.process, self.pid, self.endpoints, self.started = process, process.pid, endpoints, started
        self.samples: list[Sample] = []
        self.exited_at: float | None = None
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="soak-monitor", daemon=True)

    def sample(self) -> Sample:
        return sample_tree(self.pid, time.monotonic() - self.started, is_ready(self.endpoints))

    def _run(self) -> None:
        while not self.stopped.is_set():
            self.samples.append(self.sample())
            if self.exited_at is None and self.process.poll() is not None:
                self.exited_at = self.samples[-1].t
            self.stopped.wait(SAMPLE_EVERY_S)

    def server_exit(self) -> dict[str, Any] | None:
        """When (seconds into the load) and how the server exited, if it did."""
        code = self.process.poll()
        if code is None:
            return None
        return {"t": self.exited_at, "code": code}

    def __enter__(self) -> Monitor:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopped.set()
        self.thread.join()


# --- the load ------------------------------------------------------------------------------------


def schedule(
    client_index: int, payloads: dict[str, list[bytes]], cycle: tuple[str, ...] = CYCLE
) -> Iterator[tuple[str, bytes, str]]:
    """(kind, bytes, protocol) forever: the cycle from this client's own offset, each kind's files in turn,
    protocols alternating."""
    counters = {kind: itertools.cycle(items) for kind, items in payloads.items()}
    offset = client_index * len(cycle) // 4
    kinds = itertools.cycle(cycle[offset:] + cycle[:offset])
    for number, kind in enumerate(kinds):
        yield kind, next(counters[kind]), PROTOCOLS[(number + client_index) % len(PROTOCOLS)]


class Load:
    """C client threads. Each opens its own connections (the HTTP client is bound to the thread that made
    it), warms up, then sends back to back until the deadline, and closes only after the end sample."""

    def __init__(
        self,
        count: int,
        server,
        model: str,
        frames: int,
        payloads: dict[str, list[bytes]],
        cycle: tuple[str, ...] = CYCLE,
    ):
        self.server, self.endpoints, self.model, self.frames = server, server.endpoints, model, frames
        self.payloads, self.cycle = payloads, cycle
        self.meeting = threading.Barrier(count + 1)  # everyone connected and warm; then everyone done
        self.go, self.release = threading.Event(), threading.Event()
        self.deadline = 0.0
        self.results: list[list[Sent]] = [[] for _ in range(count)]
        self.threads = [threading.Thread(target=self._client, args=(i,), name=f"soak-client-{i}") for i in range(count)]

    def _client(self, index: int) -> None:
        client = Client(self.endpoints, self.model, self.frames)
        try:
            for protocol in PROTOCOLS:
                client.send("good", self.payloads["good"][0], protocol)
            self.meeting.wait()
            self.go.wait()
            for kind, data, protocol in schedule(index, self.payloads, self.cycle):
                if time.monotonic() >= self.deadline or self.server.process.poll() is not None:
                    break  # time is up, or the server is gone: nothing more would be answered
                self.results[index].append(client.send(kind, data, protocol))
            self.meeting.wait()
            self.release.wait()
        except BaseException:
            self.meeting.abort()  # the main thread must not wait for a client that is gone
            raise
        finally:
            client.close()

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        self.meeting.wait()  # connected and warm
        return self

    def run(self, seconds: float) -> list[Sent]:
        """Send for `seconds`; returns once every client has its last answer (connections still open)."""
        self.deadline = time.monotonic() + seconds
        self.go.set()
        self.meeting.wait()
        return [sent for per_client in self.results for sent in per_client]

    def __exit__(self, *exc_info) -> None:
        self.go.set()
        self.release.set()
        if exc_info[0] is not None:
            self.meeting.abort()
        for thread in self.threads:
            thread.join()


# --- summary -------------------------------------------------------------------------------------


def percentiles_ms(seconds: list[float]) -> dict[str, float | None]:
    if not seconds:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    p50, p99 = np.percentile(np.asarray(seconds) * 1e3, [50, 99])
    return {"p50_ms": round(float(p50), 1), "p99_ms": round(float(p99), 1), "max_ms": round(max(seconds) * 1e3, 1)}


def summarize(sent: list[Sent], start: Sample, end: Sample, samples: list[Sample]) -> dict[str, Any]:
    answered = [s for s in sent if not s.outcome.startswith("unanswered")]
    kinds = {}
    for kind in EXPECTED:
        mine = [s for s in sent if s.kind == kind]
        outcomes = Counter(s.outcome for s in mine)
        kinds[kind] = {
            "sent": len(mine),
            "outcomes": dict(sorted(outcomes.items())),
            "expected": EXPECTED[kind],
            "as_expected": outcomes.get(EXPECTED[kind], 0),
            **percentiles_ms([s.seconds for s in mine if not s.outcome.startswith("unanswered")]),
            "example_error": next((s.message for s in mine if s.message), ""),
        }
    load = [s for s in samples if start.t <= s.t <= end.t] or [start, end]
    warm = [s for s in load if s.t >= start.t + WARMUP_FRACTION * (end.t - start.t)]
    return {
        "sent": len(sent),
        "answered": len(answered),
        "by_protocol": {p: dict(Counter(s.outcome for s in sent if s.protocol == p)) for p in PROTOCOLS},
        "kinds": kinds,
        "latency": percentiles_ms([s.seconds for s in answered]),
        "rss_mb": {
            "start": start.rss_mb,
            "peak": max(s.rss_mb for s in load),
            "end": end.rss_mb,
            "trend_mb_per_min": rss_trend(load),
            "trend_after_warmup_mb_per_min": rss_trend(warm),
        },
        "fds": {"start": start.fds, "end": end.fds},
        "threads": {"start": start.threads, "end": end.threads},
        "processes": {"start": start.processes, "end": end.processes},
        "not_ready_samples": sum(not s.ready for s in samples),
        "samples": len(samples),
    }


def rss_trend(samples: list[Sample]) -> float:
    """MB per minute: the slope of a least-squares line through the samples' RSS (0 with too few)."""
    times_min = np.asarray([s.t for s in samples]) / 60
    if len(samples) < 3 or np.ptp(times_min) == 0:
        return 0.0
    return round(float(np.polyfit(times_min, [s.rss_mb for s in samples], 1)[0]), 2)


def render(summary: dict[str, Any]) -> str:
    """The table a person reads: one row per payload kind, then the server's resources."""
    rows = [
        [
            kind,
            str(row["sent"]),
            ", ".join(f"{outcome} {count}" for outcome, count in row["outcomes"].items()),
            row["expected"],
            f"{row['p50_ms']}",
            f"{row['p99_ms']}",
        ]
        for kind, row in summary["kinds"].items()
    ]
    table = markdown_table(["payload", "sent", "outcomes", "expected", "p50 ms", "p99 ms"], rows)
    rss, fds, threads = summary["rss_mb"], summary["fds"], summary["threads"]
    facts = [
        f"answered {summary['answered']} / {summary['sent']}; latency p50 {summary['latency']['p50_ms']} ms, "
        f"p99 {summary['latency']['p99_ms']} ms",
        f"server RSS MB: start {rss['start']}, peak {rss['peak']}, end {rss['end']}, "
        f"trend {rss['trend_mb_per_min']} MB/min ({after_warmup(rss)})",
        by_process_line(summary),
        f"fds {fds['start']} -> {fds['end']}; threads {threads['start']} -> {threads['end']}; "
        f"not-ready samples {summary['not_ready_samples']}",
        server_exit_line(summary),
    ]
    return table + "\n\n" + "\n".join(f"- {fact}" for fact in facts)


def by_process_line(summary: dict[str, Any]) -> str:
    """Each process role's RSS at the start and the end, where the results file has them."""
    roles = summary.get("rss_mb_by_process")
    if not roles:
        return "RSS MB by process: not recorded"
    names = sorted(set(roles["start"]) | set(roles["end"]))
    return "RSS MB by process, start -> end: " + "; ".join(
        f"{name} {roles['start'].get(name, 0)} -> {roles['end'].get(name, 0)}" for name in names
    )


def after_warmup(rss: dict[str, Any]) -> str:
    """The trend without the warm-up, where the results file has it."""
    trend = rss.get("trend_after_warmup_mb_per_min")
    return "after the first tenth: not recorded" if trend is None else f"after the first tenth: {trend} MB/min"


def server_exit_line(summary: dict[str, Any]) -> str:
    """Whether the server process lived through the load; a summary without the field says it was not recorded."""
    if "server_exit" not in summary:
        return "server exit: not recorded"
    exit_ = summary["server_exit"]
    if exit_ is None:
        return "server exit: none, the server ran through the whole load"
    return f"server exit: {exit_['t']} s into the load, code {exit_['code']}"


def describe_soak_machine() -> dict[str, Any]:
    """The grid's machine description, plus the CPU's SIMD flags and the serving and decoding libraries."""
    from benchmarks.report import _version, describe_machine
    from runtime.cpu import cpu_flags

    machine = describe_machine("cpu")
    simd = sorted(flag for flag in cpu_flags() if flag.startswith(("avx", "sse4", "amx", "fma")))
    extra = {name: _version(name) for name in ("av", "nvidia-pytriton", "tritonclient")}
    machine["cpu_flags"] = simd
    machine["libraries"] = {**machine["libraries"], **{k: v for k, v in extra.items() if v}}
    return machine


# --- the run -------------------------------------------------------------------------------------


def soak(
    args: argparse.Namespace, model: Path, videos: list[Path], frames: int, work: Path, start_server: Callable
) -> dict[str, Any]:
    """Start the server, load it for `args.soak` minutes, and return the JSON document."""
    payloads = build_payloads(work, videos, args)
    with start_server(server_limits(args), args.decode_workers) as (server, model_name):
        with Load(args.soak_clients, server, model_name, frames, payloads, args.soak_kinds) as load:
            with Monitor(server.process, server.endpoints, time.monotonic()) as monitor:
                start, start_roles = monitor.sample(), rss_by_role(server.process.pid)
                sent = load.run(args.soak * 60)
                end, end_roles = monitor.sample(), rss_by_role(server.process.pid)
        summary = summarize(sent, start, end, monitor.samples)
        summary["rss_mb_by_process"] = {"start": start_roles, "end": end_roles}
        summary["server_exit"] = monitor.server_exit()
    return {
        "schema": SCHEMA,
        "machine": describe_soak_machine(),
        **stamp("benchmarks.serve", args.argv),
        "settings": {
            "minutes": args.soak,
            "clients": args.soak_clients,
            "frames": frames,
            "decode_workers": args.decode_workers,
            "limits": asdict(server_limits(args)),
            "cycle": list(args.soak_kinds),
            "payload_bytes": {kind: [len(data) for data in items] for kind, items in payloads.items()},
            "model": model.name,
        },
        "summary": summary,
        "samples": [asdict(sample) for sample in monitor.samples],
    }
