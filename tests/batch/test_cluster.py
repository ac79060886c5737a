"""stam-batch through a real two-node Ray cluster on 127.0.0.1 (head + one node, 1 CPU each, token
authentication on): results equal runtime.infer's, too many actors refused in one line, a lost node
ends the job (exit 3) and the rerun leaves every input exactly once; the causes of a cluster that
cannot be joined, each in one line. The cluster's processes are killed by their sessions at the end.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray.data")

from batch import cluster as joining  # noqa: E402
from batch.cli import main  # noqa: E402
from benchmarks.local_cluster import Cluster  # noqa: E402
from tests.batch.conftest import copy_videos  # noqa: E402
from tests.batch.processes import ROOT, kill_session, start_cli, wait_for_parts  # noqa: E402
from tests.batch.reference import assert_same_predictions, infer_json, read_results  # noqa: E402

pytestmark = pytest.mark.ray
VIDEOS = 12
JOB_TIMEOUT_S = 420  # a hang fails the test instead of stalling the suite


@pytest.fixture(scope="module")
def ray_cluster():
    """Head + one node (1 CPU each), token authentication on; every process killed at the end."""
    started = Cluster(cpus_per_node=1)
    try:
        started.start_node(head=True)
        started.start_node(head=False)
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def twelve_videos(corpus, tmp_path_factory) -> Path:
    return copy_videos(corpus, tmp_path_factory.mktemp("copies"), VIDEOS)


def run_cli(ray_cluster: Cluster, *args: str, timeout: float = JOB_TIMEOUT_S) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "batch.cli", *args, "--address", ray_cluster.address]
    return subprocess.run(command, cwd=ROOT, env=ray_cluster.env, capture_output=True, text=True, timeout=timeout)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def test_results_through_the_cluster_equal_runtime_infer(ray_cluster, tiny_onnx, corpus, tmp_path):
    out = tmp_path / "results"
    result = run_cli(ray_cluster, str(tiny_onnx), str(corpus["videos"]), "--out", str(out), "--logits", "--topk", "3")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "videos to classify on 2 nodes (" in result.stderr  # both nodes seen
    rows = {row["path"]: row for row in read_results(out)}
    expected = infer_json(tiny_onnx, sorted(Path(p) for p in rows), expect_failures=False)
    assert len(rows) == 4
    for path, row in rows.items():
        assert_same_predictions(row, expected[path])


def test_too_many_actors_are_refused_in_one_line_before_any_work(ray_cluster, tiny_onnx, corpus, tmp_path):
    """Two actors on two 1-CPU nodes: one on each would leave no whole CPU to decode, so the job is
    refused (the bound on the wait is the point: it once waited forever)."""
    out = tmp_path / "results"
    result = run_cli(ray_cluster, str(tiny_onnx), str(corpus["videos"]), "--out", str(out), "--actors", "2", timeout=90)
    assert result.returncode == 2, result.stderr[-3000:]
    (line,) = error_lines(result.stderr)
    assert line.startswith("error: 2 model actor(s) of 0.1 CPU, the smallest default share each, plus 1 CPU")
    assert "the cluster at " in line and ", 2 nodes (" in line and "1 CPU, 0 GPU" in line
    assert line.endswith("change --actors or --cpus-per-actor, or add nodes with more CPUs")
    assert not list(out.glob("part-*"))


def test_an_explicit_share_that_cannot_fit_is_refused_not_changed(ray_cluster, tiny_onnx, corpus, tmp_path):
    args = [str(tiny_onnx), str(corpus["videos"]), "--out", str(tmp_path / "out"), "--cpus-per-actor", "1.5"]
    result = run_cli(ray_cluster, *args, timeout=90)
    assert result.returncode == 2
    (line,) = error_lines(result.stderr)
    assert "1 model actor(s) of 1.5 CPU each" in line and "the model actors do not fit" in line


def test_without_the_token_the_cause_and_the_fix_are_one_line(ray_cluster, tiny_onnx, corpus, tmp_path, monkeypatch):
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ray/auth_token either
    with pytest.raises(joining.ClusterError) as refused:
        joining.probe(ray_cluster.address)
    assert str(refused.value).startswith(
        f"the Ray cluster at {ray_cluster.address} requires an authentication token and none is set here: "
        "set RAY_AUTH_TOKEN"
    )
    assert "RAY_AUTH_TOKEN_PATH" in str(refused.value) and "RAY_AUTH_MODE=token" in str(refused.value)
    monkeypatch.setenv("RAY_AUTH_TOKEN", "not-the-token")
    with pytest.raises(joining.ClusterError, match="refuses the token from RAY_AUTH_TOKEN"):
        joining.probe(ray_cluster.address)


def test_the_command_without_the_token_exits_2_with_that_line(ray_cluster, tiny_onnx, corpus, tmp_path):
    env = {k: v for k, v in ray_cluster.env.items() if not k.startswith("RAY_AUTH")} | {"HOME": str(tmp_path)}
    command = [sys.executable, "-m", "batch.cli", str(tiny_onnx), str(corpus["videos"]), "--out", str(tmp_path / "o")]
    result = subprocess.run(
        [*command, "--address", ray_cluster.address], cwd=ROOT, env=env, capture_output=True, text=True, timeout=90
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "requires an authentication token" in result.stderr


def test_versions_that_differ_are_named_before_ray_init(ray_cluster, monkeypatch):
    import ray

    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(ray_cluster.token))
    joining.probe(ray_cluster.address)  # the same versions: quiet
    theirs = ray.__version__
    monkeypatch.setattr(ray, "__version__", "2.59.0")
    with pytest.raises(joining.ClusterError) as refused:
        joining.probe(ray_cluster.address)
    python = ".".join(map(str, sys.version_info[:3]))
    assert str(refused.value) == (
        f"the Ray cluster at {ray_cluster.address} runs Ray {theirs} on Python {python}, this machine Ray 2.59.0 "
        f"on Python {python}: the driver must match the cluster (pip install ray=={theirs} on Python {python})"
    )


def test_an_address_nobody_answers_is_one_line(capsys, tiny_onnx, corpus, tmp_path):
    from benchmarks.local_cluster import free_port_block

    address = f"127.0.0.1:{free_port_block(1)}"
    code = main([str(tiny_onnx), str(corpus["videos"]), "--out", str(tmp_path / "o"), "--address", address])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: cannot reach a Ray cluster at {address} (") and "ray start --head" in err


def test_a_node_lost_mid_job_stops_it_and_the_rerun_has_every_input_once(
    ray_cluster, tiny_onnx, twelve_videos, tmp_path
):
    """Last in the module: the second node is killed (its processes, by their session) once a part is
    written; what is left cannot run on the head alone (model + decode need 2 CPUs), so the watchdog
    ends the job (or Ray finishes it first); a new node joins and the rerun completes, exactly once."""
    out = tmp_path / "results"
    args = [str(tiny_onnx), str(twelve_videos), "--out", str(out), "--batch-size", "1", "--rows-per-file", "1"]
    args += ["--address", ray_cluster.address, "--stall-timeout", "45"]
    process = start_cli(*args, log=tmp_path / "killed.log", env=ray_cluster.env)
    try:
        wait_for_parts(out, process)
        ray_cluster.kill_node(ray_cluster.nodes[1])
        code = process.wait(timeout=JOB_TIMEOUT_S)
    finally:
        kill_session(process.pid)
    log = (tmp_path / "killed.log").read_text()
    assert code in (0, 3), log[-3000:]
    if code == 3:
        (line,) = error_lines(log)
        assert "rerun the same command to resume" in line
    before = {p.name: p.read_bytes() for p in out.glob("part-*.parquet")}

    ray_cluster.start_node(head=False)
    result = run_cli(ray_cluster, *args[:-4])
    assert result.returncode == 0, result.stderr[-3000:]
    paths = [row["path"] for row in read_results(out)]
    assert sorted(paths) == sorted(str(p) for p in twelve_videos.iterdir())  # each input once, none twice
    assert {name: (out / name).read_bytes() for name in before} == before  # finished parts untouched
