"""`stam-live MODEL SOURCE [SOURCE ...]`: classify many live sources at once, window by window, in real time.

A thin shell over runtime.live.LiveRunner. Output: one JSON line per window and per source event
with --json; otherwise a status table redrawn on a terminal (plain lines when not a terminal).
SIGINT/SIGTERM stop reading, classify what was read, and exit 0. Bad arguments, a model that cannot
take the window, or no source that ever opens: one `error:` line, exit 2.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from runtime import options
from runtime.artifact import describe
from runtime.backends import open_model
from runtime.errors import StamError, run_cli
from runtime.limits import CLI_LIMITS
from runtime.live.report import StatusScreen, plain_line, serve_metrics
from runtime.live.runner import LiveOptions, LiveRunner
from runtime.live.sources import RTSP_TRANSPORTS, Source, parse_source, read_sources
from runtime.options import positive_float, positive_int
from runtime.split import WholeModelWindows, WindowModel, open_window_model
from runtime.windows import TimelineOptions


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stam-live", description="Classify live video sources (cameras, streams, files) window by window."
    )
    options.add_model(parser, "a split pair (either part) or a whole-model artifact (.onnx, .plan)")
    parser.add_argument(
        "sources",
        nargs="*",
        metavar="SOURCE",
        help="[NAME=]URL (rtsp, rtmp, srt, udp, tcp, http(s) incl. HLS), /dev/videoN, or a file",
    )
    parser.add_argument(
        "--listen",
        action="append",
        default=[],
        metavar="[NAME=]URL",
        help="a source that a sender pushes to: listen on URL (rtsp://, tcp://, srt://); repeatable",
    )
    parser.add_argument(
        "--sources", dest="sources_file", metavar="FILE", help="more sources, one per line (`listen URL` to listen)"
    )
    options.add_window(parser, "windows (F: samples per second of each source's own clock)")
    options.add_topk(parser, "predictions per window")
    options.add_batch_size(parser, "frames, and windows, per model call")
    parser.add_argument("--json", action="store_true", help="one JSON line per window and per event")
    parser.add_argument("--realtime", action="store_true", help="play files at their own pace, as cameras")
    parser.add_argument(
        "--queue", type=positive_int, help="samples waiting per source before its backlog is dropped (default 2T)"
    )
    parser.add_argument(
        "--stall-timeout", type=positive_float, default=10.0, help="seconds without a packet before a source is lost"
    )
    parser.add_argument("--max-backoff", type=positive_float, default=10.0, help="longest wait between reconnections")
    parser.add_argument("--rtsp-transport", choices=RTSP_TRANSPORTS, default="tcp")
    parser.add_argument(
        "--ffmpeg-option", action="append", default=[], metavar="KEY=VALUE", help="an FFmpeg option for every source"
    )
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on 127.0.0.1:PORT/metrics")
    options.add_limits(parser, CLI_LIMITS, only=("max_pixels", "decode_timeout"))
    options.add_backend(parser)
    parser.add_argument("--providers", nargs="+", metavar="PROVIDER", help="ONNX Runtime providers in order")
    return parser


def gather_sources(args: argparse.Namespace) -> list[Source]:
    options = dict(parse_option(text) for text in args.ffmpeg_option)
    sources = [parse_source(text, options) for text in args.sources]
    sources += [parse_source(text, options, listen=True) for text in args.listen]
    if args.sources_file:
        try:
            lines = Path(args.sources_file).read_text().splitlines()
        except OSError as error:
            raise StamError(f"--sources {args.sources_file}: {error.strerror or error}") from None
        sources += read_sources(lines, options)
    if not sources:
        raise StamError("no source: name at least one SOURCE, --listen URL or a --sources file")
    return sources


def parse_option(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise StamError(f"--ffmpeg-option {text!r}: expected KEY=VALUE")
    return key, value


def open_live_model(args: argparse.Namespace) -> WindowModel:
    """A split pair on ONNX Runtime or TensorRT, or a whole model on any backend open_model supports."""
    split = describe(args.model).is_split
    if split:
        if args.backend == "openvino" or args.precision != "fp32":
            raise StamError("a split pair runs on ONNX Runtime or TensorRT: drop --backend openvino/--precision")
        return open_window_model(args.model, providers=args.providers)
    model = open_model(args.model, backend=args.backend, precision=args.precision, providers=args.providers)
    return WholeModelWindows(model)


def live_options(args: argparse.Namespace, model: WindowModel) -> LiveOptions:
    window = args.window or model.frames_trained
    batch_size = args.batch_size
    if model.batch_range is not None:  # an engine profile bounds the windows per call
        batch_size = max(model.batch_range.min, min(batch_size, model.batch_range.max))
    windows = TimelineOptions.resolve(window, args.stride, args.fps, batch_size=batch_size, topk=args.topk)
    limits = options.limits_from(args)
    return LiveOptions(
        windows,
        limits,
        stall_timeout=args.stall_timeout,
        rtsp_transport=args.rtsp_transport,
        realtime=args.realtime,
        queue=args.queue,
        max_backoff=args.max_backoff,
    )


def run(args: argparse.Namespace) -> int:
    if args.metrics_port is not None and not 0 <= args.metrics_port < 65536:
        raise StamError(f"--metrics-port must be 0..65535, got {args.metrics_port}")
    sources = gather_sources(args)
    with open_live_model(args) as model:
        runner = LiveRunner(model, sources, live_options(args, model))
        previous = {
            sig: signal.signal(sig, lambda number, frame: stopped(runner)) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        metrics = serve_metrics(runner, args.metrics_port) if args.metrics_port is not None else None
        try:
            write_records(runner, args.json)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if metrics is not None:
                metrics.shutdown()
    return 0


def stopped(runner: LiveRunner, _frame: FrameType | None = None) -> None:
    runner.stop()


def write_records(runner: LiveRunner, as_json: bool) -> None:
    """JSON lines, or the status table on a terminal, or plain lines; each line written whole and flushed."""
    screen = StatusScreen(runner, sys.stdout) if not as_json and sys.stdout.isatty() else None
    for record in runner:
        if screen is not None:
            screen.show(record)
            continue
        line = record.to_json() if as_json else plain_line(record)
        print(line, file=sys.stdout, flush=True)
    if screen is not None:
        screen.redraw()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(run, args)


if __name__ == "__main__":
    sys.exit(main())
