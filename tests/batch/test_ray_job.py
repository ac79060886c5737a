"""stam-batch on a real local Ray (2 CPUs): killed and resumed exactly once, and equal to runtime.infer.

One module, one in-process Ray (started lazily, after the killed run's own Ray is gone, and shut
down at the end); every process of the killed run is ended by its id.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray.data")
import pyarrow.dataset as ds  # noqa: E402 - only with the ray extra

from batch.job import JobConfig, run_job  # noqa: E402

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[2]
KILLED_VIDEOS = 16


def read_results(out: Path) -> list[dict]:
    """Every row in the folder, as a user reads it (dot- and underscore-files skipped)."""
    return ds.dataset(out, format="parquet").to_table().to_pylist()


def session_pids(session: int) -> list[int]:
    """Processes of the session that `start_new_session` gave the killed command (Ray's included)."""
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


def start_cli(*args: str, log: Path) -> subprocess.Popen:
    with open(log, "wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "batch.cli", *args],
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_for_first_part(out: Path, process: subprocess.Popen, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not list(out.glob("part-*.parquet")):
        assert process.poll() is None, "stam-batch ended before writing a part"
        assert time.monotonic() < deadline, "no part file appeared"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def many_videos(corpus, tmp_path_factory) -> Path:
    """KILLED_VIDEOS copies of the corpus's good videos (distinct paths), for a run worth killing."""
    folder = tmp_path_factory.mktemp("many")
    sources = [corpus[name] for name in ("a", "b", "c", "d")]
    for i in range(KILLED_VIDEOS):
        shutil.copy(sources[i % 4], folder / f"v{i:02d}{sources[i % 4].suffix}")
    return folder


def test_killed_with_sigkill_and_rerun_every_input_is_there_exactly_once(request, tiny_onnx, many_videos, tmp_path):
    out = tmp_path / "results"
    args = [
        str(tiny_onnx),
        str(many_videos),
        "--out",
        str(out),
        "--batch-size",
        "1",
        "--rows-per-file",
        "1",
        "--num-cpus",
        "2",
    ]
    process = start_cli(*args, log=tmp_path / "killed.log")
    try:
        wait_for_first_part(out, process)
    finally:
        kill_session(process.pid)
        process.wait()
    before = {p.name: p.read_bytes() for p in out.glob("part-*.parquet")}
    assert 0 < len(before) < KILLED_VIDEOS, "the kill must land mid-job"

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


def infer_json(model: Path, videos: list[Path]) -> dict[str, dict]:
    """`python -m runtime.infer --json --logits`, by path: the single-process reference."""
    command = [
        sys.executable,
        "-m",
        "runtime.infer",
        str(model),
        *map(str, videos),
        "--json",
        "--logits",
        "--topk",
        "3",
        "--batch-size",
        "3",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr  # 1: some videos failed, as they must
    return {row["path"]: row for row in map(json.loads, result.stdout.splitlines())}


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
        assert row["error"] is None and row["label"] == reference["topk"][0]["label"]
        assert [p["label"] for p in row["topk"]] == [p["label"] for p in reference["topk"]]
        assert max(abs(a["probability"] - b["probability"]) for a, b in zip(row["topk"], reference["topk"])) <= 1e-5
        assert max(abs(a - b) for a, b in zip(row["logits"], reference["logits"])) <= 1e-5
        assert row["frames"] == 8 and row["sampling"] == "uniform" and row["model"]["file"] == tiny_onnx.name
