"""stam-batch on object storage: a local S3 endpoint (moto's server on 127.0.0.1) reached the way a user
reaches one, through AWS_ENDPOINT_URL_S3 and the AWS_* credentials. Listing a prefix, a manifest with
relative entries, reading videos, parts written whole into a bucket, resuming after a kill, and a
bucket that does not exist or refuses access as one line, exit 2.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray.data")
moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed (the [test] extra)")
from pyarrow import fs  # noqa: E402

from batch.cli import main  # noqa: E402
from batch.job import JobConfig, run_job  # noqa: E402
from tests.batch.processes import kill_session, start_cli  # noqa: E402
from tests.batch.reference import assert_same_predictions, infer_json  # noqa: E402

pytestmark = pytest.mark.ray
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
KILLED_VIDEOS = 24


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def s3(corpus):
    """A moto S3 server on the loopback, the environment pointing at it (before Ray starts, so its
    workers inherit it), and bucket `videos` holding the corpus's good videos under in/ plus a manifest."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {**CREDENTIALS, "AWS_ENDPOINT_URL_S3": endpoint, "AWS_EC2_METADATA_DISABLED": "true"}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    storage = fs.S3FileSystem(endpoint_override=endpoint, scheme="http", allow_bucket_creation=True, **keys())
    for bucket in ("videos", "results"):
        storage.create_dir(bucket)
    for name in ("a", "b", "c", "d"):
        with storage.open_output_stream(f"videos/in/{name}{corpus[name].suffix}") as sink:
            sink.write(corpus[name].read_bytes())
    with storage.open_output_stream("videos/list.txt") as sink:
        sink.write(b"in/a.mp4\nin/gone.mp4\n")  # relative to the manifest's folder
    try:
        yield {"endpoint": endpoint, "fs": storage, "env": {**os.environ}}
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def keys() -> dict[str, str]:
    return {"access_key": CREDENTIALS["AWS_ACCESS_KEY_ID"], "secret_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}


def parts(storage: fs.S3FileSystem, prefix: str) -> list[str]:
    infos = storage.get_file_info(fs.FileSelector(prefix, allow_not_found=True))
    return sorted(info.base_name for info in infos if info.type == fs.FileType.File)


def read_rows(storage: fs.S3FileSystem, prefix: str) -> list[dict]:
    import pyarrow.dataset as ds

    return ds.dataset(prefix, filesystem=storage, format="parquet").to_table().to_pylist()


def test_a_prefix_and_a_manifest_on_s3_classified_into_a_bucket(s3, request, tiny_onnx, corpus):
    request.getfixturevalue("local_ray")  # after the environment points at the endpoint
    summary = run_job(
        JobConfig(
            model=str(tiny_onnx),
            inputs=["s3://videos/in/", "s3://videos/list.txt"],
            out="s3://results/run1",
            topk=3,
            with_logits=True,
            batch_size=2,
            rows_per_file=2,
        )
    )
    rows = {row["path"]: row for row in read_rows(s3["fs"], "results/run1")}
    assert sorted(rows) == sorted(
        ["s3://videos/in/a.mp4", "s3://videos/in/b.mkv", "s3://videos/in/c.mp4", "s3://videos/in/d.mp4"]
        + ["s3://videos/in/gone.mp4"]
    )
    assert summary.videos == 5 and summary.failures == 1
    assert rows["s3://videos/in/gone.mp4"]["error"] == "s3://videos/in/gone.mp4: no such file"
    expected = infer_json(tiny_onnx, [corpus[name] for name in ("a", "b", "c", "d")], expect_failures=False)
    for name in ("a", "b", "c", "d"):
        assert_same_predictions(rows[f"s3://videos/in/{corpus[name].name}"], expected[str(corpus[name])])
    names = parts(s3["fs"], "results/run1")
    assert "_job.json" in names and not [n for n in names if n.endswith(".tmp")] and len(names) == 1 + summary.parts


def test_killed_on_s3_and_rerun_every_input_is_there_exactly_once(s3, tiny_onnx, corpus, tmp_path):
    """Many copies of one video on S3, one per part; the command is killed (by its session) once a part
    is in the bucket, then rerun: every input once, the parts written before untouched."""
    for i in range(KILLED_VIDEOS):
        s3["fs"].copy_file("videos/in/a.mp4", f"videos/many/v{i:02d}.mp4")
    args = [str(tiny_onnx), "s3://videos/many/", "--out", "s3://results/killed", "--batch-size", "1"]
    args += ["--rows-per-file", "1", "--num-cpus", "2"]
    process = start_cli(*args, log=tmp_path / "killed.log", env=s3["env"])
    try:
        deadline = time.monotonic() + 240
        while not [n for n in parts(s3["fs"], "results/killed") if n.startswith("part-")]:
            assert process.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no part reached the bucket"
            time.sleep(0.05)
        assert process.poll() is None, "stam-batch ended before the kill"
    finally:
        kill_session(process.pid)
        process.wait()
    before = {n: s3["fs"].open_input_file(f"results/killed/{n}").read() for n in parts(s3["fs"], "results/killed")}
    before = {n: data for n, data in before.items() if n.startswith("part-")}
    assert 0 < len(before) < KILLED_VIDEOS

    rerun = subprocess.run(
        [sys.executable, "-m", "batch.cli", *args], cwd=Path(__file__).resolve().parents[2], env=s3["env"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    paths = [row["path"] for row in read_rows(s3["fs"], "results/killed")]
    assert sorted(paths) == [f"s3://videos/many/v{i:02d}.mp4" for i in range(KILLED_VIDEOS)]
    assert all(s3["fs"].open_input_file(f"results/killed/{n}").read() == data for n, data in before.items())


@pytest.mark.parametrize(
    "inputs, out, message",
    [
        (["s3://nobucket/in/"], "OUT", "error: s3://nobucket/in/: the bucket 'nobucket' does not exist\n"),
        (["s3://videos/in/"], "s3://nobucket/run", "error: s3://nobucket/run: cannot use the output folder ("),
    ],
)
def test_a_bucket_that_does_not_exist_is_one_line(s3, tiny_onnx, tmp_path, capsys, inputs, out, message):
    out = str(tmp_path / "out") if out == "OUT" else out
    code = main([str(tiny_onnx), *inputs, "--out", out])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(message) and err.count("\n") == 1, err


@pytest.fixture(scope="module")
def refusing_endpoint(tmp_path_factory):
    """A second moto server that checks credentials (and knows none): every request is refused."""
    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"}
    log = open(tmp_path_factory.mktemp("moto") / "server.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env=env, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "moto did not start"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.kill()
        server.wait()
        log.close()


def test_storage_that_refuses_access_is_one_line(
    s3, refusing_endpoint, tiny_onnx, corpus, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", refusing_endpoint)
    code = main([str(tiny_onnx), "s3://videos/in/", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert (
        err.startswith("error: s3://videos/in/: the storage refused the request (") and "403" in err or "ACCESS" in err
    )
    code = main([str(tiny_onnx), str(corpus["a"]), "--out", "s3://results/denied"])
    err = capsys.readouterr().err
    assert (
        code == 2
        and err.startswith("error: s3://results/denied: cannot use the output folder (")
        and err.count("\n") == 1
    )
