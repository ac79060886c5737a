"""Processes a test starts and must end: a command's whole session (Ray's daemons included), by id."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def session_pids(session: int) -> list[int]:
    """Live processes of the session that `start_new_session` gave a command (Ray's daemons included)."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text() if entry.isdigit() else ""
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split() if stat else []
        if fields and fields[0] != "Z" and int(fields[3]) == session:  # zombies are dead, awaiting wait()
            pids.append(int(entry))
    return pids


def kill_session(session: int, timeout: float = 30.0) -> None:
    """SIGKILL every process of the session, by id, until none is left (a node lost, all at once)."""
    deadline = time.monotonic() + timeout
    while pids := session_pids(session):
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        assert time.monotonic() < deadline, f"processes {pids} survive SIGKILL"
        time.sleep(0.1)


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
