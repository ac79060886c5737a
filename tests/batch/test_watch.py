"""The watch on a running job, without Ray: status lines in logs, and the watchdog's one line on a stall."""

from __future__ import annotations

import time

import pytest

from batch.watch import JobStopped, Watch


class Remote:
    def __init__(self, value):
        self.value = value

    def remote(self):
        return self.value


class FakeTally:
    def __init__(self):
        self.counts = {"decoded": 0, "classified": 0}
        self.read = Remote(self.counts)


class FakeRay:
    """`ray.get` of the tally's counts; the cluster status cannot be read (no Ray here)."""

    def get(self, value, timeout=None):
        return dict(value)

    def get_runtime_context(self):
        raise RuntimeError("no Ray here")


def test_counts_reset_the_stall_clock_and_a_stall_ends_the_job_in_one_line(capsys):
    tally = FakeTally()
    watch = Watch(FakeRay(), tally, total=3, stall_timeout=60.0, out="out/", status_every=0.0)
    watch.polled = watch.changed = time.monotonic() - 120  # two minutes ago, on the watch's clock
    tally.counts.update(decoded=2, classified=1)
    watch.tick()  # the poll sees new counts: progress, no stall
    watch.written(1)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("stam-batch: 0/3 videos written (2 decoded, 1 classified), ") and line.endswith(" 3 pending")

    watch.changed -= 61  # nothing moved for over a minute since
    watch.polled = time.monotonic() - 2
    with pytest.raises(JobStopped) as stopped:
        watch.tick()
    message = str(stopped.value)
    assert stopped.value.exit_code == 3 and "\n" not in message
    assert message.startswith(
        "the job made no progress for 61 s (--stall-timeout): 1/3 videos written (2 decoded, 1 classified)"
    )
    assert "Ray's status could not be read (RuntimeError)" in message
    assert message.endswith("out/ keeps every part written so far: rerun the same command to resume")
    watch.close()
