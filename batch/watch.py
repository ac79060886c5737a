"""Watching a running job: what is done, shown on a terminal or logged, and a watchdog that ends a stalled job.

The steps report each video they decode and classify to a small counting actor (no CPU, on the
driver's node), and the driver counts the rows written. A bar shows them on a terminal; in logs
(stderr not a terminal) one status line every STATUS_EVERY_S. When none of the three counts moves
for `stall_timeout` seconds (a lost node, work Ray cannot place), the job ends with one line that
says what Ray reports pending and where CPUs are free, and exit 3: the parts written stay, a rerun
resumes.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any

import pyarrow as pa

from batch.steps import Classify, decode_video
from runtime.errors import StamError
from runtime.limits import BATCH_LIMITS, Limits
from runtime.progress import progress_bar

STATUS_EVERY_S = 30.0  # a status line in logs this often
POLL_S = 1.0  # the driver asks the counting actor at most this often
ASK_TIMEOUT_S = 10.0  # a counting actor that does not answer counts as no progress
COUNTS = ("decoded", "classified", "written")


class JobStopped(StamError):
    """Ray gave up on the job, or it stalled (a worker that cannot open the model, a lost node): rerun to resume."""

    exit_code = 3


class Tally:
    """The counting actor: steps add, the driver reads. Ray wraps it (`ray.remote`) when a job starts."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def add(self, key: str, count: int) -> None:
        self.counts[key] += count

    def read(self) -> dict[str, int]:
        return dict(self.counts)


def start_tally(ray) -> Any:  # noqa: ANN001 - the ray module
    """The counting actor, on the driver's node when it can (a lost worker node must not take it along)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
    return ray.remote(num_cpus=0, max_restarts=-1)(Tally).options(scheduling_strategy=here).remote()


def decode_counted(row: dict, tally: Any, num_frames: int, sampling: str, limits: Limits = BATCH_LIMITS) -> dict:
    """The decode step, counted."""
    decoded = decode_video(row, num_frames, sampling, limits)
    tally.add.remote("decoded", 1)
    return decoded


class ClassifyCounted(Classify):
    """The model step, counted."""

    def __init__(self, *args: Any, tally: Any) -> None:
        super().__init__(*args)
        self.tally = tally

    def __call__(self, batch: dict) -> pa.Table:
        table = super().__call__(batch)
        self.tally.add.remote("classified", table.num_rows)
        return table


class Watch:
    """The driver's view of a running job: progress, status lines, and the stall watchdog."""

    def __init__(self, ray, tally: Any, total: int, stall_timeout: float, out: str, status_every: float):  # noqa: ANN001
        self.ray, self.tally, self.total, self.out = ray, tally, total, out
        self.stall_timeout, self.status_every = stall_timeout, status_every
        self.counts = dict.fromkeys(COUNTS, 0)
        self.start = self.changed = self.polled = self.logged = time.monotonic()
        self.bar = progress_bar(total, "video", desc="stam-batch")
        self.logs = not sys.stderr.isatty()  # a bar on a terminal, status lines in logs

    def written(self, videos: int) -> None:
        self.counts["written"] += videos
        self.changed = time.monotonic()
        self.bar.update(videos)

    def tick(self) -> None:
        """Poll the counts; show them; JobStopped when nothing moved for `stall_timeout` seconds."""
        now = time.monotonic()
        if now - self.polled >= POLL_S:
            self.polled = now
            self.poll(now)
        if self.logs and now - self.logged >= self.status_every:
            self.logged = now
            print(f"stam-batch: {self.status()}", file=sys.stderr, flush=True)
        if now - self.changed > self.stall_timeout:
            raise JobStopped(self.stall_message(now))

    def poll(self, now: float) -> None:
        try:
            counts = self.ray.get(self.tally.read.remote(), timeout=ASK_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - an unanswered poll is no progress, never a failure
            return
        for key in ("decoded", "classified"):
            if counts.get(key, 0) > self.counts[key]:
                self.counts[key], self.changed = counts[key], now
        self.bar.set_postfix_str(f"decoded {self.counts['decoded']}, classified {self.counts['classified']}")

    def status(self) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        written = self.counts["written"]
        return (
            f"{written}/{self.total} videos written ({self.counts['decoded']} decoded, "
            f"{self.counts['classified']} classified), {written / elapsed:.2f} videos/s, "
            f"{self.total - written} pending"
        )

    def stall_message(self, now: float) -> str:
        return (
            f"the job made no progress for {now - self.changed:.0f} s (--stall-timeout): {self.status()}; "
            f"{pending_report(self.ray)}; {self.out} keeps every part written so far: rerun the same command "
            "to resume"
        )

    def close(self) -> None:
        self.bar.close()


def pending_report(ray) -> str:  # noqa: ANN001 - the ray module
    """What Ray reports waiting for resources, and the CPUs and GPUs free on each node, in one clause."""
    try:
        from ray.autoscaler.v2.sdk import get_cluster_status

        status = get_cluster_status(ray.get_runtime_context().gcs_address)
        demands = [
            f"{shape.count} x {{{bundle_text(shape.bundle)}}}"
            for demand in status.resource_demands.ray_task_actor_demand
            for shape in demand.bundles_by_count
        ]
        free = [free_text(node.available_resources()) for node in [*status.active_nodes, *status.idle_nodes]]
    except Exception as error:  # noqa: BLE001 - the report is a courtesy; the stall is the error
        return f"Ray's status could not be read ({type(error).__name__})"
    waiting = ", ".join(demands) if demands else "nothing"
    return f"Ray reports waiting for resources: {waiting}; free per node: {'; '.join(free) or 'no alive node'}"


def bundle_text(bundle: dict[str, float]) -> str:
    return ", ".join(
        f"{key}: {value / 2**20:.0f} MiB" if "memory" in key else f"{key}: {value:g}"
        for key, value in sorted(bundle.items())
        if not key.startswith("node:")
    )


def free_text(available: dict[str, float]) -> str:
    """The free CPUs and GPUs of one node (Ray reports none for a node not yet running)."""
    free = {key: value for key, value in available.items() if key in ("CPU", "GPU")}
    return ", ".join(f"{value:g} {key}" for key, value in sorted(free.items())) or "nothing"
