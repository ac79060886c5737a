"""runtime.decode.loop: the one packet -> frame loop: its three error policies on a damaged file, the
stop event, an open container or a network source (FFmpeg options, open timeout), frame times."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from runtime.decode import DecodeFailed, Policy, frames, open_container
from runtime.decode.container import OpenTimedOut
from tests.videos import read_index_code, write_remuxed, write_video


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("loop")
    plain = write_video(root / "plain.mp4", 300, 64, 48, fps=30)
    data = bytearray(plain.read_bytes())  # random bytes over the middle of the data (moov at the end)
    start, stop = len(data) * 45 // 100, len(data) * 55 // 100
    data[start:stop] = np.random.default_rng(0).integers(0, 256, stop - start, dtype=np.uint8).tobytes()
    (root / "corrupt.mp4").write_bytes(bytes(data))
    return {"plain": plain, "corrupt": root / "corrupt.mp4", "ts": write_remuxed(root / "plain.ts", plain)}


def test_frames_come_in_order_with_their_times(clips):
    decoded = list(frames(clips["plain"]))
    assert [read_index_code(d.frame.to_ndarray(format="rgb24")) for d in decoded] == list(range(300))
    assert [round(d.time, 4) for d in decoded] == [round(k / 30, 4) for k in range(300)]


def test_each_policy_on_a_corrupt_stretch(clips):
    """SKIP decodes past the damage; STOP ends before it with one note; RAISE raises."""
    notes: list[str] = []
    stopped = [read_index_code(d.frame.to_ndarray(format="rgb24")) for d in frames(clips["corrupt"], notes=notes)]
    skipped = list(frames(clips["corrupt"], policy=Policy.SKIP))
    assert 0 < len(stopped) < len(skipped) and stopped == list(range(len(stopped)))  # nothing after the damage
    assert len(notes) == 1 and notes[0].startswith("decoding failed after ") and "\n" not in notes[0]
    with pytest.raises(DecodeFailed, match=r"^decoding failed \("):
        list(frames(clips["corrupt"], policy=Policy.RAISE))


def test_the_stop_event_ends_the_frames_at_the_next_packet(clips):
    stop, seen = threading.Event(), 0
    for _ in frames(clips["plain"], stop=stop, threads="NONE"):
        seen += 1
        if seen == 3:
            stop.set()
    assert seen == 3  # one frame per packet; the decoder is not drained after a stop


def test_an_open_container_is_read_and_left_open(clips):
    with open_container(clips["plain"]) as container:
        assert len(list(frames(container))) == 300
        container.seek(0)  # still open: its owner closes it


@contextmanager
def tcp_server(payload: bytes | None) -> Iterator[int]:
    """A one-connection TCP server on 127.0.0.1 sending `payload`, or nothing at all (None); yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            if payload is not None:
                connection.sendall(payload)
            else:
                done.wait()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        done.set()
        listener.close()
        thread.join(timeout=30)


def test_a_network_source_with_ffmpeg_options(clips):
    with tcp_server(clips["ts"].read_bytes()) as port:
        decoded = list(frames(f"tcp://127.0.0.1:{port}", options={"probesize": "5000000"}, open_timeout=30))
    assert [read_index_code(d.frame.to_ndarray(format="rgb24")) for d in decoded] == list(range(300))


def test_a_silent_source_fails_its_open_timeout_with_one_line():
    with tcp_server(None) as port:
        with pytest.raises(OpenTimedOut, match=rf"^tcp://127.0.0.1:{port}: not a readable video \(") as caught:
            list(frames(f"tcp://127.0.0.1:{port}", open_timeout=0.5))
    assert "\n" not in str(caught.value)
