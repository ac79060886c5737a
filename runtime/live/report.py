"""How a live run is shown: JSON lines, plain lines, a status table redrawn on a terminal, and Prometheus text
metrics served on 127.0.0.1 by the standard library's http.server."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable
from typing import TextIO

from runtime.live.hub import Hub
from runtime.live.records import EventRecord, WindowRecord
from runtime.live.runner import LiveRunner

REDRAW_SECONDS = 0.5
CLEAR = "\x1b[H\x1b[2J"


def plain_line(record: WindowRecord | EventRecord) -> str:
    """One readable line per record (output that is not a terminal, without --json)."""
    if isinstance(record, EventRecord):
        why = f": {record.reason}" if record.reason else ""
        return f"{record.source}  {record.event}{why}"
    top = record.top1
    return (
        f"{record.source}  {record.start:9.2f} {record.end:9.2f}  {top.label} ({top.probability:.3f})  "
        f"{record.latency_ms:.0f} ms"
    )


def status_table(runner: LiveRunner) -> str:
    """One row per source: up or down, last label and probability, sample rate, drops, windows, latency."""
    hub, now = runner.hub, time.monotonic()
    width = max(6, *(len(s.name) for s in runner.sources))
    rows = [
        f"{'source':<{width}}  {'state':<5}  {'last label':<20} {'prob':>5}  {'rate/s':>6} {'drops':>6} "
        f"{'windows':>7} {'latency':>9}"
    ]
    for index, source in enumerate(runner.sources):
        counts = hub.counts[index]
        rows.append(
            f"{source.name:<{width}}  {'up' if counts.up else 'down':<5}  {counts.last_label[:20]:<20} "
            f"{counts.last_probability:>5.2f}  {hub.throughput(index, now):>6.2f} {counts.dropped:>6} "
            f"{counts.windows:>7} {counts.last_latency_ms:>6.0f} ms"
        )
    return "\n".join(rows)


class StatusScreen:
    """Redraws the status table on a terminal at most every REDRAW_SECONDS; events scroll below it."""

    def __init__(self, runner: LiveRunner, out: TextIO):
        self.runner, self.out = runner, out
        self._drawn = 0.0
        self._events: list[str] = []

    def show(self, record: WindowRecord | EventRecord) -> None:
        if isinstance(record, EventRecord):
            self._events = [*self._events[-9:], plain_line(record)]
        if time.monotonic() - self._drawn >= REDRAW_SECONDS:
            self.redraw()

    def redraw(self) -> None:
        self._drawn = time.monotonic()
        self.out.write(CLEAR + status_table(self.runner) + "\n\n" + "\n".join(self._events) + "\n")
        self.out.flush()


def prometheus_text(runner: LiveRunner) -> str:
    """The run's metrics in Prometheus' text exposition format."""
    hub: Hub = runner.hub
    names = [source.name.replace("\\", "\\\\").replace('"', '\\"') for source in runner.sources]
    per_source: list[tuple[str, str, str, Callable[[int], float]]] = [
        ("stam_live_windows_total", "counter", "Windows classified.", lambda i: hub.counts[i].windows),
        ("stam_live_samples_total", "counter", "Samples read.", lambda i: hub.counts[i].samples),
        ("stam_live_dropped_samples_total", "counter", "Samples dropped unprocessed.", lambda i: hub.counts[i].dropped),
        ("stam_live_source_up", "gauge", "1 while the source delivers frames.", lambda i: int(hub.counts[i].up)),
    ]
    lines: list[str] = []
    for metric, kind, text, value in per_source:
        lines += [f"# HELP {metric} {text}", f"# TYPE {metric} {kind}"]
        lines += [f'{metric}{{source="{name}"}} {value(i)}' for i, name in enumerate(names)]
    histogram = runner.latency
    lines += [
        "# HELP stam_live_latency_seconds From a window's last sample to its record.",
        "# TYPE stam_live_latency_seconds histogram",
    ]
    lines += [f'stam_live_latency_seconds_bucket{{le="{b:g}"}} {c}' for b, c in zip(histogram.bounds, histogram.counts)]
    lines += [
        f'stam_live_latency_seconds_bucket{{le="+Inf"}} {histogram.count}',
        f"stam_live_latency_seconds_sum {histogram.total:.6f}",
        f"stam_live_latency_seconds_count {histogram.count}",
    ]
    return "\n".join(lines) + "\n"


def serve_metrics(runner: LiveRunner, port: int) -> http.server.ThreadingHTTPServer:
    """Serve `GET /metrics` on 127.0.0.1:`port` (0: any free port) from a daemon thread; `.shutdown()` stops it."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body = prometheus_text(runner).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, name="live-metrics", daemon=True).start()
    return server
