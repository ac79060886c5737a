"""Live sources on the loopback, made from video files: MPEG-TS over TCP, a live HLS playlist served over
HTTP, and senders that push RTSP or MPEG-TS over TCP to a listening reader; each remuxed (no
re-encoding) at the file's own pace.

`python -m benchmarks.live_sources ts FILE --port P` waits for one client on tcp://127.0.0.1:P and
sends it the file in real time; `hls FILE --port P` writes a live playlist in real time and serves it
at http://127.0.0.1:P/live.m3u8. Both print `ready URL` on stdout when a client may connect.
The senders, `rtsp` (FFmpeg's RTSP muxer: ANNOUNCE and RECORD to rtsp://127.0.0.1:P/live, interleaved
over TCP) and `ts-push` (MPEG-TS to tcp://127.0.0.1:P), print `ready URL` at once: the address a reader
listens on (stam-live --listen URL). They connect as soon as it listens, as a camera that retries would.
`--loop N` plays the file N times (timestamps continue), `--stall-after S` stops sending after S
seconds of media but keeps the connection open (a camera that hangs), `--corrupt-from S --corrupt-for D`
overwrites the payload of the packets in that stretch (a damaged transmission). Tests and the live
benchmark run these as subprocesses, so a source can be killed like a camera that dies.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import itertools
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import av
import numpy as np

T = TypeVar("T")

PLAYLIST = "live.m3u8"
LINGER_SECONDS = 30.0  # how long served segments stay, and how long a sender retries a closed address
RETRY_SECONDS = 0.1  # between a sender's connection attempts
PUSHED = ("rtsp", "ts-push")  # the kinds whose URL a reader listens on
TS_PACKETS = 7 * 188  # bytes written at a time: what one UDP datagram of MPEG-TS carries


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def paced_packets(
    path: str, loops: int, stall_after: float | None, corrupt: tuple[float, float] | None
) -> Iterator[tuple[av.Packet[Any], Any, float]]:
    """The video packets of `path`, `loops` times, each released when its time comes on the wall clock."""
    started, offset, rng = None, 0.0, np.random.default_rng(0)
    for _ in range(loops):
        with av.open(path) as reader:
            stream = reader.streams.video[0]
            base, last = None, 0.0
            for packet in reader.demux(stream):
                if not packet.size or packet.pts is None:
                    continue
                seconds = float(packet.pts * (stream.time_base or 0))
                base = seconds if base is None else base
                media = offset + seconds - base
                last = max(last, media)
                while stall_after is not None and media >= stall_after:
                    time.sleep(3600)  # hang with the connection open
                if started is not None:
                    time.sleep(max(0.0, started + media - time.monotonic()))
                if corrupt is not None and corrupt[0] <= media < corrupt[0] + corrupt[1]:
                    packet = damaged(packet, rng)
                yield packet, stream, offset - base
                if started is None:  # the first packet is written: a client is there, the clock starts
                    started = time.monotonic() - media
            offset = last + 1.0 / float(stream.average_rate or 25)


def damaged(packet: av.Packet[Any], rng: np.random.Generator) -> av.Packet[Any]:
    """The packet with all but its first bytes replaced by noise, timestamps kept."""
    data = bytearray(bytes(packet))
    keep = min(len(data), 8)
    data[keep:] = rng.integers(0, 256, len(data) - keep, dtype=np.uint8).tobytes()
    copy = av.Packet(bytes(data))
    copy.pts, copy.dts, copy.time_base, copy.is_keyframe = packet.pts, packet.dts, packet.time_base, False
    return copy


def remux(
    writer: av.container.OutputContainer,
    packets: Iterator[tuple[av.Packet[Any], Any, float]],
    written: Callable[[], None] = lambda: None,
) -> None:
    """Write paced packets to `writer`, their timestamps shifted so that every loop continues the last;
    `written()` after each. A video stream the writer already has (a sender's, added to connect) is used."""
    output = writer.streams.video[0] if writer.streams.video else None
    for packet, stream, shift in packets:
        if output is None:
            output = writer.add_stream_from_template(stream)
        ticks = round(shift / stream.time_base)
        packet.pts = packet.pts + ticks
        packet.dts = None if packet.dts is None else packet.dts + ticks
        packet.stream = output
        writer.mux(packet)
        written()


def serve_ts(path: str, port: int, packets: Iterator[tuple[av.Packet[Any], Any, float]]) -> None:
    """MPEG-TS to the first client of 127.0.0.1:`port` (a listening socket, so `ready` means listening)."""
    with socket.create_server(("127.0.0.1", port)) as server:
        print(f"ready tcp://127.0.0.1:{port}", flush=True)
        connection, _ = server.accept()
        send_ts(connection, packets)


def push_ts(port: int, packets: Iterator[tuple[av.Packet[Any], Any, float]]) -> None:
    """MPEG-TS sent to a reader listening on tcp://127.0.0.1:`port`."""
    print(f"ready tcp://127.0.0.1:{port}", flush=True)
    send_ts(when_listening(lambda: socket.create_connection(("127.0.0.1", port))), packets)


def send_ts(connection: socket.socket, packets: Iterator[tuple[av.Packet[Any], Any, float]]) -> None:
    with connection, connection.makefile("wb", buffering=0) as sink:
        with av.open(sink, "w", format="mpegts", buffer_size=TS_PACKETS) as writer:
            remux(writer, packets)


def push_rtsp(port: int, packets: Iterator[tuple[av.Packet[Any], Any, float]]) -> None:
    """RTSP pushed to a reader listening on rtsp://127.0.0.1:`port`/live: the RTSP muxer connects when it
    writes its header (ANNOUNCE, SETUP, RECORD), so the first packet's stream is added before that."""
    url = f"rtsp://127.0.0.1:{port}/live"
    print(f"ready {url}", flush=True)
    first = next(packets, None)
    if first is None:
        return
    with when_listening(lambda: rtsp_writer(url, first[1])) as writer:
        remux(writer, itertools.chain([first], packets))


def rtsp_writer(url: str, template: Any) -> av.container.OutputContainer:
    """An RTSP muxer connected to `url` (its header written), with one video stream like `template`."""
    writer = av.open(url, "w", format="rtsp", options={"rtsp_transport": "tcp"})
    try:
        writer.add_stream_from_template(template)
        writer.start_encoding()
    except BaseException:
        writer.close()
        raise
    return writer


def when_listening(connect: Callable[[], T]) -> T:
    """`connect()` again while the address refuses, for LINGER_SECONDS: a sender waiting for its reader."""
    deadline = time.monotonic() + LINGER_SECONDS
    while True:
        try:
            return connect()
        except ConnectionRefusedError:  # PyAV's is one too
            if time.monotonic() > deadline:
                raise
            time.sleep(RETRY_SECONDS)


def serve_hls(path: str, port: int, packets: Iterator[tuple[av.Packet[Any], Any, float]], segment: float) -> None:
    with tempfile.TemporaryDirectory(prefix="live_hls_") as folder:
        handler = functools.partial(_QuietHandler, directory=folder)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        playlist = Path(folder) / PLAYLIST
        options = {"hls_time": f"{segment:g}", "hls_list_size": "0", "hls_flags": "independent_segments"}
        announced = threading.Event()

        def announce() -> None:
            if not announced.is_set() and playlist.exists():
                print(f"ready http://127.0.0.1:{port}/{PLAYLIST}", flush=True)
                announced.set()

        with av.open(str(playlist), "w", format="hls", options=options) as writer:
            remux(writer, packets, announce)
        time.sleep(LINGER_SECONDS)  # the last segments stay served while clients catch up
        server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@contextmanager
def live_source(
    kind: str,
    video: str | Path,
    *,
    loops: int = 1,
    stall_after: float | None = None,
    extra: Sequence[str] = (),
    port: int | None = None,
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Start a source server or sender subprocess (on `port`, default a free one); yields (URL, process) once
    it is ready; stops it by its id."""
    port = port or free_port()
    command = [sys.executable, "-m", "benchmarks.live_sources", kind, str(video), "--port", str(port)]
    command += ["--loop", str(loops), *extra]
    if stall_after is not None:
        command += ["--stall-after", str(stall_after)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = process.stdout.readline() if process.stdout else ""
        if not line.startswith("ready "):
            raise RuntimeError(f"{kind} source did not start: {line!r}")
        yield line.split()[1], process
    finally:
        process.kill()
        process.wait()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.live_sources", description=__doc__.split("\n")[0])
    parser.add_argument("kind", choices=("ts", "hls", *PUSHED))
    parser.add_argument("video")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", type=int, default=1, help="plays of the file (default 1)")
    parser.add_argument("--stall-after", type=float, help="media seconds after which nothing more is sent")
    parser.add_argument("--corrupt-from", type=float, help="media second where the damaged stretch starts")
    parser.add_argument("--corrupt-for", type=float, default=1.0, help="seconds of damaged packets (default 1)")
    parser.add_argument("--segment", type=float, default=1.0, help="HLS segment seconds (default 1)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    corrupt = None if args.corrupt_from is None else (args.corrupt_from, args.corrupt_for)
    packets = paced_packets(args.video, args.loop, args.stall_after, corrupt)
    try:
        if args.kind == "ts":
            serve_ts(args.video, args.port, packets)
        elif args.kind == "hls":
            serve_hls(args.video, args.port, packets, args.segment)
        elif args.kind == "ts-push":
            push_ts(args.port, packets)
        else:
            push_rtsp(args.port, packets)
    except (av.error.FFmpegError, BrokenPipeError, ConnectionError):
        return 1  # the client went away, or no reader listened
    return 0


if __name__ == "__main__":
    sys.exit(main())
