"""tritonserver killed by a signal while it starts is started again, a bounded number of times; an exit
with a code (a configuration Triton refused) is never retried."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from runtime.errors import StamError
from serve import server as server_module
from serve.server import START_ATTEMPTS, TritonServer

ABORTS = [sys.executable, "-c", "import os; os.abort()"]  # dies of SIGABRT, as the Python backend's race does
REFUSES = [sys.executable, "-c", "raise SystemExit(1)"]
RUNS = [sys.executable, "-c", "import time; time.sleep(60)"]


def server_starting(commands: list[list[str]], monkeypatch: pytest.MonkeyPatch) -> tuple[TritonServer, list[str]]:
    """A TritonServer whose successive starts run `commands` (the last one repeats); ready once one runs."""
    server = TritonServer(SimpleNamespace(), SimpleNamespace(exit_timeout_s=1.0), SimpleNamespace())
    started: list[str] = []

    def start() -> TritonServer:
        command = commands[min(len(started), len(commands) - 1)]
        started.append(command[-1])
        server._process = subprocess.Popen(command)
        return server

    monkeypatch.setattr(server, "start", start)
    monkeypatch.setattr(server_module, "is_ready", lambda endpoints: started[-1] == RUNS[-1])
    return server.start(), started


def test_a_server_killed_while_starting_is_started_again(monkeypatch, capsys):
    server, started = server_starting([ABORTS, RUNS], monkeypatch)
    try:
        server.wait_ready(60)
        assert len(started) == 2 and server.process.poll() is None
        warnings = capsys.readouterr().err.splitlines()
        assert warnings == [
            f"warning: tritonserver was killed by signal 6 while starting; starting it again (attempt 2 of {START_ATTEMPTS})"
        ]
    finally:
        server.stop()


def test_restarts_are_bounded(monkeypatch):
    server, started = server_starting([ABORTS], monkeypatch)
    with pytest.raises(StamError, match="exited with code -6 before it was ready"):
        server.wait_ready(60)
    assert len(started) == START_ATTEMPTS


def test_an_exit_code_is_not_retried(monkeypatch):
    server, started = server_starting([REFUSES, RUNS], monkeypatch)
    with pytest.raises(StamError, match="exited with code 1 before it was ready"):
        server.wait_ready(60)
    assert len(started) == 1
