"""`stam-serve` for real: one Triton server per module on free local ports, queried over HTTP and gRPC.

Results must equal `python -m runtime.infer --json` (same top-1, probabilities within 1e-5); bad
requests get a one-line Triton error while concurrent good ones are answered correctly; SIGTERM
finishes in-flight requests and leaves no process behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytriton", reason="the [serve] extra is not installed")
import tritonclient.grpc as grpcclient  # noqa: E402
import tritonclient.http as httpclient  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

from benchmarks.serve_soak import process_tree  # noqa: E402
from runtime import open_model  # noqa: E402
from runtime.clips import load_clip  # noqa: E402
from tests.serve.conftest import free_ports  # noqa: E402

pytestmark = pytest.mark.serve

NAME = "motion"
VIDEO = "motion_video"
FRAMES = 8  # the motion model's trained T
QUEUE_DELAY_US = 20000  # long enough that concurrent test requests share batches
MAX_FRAMES = 16  # requests just past it stay small (a container's /dev/shm is 64 MiB)


@dataclass
class Server:
    process: subprocess.Popen
    http_port: int
    grpc_port: int
    metrics_port: int
    log: Path
    descendants: list[int]
    clients: list = field(default_factory=list)

    def http(self) -> httpclient.InferenceServerClient:
        self.clients.append(httpclient.InferenceServerClient(f"127.0.0.1:{self.http_port}", network_timeout=120))
        return self.clients[-1]

    def grpc(self) -> grpcclient.InferenceServerClient:
        self.clients.append(grpcclient.InferenceServerClient(f"127.0.0.1:{self.grpc_port}"))
        return self.clients[-1]

    def close_clients(self) -> None:
        """Triton's shutdown waits for open HTTP connections (up to its exit timeout): close ours."""
        for client in self.clients:
            client.close()
        self.clients.clear()

    def get(self, port: int, path: str) -> tuple[int, str]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()


def alive(pid: int) -> bool:
    """A zombie (exited, not yet reaped by an init that does not reap) counts as gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_ready(server: Server, timeout_s: float = 150) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert server.process.poll() is None, f"stam-serve exited early:\n{server.log.read_text()[-3000:]}"
        try:
            if server.get(server.http_port, "/v2/health/ready")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"stam-serve not ready after {timeout_s} s:\n{server.log.read_text()[-3000:]}")


def stop(server: Server) -> int:
    server.close_clients()
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
    return server.process.wait(timeout=60)


@pytest.fixture(scope="module")
def started(motion_onnx_fp32, tmp_path_factory) -> Server:
    """stam-serve launched (not yet ready): the model loads while `expected` runs."""
    http_port, grpc_port, metrics_port = free_ports(3)
    log = tmp_path_factory.mktemp("serve") / "stam-serve.log"
    command = [
        sys.executable,
        "-m",
        "serve.cli",
        str(motion_onnx_fp32),
        "--name",
        NAME,
        "--http-port",
        str(http_port),
        "--grpc-port",
        str(grpc_port),
        "--metrics-port",
        str(metrics_port),
        "--max-batch",
        "8",
        "--max-queue-delay-us",
        str(QUEUE_DELAY_US),
        "--decode-workers",
        "2",
        "--max-frames",
        str(MAX_FRAMES),
        "--verbose",
    ]
    with open(log, "w") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    running = Server(process, http_port, grpc_port, metrics_port, log, [])
    try:
        yield running
    finally:
        stop(running)
        left = [pid for pid in running.descendants if alive(pid)]
        for pid in left:  # never leave a server behind, even when the test fails
            os.kill(pid, signal.SIGKILL)
        assert not left, f"processes left behind: {left}"


@pytest.fixture(scope="module")
def server(started, expected) -> Server:
    wait_ready(started)
    started.descendants = process_tree(started.process.pid)[1:]
    return started


@pytest.fixture(scope="module")
def expected(motion_onnx_fp32, serve_videos) -> dict[str, dict[str, float]]:
    """`runtime.infer --json`: every class's probability per video."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "runtime.infer",
            str(motion_onnx_fp32),
            *map(str, serve_videos),
            "--json",
            "--topk",
            "9",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    return {row["path"]: {p["label"]: p["probability"] for p in row["topk"]} for row in rows}


def video_inputs(module, data: bytes, frames: int | None = None, topk: int | None = None) -> list:
    inputs = [module.InferInput("video", [1, 1], "BYTES")]
    inputs[0].set_data_from_numpy(np.array([[data]], dtype=np.object_))
    for name, value in (("frames", frames), ("topk", topk)):
        if value is not None:
            extra = module.InferInput(name, [1, 1], "INT32")
            extra.set_data_from_numpy(np.array([[value]], dtype=np.int32))
            inputs.append(extra)
    return inputs


def classify(client, module, data: bytes, **kwargs) -> dict[str, float]:
    result = client.infer(VIDEO, video_inputs(module, data, **kwargs))
    labels = [label.decode() for label in result.as_numpy("labels")[0]]
    return dict(zip(labels, result.as_numpy("probabilities")[0].tolist()))


def infer_tensors(client, frames: np.ndarray, datatype: str = "FP32") -> np.ndarray:
    tensor = httpclient.InferInput("frames", list(frames.shape), datatype)
    tensor.set_data_from_numpy(frames)
    return client.infer(NAME, [tensor]).as_numpy("logits")


def check_same(served: dict[str, float], reference: dict[str, float]) -> None:
    assert max(served, key=served.get) == max(reference, key=reference.get)
    for label, probability in served.items():
        assert abs(probability - reference[label]) <= 1e-5, (label, probability, reference[label])


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_videos_match_runtime_infer(server, serve_videos, expected, protocol):
    client, module = (server.http(), httpclient) if protocol == "http" else (server.grpc(), grpcclient)
    for path in serve_videos:
        check_same(classify(client, module, path.read_bytes(), topk=9), expected[str(path)])


def test_topk_and_frames_are_honoured(server, serve_videos, motion_onnx_fp32):
    client = server.http()
    top3 = classify(client, httpclient, serve_videos[0].read_bytes(), topk=3)
    assert len(top3) == 3
    with open_model(motion_onnx_fp32) as model:
        pixels, _ = load_clip(serve_videos[0], 4, "uniform")
        reference = model.run(pixels[None])[0]
    served = classify(client, httpclient, serve_videos[0].read_bytes(), frames=4, topk=1)
    assert list(served) == [model.labels[int(reference.argmax())]]


def test_tensor_endpoint_equals_the_model(server, serve_videos, motion_onnx_fp32):
    clips = np.stack([load_clip(path, FRAMES, "uniform")[0] for path in serve_videos[:3]])
    with open_model(motion_onnx_fp32) as model:
        reference = model.run(clips)
    logits = infer_tensors(server.http(), clips)
    np.testing.assert_allclose(logits, reference, atol=1e-4, rtol=0)


BAD_VIDEOS = {
    "empty": (b"", {}, "empty video (0 bytes)"),
    "corrupt": (np.random.default_rng(0).bytes(5000), {}, "video: not a readable video"),
    "no frames wanted": (None, {"frames": 0}, "frames=0 is outside the model's range 1..16"),
    "too many frames": (None, {"frames": 17}, "frames=17 is outside the model's range 1..16"),
}
BAD_TENSORS = {
    "zero frames": (np.zeros((1, 0, 3, 224, 224), np.float32), "FP32", "frames=0 is outside the model's range 1..16"),
    "too many frames": (
        np.zeros((1, 17, 3, 224, 224), np.float32),
        "FP32",
        "frames=17 is outside the model's range 1..16",
    ),
    "wrong dtype": (
        np.zeros((1, 8, 3, 224, 224), np.int32),
        "INT32",
        "data-type is 'INT32', but model 'motion' expects 'FP32'",
    ),
    "wrong shape": (np.zeros((1, 8, 3, 224, 225), np.float32), "FP32", "unexpected shape for input 'frames'"),
}


def test_bad_requests_fail_alone_while_good_ones_are_answered(server, serve_videos, expected):
    good_video = serve_videos[0]

    def bad_video(case: str) -> str:
        data, kwargs, _ = BAD_VIDEOS[case]
        with pytest.raises(InferenceServerException) as caught:
            classify(server.http(), httpclient, good_video.read_bytes() if data is None else data, **kwargs)
        return caught.value.message()

    def bad_tensor(case: str) -> str:
        frames, datatype, _ = BAD_TENSORS[case]
        with pytest.raises(InferenceServerException) as caught:
            infer_tensors(server.http(), frames, datatype)
        return caught.value.message()

    def good(_: int) -> dict[str, float]:
        return classify(server.grpc(), grpcclient, good_video.read_bytes(), topk=9)

    with ThreadPoolExecutor(max_workers=12) as pool:
        goods = [pool.submit(good, i) for i in range(6)]
        video_errors = {case: pool.submit(bad_video, case) for case in BAD_VIDEOS}
        tensor_errors = {case: pool.submit(bad_tensor, case) for case in BAD_TENSORS}
        goods += [pool.submit(good, i) for i in range(6)]
        for case, future in [*video_errors.items(), *tensor_errors.items()]:
            message = future.result()
            wanted = BAD_VIDEOS[case][-1] if future in video_errors.values() else BAD_TENSORS[case][-1]
            assert wanted in message and "\n" not in message and "Traceback" not in message, (case, message)
        for future in goods:
            check_same(future.result(), expected[str(good_video)])
    assert server.process.poll() is None


def test_health_metrics_and_batching(server, serve_videos):
    assert server.get(server.http_port, "/v2/health/live")[0] == 200
    with ThreadPoolExecutor(max_workers=len(serve_videos)) as pool:  # concurrent videos, to be batched
        list(pool.map(lambda path: classify(server.grpc(), grpcclient, path.read_bytes()), serve_videos))
    status, text = server.get(server.metrics_port, "/metrics")
    assert status == 200

    def metric(name: str, model: str) -> float:
        """The sum over the metric's series for `model` (failures carry a `reason` label too)."""
        rows = [line for line in text.splitlines() if line.startswith(name + "{") and f'model="{model}"' in line]
        return sum(float(line.rsplit(" ", 1)[1]) for line in rows)

    requests, executions = metric("nv_inference_count", VIDEO), metric("nv_inference_exec_count", VIDEO)
    assert metric("nv_inference_request_success", VIDEO) >= len(serve_videos) and requests >= len(serve_videos)
    assert executions < requests, "concurrent video requests were never batched together"


def test_busy_port_is_refused_in_one_line(server, motion_onnx_fp32):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "serve.cli",
            str(motion_onnx_fp32),
            "--http-port",
            str(server.http_port),
            "--grpc-port",
            "1",
            "--metrics-port",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == f"error: cannot listen on 127.0.0.1:{server.http_port} (Address already in use)\n"


def test_sigterm_finishes_in_flight_requests_and_leaves_nothing(server, serve_videos, expected):
    """Last in this module: it stops the shared server.

    Requests in flight are those whose answers had not arrived when the signal was sent (counted then,
    not timed); whether shutdown waited for its exit timeout is read from Triton's own log, not from
    a clock on a loaded machine.
    """

    def one(path: Path) -> dict[str, float]:
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
        try:
            return classify(client, grpcclient, path.read_bytes(), topk=9)
        finally:
            client.close()

    paths = [*serve_videos, *serve_videos]  # 18 requests, all sent at once: more than two batches of 8
    server.close_clients()  # idle ones: Triton's shutdown waits for open HTTP connections
    with ThreadPoolExecutor(max_workers=len(paths)) as pool:
        futures = [pool.submit(one, path) for path in paths]
        wait(futures, return_when=FIRST_COMPLETED)  # a batch is done: the others are queued or running
        unanswered = sum(not future.done() for future in futures)
        server.process.send_signal(signal.SIGTERM)
        answers = [future.result() for future in futures]
    assert unanswered > 0, "every request was answered before SIGTERM: nothing was in flight"
    for path, result in zip(paths, answers):
        check_same(result, expected[str(path)])
    assert server.process.wait(timeout=120) == 0
    log = server.log.read_text()
    assert "Waiting for in-flight requests to complete" in log  # Triton drained on the signal...
    assert "Exit timeout expired" not in log, "shutdown waited for its exit timeout"  # ...and did not time out
    assert not [pid for pid in server.descendants if alive(pid)]
