"""A few held-out motion videos for the serving tests: the first of each class in the run's shared set."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from benchmarks.motion.generate import CLASSES


@pytest.fixture(scope="session")
def serve_videos(motion_held_out_dir) -> list[Path]:
    """One held-out video per motion class (9 files), from the set built once per test run."""
    return [sorted((motion_held_out_dir / label).glob("*.mp4"))[0] for label in CLASSES]


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
