"""Processes a test starts and must end: a command's whole session (Ray's daemons included), by id."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from benchmarks.local_cluster import kill_session, session_pids

__all__ = ["ROOT", "kill_session", "session_pids", "start_cli", "wait_for_parts"]

ROOT = Path(__file__).resolve().parents[2]


def start_cli(*args: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`python -m batch.cli ARGS` in a session of its own, output to `log`."""
    with open(log, "wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "batch.cli", *args],
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )


def wait_for_parts(out: Path, process: subprocess.Popen, count: int = 1, timeout: float = 240.0) -> None:
    """Until `count` part files are in `out` (the measured condition a kill waits for)."""
    deadline = time.monotonic() + timeout
    while len(list(out.glob("part-*.parquet"))) < count:
        assert process.poll() is None, "stam-batch ended before writing its parts"
        assert time.monotonic() < deadline, "no part file appeared"
        time.sleep(0.02)
