"""A real multi-node Ray cluster on 127.0.0.1, as docs/cluster.md starts one: `ray start --head`, then
`ray start --address` per extra node, token authentication on (RAY_AUTH_MODE=token with a token file).
The tests and benchmarks.batch_cluster use it.

Each node is a `ray start` in a Unix process session of its own (setsid), so a node is lost by
killing that process session's members, and the cluster is stopped the same way (never `ray stop`,
which would stop every Ray on the machine). Ray's files go to a short temporary folder (Ray's socket paths must stay under
107 characters) and every port is chosen free, so it collides neither with other tests nor with
another Ray on the machine.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOST = "127.0.0.1"
PORTS_PER_NODE = 9
WORKER_PORTS = 24  # worker processes per node, at most


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
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes {pids} survive SIGKILL")
        time.sleep(0.1)


def free_port_block(count: int) -> int:
    """The first of `count` consecutive ports that are free now."""
    while True:
        base = random.randrange(20000, 60000 - count)
        try:
            sockets = []
            for port in range(base, base + count):
                probe = socket.socket()
                sockets.append(probe)
                probe.bind((HOST, port))
            return base
        except OSError:
            continue
        finally:
            for probe in sockets:
                probe.close()


class Cluster:
    """Nodes started with `ray start`; `stop()` kills them all, by their sessions."""

    def __init__(self, cpus_per_node: int = 1, object_store: int = 200 << 20):
        self.folder = Path(tempfile.mkdtemp(prefix="stamray", dir="/tmp"))
        self.cpus, self.object_store = cpus_per_node, object_store
        self.token = self.folder / "token"
        self.token.write_text(secrets.token_hex(16))
        self.env = {
            **os.environ,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(self.token),
            "RAY_USAGE_STATS_ENABLED": "0",
            "HOME": str(self.folder),  # ~/.ray of the test, not of the machine's user
        }
        self.env.pop("RAY_AUTH_TOKEN", None)
        self.env.pop("RAY_ADDRESS", None)
        self.nodes: list[int] = []  # session ids, head first
        self.address = ""

    def start_node(self, head: bool, attempts: int = 3) -> int:
        """Start one node; returns its session id (the pid of its `ray start`). `ray start` gives a node
        30 s to register with the head, which a loaded machine can miss: the node is then killed and
        started again."""
        for _ in range(attempts - 1):
            try:
                return self._start_node(head)
            except RuntimeError:
                kill_session(self.nodes.pop())
        return self._start_node(head)

    def _start_node(self, head: bool) -> int:
        base = free_port_block(PORTS_PER_NODE + WORKER_PORTS)
        ports = iter(range(base, base + PORTS_PER_NODE))
        args = [
            "--node-ip-address", HOST,
            "--num-cpus", str(self.cpus),
            "--object-store-memory", str(self.object_store),
            "--node-manager-port", str(next(ports)),
            "--object-manager-port", str(next(ports)),
            "--runtime-env-agent-port", str(next(ports)),
            "--metrics-export-port", str(next(ports)),
            "--dashboard-agent-listen-port", str(next(ports)),
            "--dashboard-agent-grpc-port", str(next(ports)),
            "--min-worker-port", str(base + PORTS_PER_NODE),
            "--max-worker-port", str(base + PORTS_PER_NODE + WORKER_PORTS - 1),
            "--disable-usage-stats",
        ]  # fmt: skip
        if head:
            gcs = next(ports)
            args += ["--head", "--port", str(gcs), "--ray-client-server-port", str(next(ports))]
            args += ["--dashboard-port", str(next(ports))]  # its minimal agent listens even when disabled
            args += ["--include-dashboard", "false", "--temp-dir", str(self.folder / "ray")]
            self.address = f"{HOST}:{gcs}"
        else:
            args += ["--address", self.address]
        ray = Path(sys.executable).with_name("ray")
        process = subprocess.Popen(
            [str(ray), "start", *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.nodes.append(process.pid)
        output, _ = process.communicate(timeout=180)
        if process.returncode != 0:
            raise RuntimeError(f"ray start failed: {output.decode(errors='replace')[-3000:]}")
        return process.pid

    def kill_node(self, session: int) -> None:
        kill_session(session)
        self.nodes.remove(session)

    def stop(self) -> None:
        for session in reversed(self.nodes):
            kill_session(session)
        self.nodes.clear()
        shutil.rmtree(self.folder, ignore_errors=True)
