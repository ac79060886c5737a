"""The shipped motion model's ONNX export and a few held-out motion videos, shared by the serving tests."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from benchmarks.motion import HELD_OUT_SEED
from benchmarks.motion.generate import generate


@pytest.fixture(scope="session")
def serve_videos(tmp_path_factory) -> list[Path]:
    """One short, small held-out video per motion class (9 files)."""
    root = tmp_path_factory.mktemp("serve_videos")
    return generate(root, 1, HELD_OUT_SEED, max_side=160, max_seconds=1.5)


def free_ports(count: int) -> list[int]:
    """Ports the kernel just handed out on 127.0.0.1 (released before the server binds them)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
