"""`stam-serve MODEL`: any artifact `open_model` opens, behind Triton over HTTP and gRPC, until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import socket
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from runtime import options
from runtime.artifact import ArtifactInfo
from runtime.backends import resolve_backend
from runtime.errors import StamError, run_cli
from runtime.limits import SERVER_LIMITS
from serve import config as triton_config
from serve.server import Endpoints, ServeOptions, TritonServer, import_pytriton_distribution


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stam-serve",
        description="Serve a STAM artifact on Triton: NAME (frames -> logits) and NAME_video (encoded video -> top-k).",
    )
    options.add_model(parser, "model.onnx, model.plan or model.engine (with its .json sidecar)")
    parser.add_argument("--name", help="Triton model name (default: the file's stem)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002, help="Prometheus metrics at /metrics (default 8002)")
    parser.add_argument(
        "--max-batch", type=int, default=8, help="largest batch Triton forms (default 8; a plan's profile bounds it)"
    )
    parser.add_argument(
        "--max-queue-delay-us",
        type=int,
        default=2000,
        help="how long a request may wait for others to batch with (default 2000)",
    )
    parser.add_argument("--no-dynamic-batching", action="store_true", help="run every request as it comes")
    parser.add_argument("--instances", type=int, default=1, help="copies of the model (default 1)")
    parser.add_argument("--decode-workers", type=int, default=2, help="videos decoded at once (default 2)")
    options.add_topk(parser, "default predictions per video")
    options.add_sampling(parser)
    options.add_backend(parser)
    parser.add_argument(
        "--max-frames",
        type=int,
        default=triton_config.DEFAULT_MAX_FRAMES,
        help="frames per video an ONNX model accepts (default 128; a plan's profile decides for plans)",
    )
    parser.add_argument("--exit-timeout", type=int, default=30, help="seconds to finish in-flight requests on shutdown")
    parser.add_argument("--ready-timeout", type=float, default=180, help="seconds to wait for the models to load")
    parser.add_argument("--verbose", action="store_true", help="Triton's info-level log")
    options.add_limits(parser, SERVER_LIMITS)
    return parser


def options_from(args: argparse.Namespace) -> tuple[ServeOptions, Endpoints]:
    batching = triton_config.Batching(
        args.max_batch, args.max_queue_delay_us, args.instances, not args.no_dynamic_batching
    )
    batching.validate()
    for flag, value in (("decode-workers", args.decode_workers), ("max-frames", args.max_frames)):
        if value < 1:
            raise StamError(f"--{flag} must be >= 1, got {value}")
    served = options.config_from(
        ServeOptions,
        args,
        artifact=Path(args.model),
        name=args.name or triton_config.model_name(args.model),
        batching=batching,
        exit_timeout_s=args.exit_timeout,
    )
    return served, Endpoints(args.host, args.http_port, args.grpc_port, args.metrics_port)


def resolve_options(served: ServeOptions, info: ArtifactInfo) -> ServeOptions:
    """The backend `--backend` resolves to here (what the start-up line names and every model instance opens)."""
    backend = resolve_backend(info, served.backend, served.precision, None)
    return dataclasses.replace(served, backend=backend)


def check_ports_free(endpoints: Endpoints) -> None:
    """Refuse a busy port in one line, before the server's start-up log."""
    ports = [endpoints.http_port, endpoints.grpc_port, endpoints.metrics_port]
    if len(set(ports)) != len(ports):
        raise StamError(f"the HTTP, gRPC and metrics ports must differ, got {ports}")
    for port in ports:
        with socket.socket() as probe:
            try:
                probe.bind((endpoints.host, port))
            except OSError as error:
                raise StamError(f"cannot listen on {endpoints.host}:{port} ({error.strerror})") from None


@contextmanager
def forwarded_signals(server: TritonServer) -> Iterator[list[int]]:
    """SIGTERM and SIGINT ask Triton to drain and exit; yields the signals received."""
    received: list[int] = []

    def forward(signum: int, _frame) -> None:
        received.append(signum)
        server.request_stop()

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve(server: TritonServer, ready_timeout: float, received: list[int]) -> int:
    """Start, announce readiness, wait for the server to exit; 0 when a signal stopped it."""
    server.start()
    try:
        server.wait_ready(ready_timeout)
    except StamError:
        if received:
            return 0
        raise
    served, endpoints = server.options, server.endpoints
    print(
        f"stam-serve: {served.name} and {served.name}{triton_config.VIDEO_SUFFIX} ready on {served.backend} "
        f"({served.precision}); "
        f"HTTP {endpoints.url()}, gRPC {endpoints.local_host}:{endpoints.grpc_port}, "
        f"metrics http://{endpoints.local_host}:{endpoints.metrics_port}/metrics",
        flush=True,
    )
    code = server.process.wait()
    if received or code == 0:
        return 0
    print(f"error: tritonserver exited with code {code} (its log above says why)", file=sys.stderr)
    return 1


def run(args: argparse.Namespace) -> int:
    import_pytriton_distribution()
    served, endpoints = options_from(args)
    info = triton_config.servable(served.artifact)
    served = resolve_options(served, info)
    check_ports_free(endpoints)
    server = TritonServer(info, served, endpoints)
    with forwarded_signals(server) as received:
        try:
            return serve(server, args.ready_timeout, received)
        finally:
            server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
