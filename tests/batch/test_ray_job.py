"""stam-batch on a real local Ray (2 CPUs): killed and resumed exactly once, and equal to runtime.infer.

One module, one in-process Ray (started lazily, after the killed run's own Ray is gone, and shut
down at the end); every process of the killed run is ended by its id.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("ray.data")
from batch.job import JobConfig, run_job  # noqa: E402
from tests.batch.conftest import copy_videos  # noqa: E402
from tests.batch.processes import kill_session, start_cli, wait_for_parts  # noqa: E402
from tests.batch.reference import assert_same_predictions, infer_json, read_results  # noqa: E402

pytestmark = pytest.mark.ray
KILLED_VIDEOS = 32


@pytest.fixture(scope="module")
def many_videos(corpus, tmp_path_factory) -> Path:
    """KILLED_VIDEOS copies of the corpus's good videos (distinct paths), for a run worth killing."""
    return copy_videos(corpus, tmp_path_factory.mktemp("copies"), KILLED_VIDEOS)


def test_killed_with_sigkill_and_rerun_every_input_is_there_exactly_once(request, tiny_onnx, many_videos, tmp_path):
    """The kill waits for a measured condition (the first part written) and lands while the command
    still runs (checked): one video a part, KILLED_VIDEOS of them, so most are left to the rerun."""
    out = tmp_path / "results"
    args = [str(tiny_onnx), str(many_videos), "--out", str(out), "--batch-size", "1", "--rows-per-file", "1"]
    process = start_cli(*args, "--num-cpus", "2", log=tmp_path / "killed.log")
    try:
        wait_for_parts(out, process)
        assert process.poll() is None, "stam-batch ended before the kill"
    finally:
        kill_session(process.pid)
        process.wait()
    before = {p.name: p.read_bytes() for p in out.glob("part-*.parquet")}
    assert 0 < len(before) < KILLED_VIDEOS

    request.getfixturevalue("local_ray")  # the rerun, in this process (the killed Ray is gone)
    config = JobConfig(model=str(tiny_onnx), inputs=[str(many_videos)], out=str(out), batch_size=4, rows_per_file=8)
    summary = run_job(config)
    paths = [row["path"] for row in read_results(out)]
    assert sorted(paths) == sorted(str(p) for p in many_videos.iterdir())  # each input once, none twice
    assert summary.videos == KILLED_VIDEOS - len(before) and summary.skipped == len(before)
    assert {name: (out / name).read_bytes() for name in before} == before  # finished parts untouched
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]

    again = run_job(config)  # nothing new: no Ray work, no new file
    assert (again.videos, again.startup_s, again.skipped) == (0, 0.0, KILLED_VIDEOS)
    assert len(list(out.glob("part-*.parquet"))) == len(before) + summary.parts


def test_results_equal_runtime_infer_and_bad_files_are_error_rows(local_ray, tiny_onnx, corpus, tmp_path):
    """Folder by file:// URI, another plainly, a manifest naming a missing file; 2 actors."""
    manifest = tmp_path / "more.txt"
    manifest.write_text(f"{corpus['a']}\ngone.mp4\n")
    inputs = [corpus["videos"].as_uri(), str(corpus["broken"]), str(manifest)]
    out = tmp_path / "results"
    summary = run_job(
        JobConfig(
            model=str(tiny_onnx),
            inputs=inputs,
            out=str(out),
            topk=3,
            with_logits=True,
            batch_size=2,
            actors=2,
            rows_per_file=3,
        )
    )
    rows = {row["path"]: row for row in read_results(out)}
    local = {path: Path(path.removeprefix("file://")) for path in rows}
    expected = infer_json(tiny_onnx, sorted(local.values()))
    assert len(rows) == summary.videos == 9 and summary.failures == 4  # 4 good + a again, 3 broken + missing
    for path, row in rows.items():
        reference = expected[str(local[path])]
        if "error" in reference:
            assert row["error"] == reference["error"].replace(str(local[path]), path) and row["label"] is None
            continue
        assert_same_predictions(row, reference)
        assert row["frames"] == 8 and row["sampling"] == "uniform" and row["model"]["file"] == tiny_onnx.name


def test_the_stall_report_names_what_ray_has_waiting(local_ray):
    """What the watchdog's line quotes, read from a real Ray: a task that asks for more CPUs than there
    are waits, and is reported with its shape; the CPUs free per node follow."""
    from batch.watch import pending_report

    def nothing() -> None:
        return None

    waiting = local_ray.remote(num_cpus=3)(nothing).remote()
    try:
        deadline = time.monotonic() + 60
        while "1 x {CPU: 3}" not in (report := pending_report(local_ray)):
            assert time.monotonic() < deadline, report
            time.sleep(0.2)
        assert report.startswith("Ray reports waiting for resources: ") and "free per node: 2 CPU" in report
    finally:
        local_ray.cancel(waiting, force=True)
