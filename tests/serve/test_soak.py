"""`python -m benchmarks.serve --soak`: one minute of good and hostile videos over HTTP and gRPC.

Every request is answered, each payload kind ends the way it must (a result, a video error, or the
limit it is over), health stays ready, and the server ends with the descriptors, threads and memory
it started with: a leak grows with the hundreds of requests sent, the slack here does not. (Whether a
refused decoder is released at once is checked deterministically, with the garbage collector off, in
tests/runtime/test_release.py and tests/serve/test_release.py: here the collector may or may not run.)
"""

from __future__ import annotations

import json
import socket

import pytest

pytest.importorskip("pytriton", reason="the [serve] extra is not installed")

from benchmarks import serve  # noqa: E402
from benchmarks.serve_soak import EXPECTED  # noqa: E402

pytestmark = [pytest.mark.serve, pytest.mark.soak]

HUGE_SIDE = 2048  # over MAX_PIXELS below: cheap to make, and a decoder at this size holds tens of MB
MAX_PIXELS = 500_000
MINUTES = "1"
# What the server's processes may hold more at the end than at the start: the allocators' arenas and
# Triton's pools fill during the first minute (about 60-140 MB on 2 cores, Zen 3).
MEMORY_SLACK_MB = 384
POOL = 32  # descriptors or threads Triton's pools may hold more at the end than at the start, whatever the load


def consecutive_free_ports(count: int = 3, first: int = 20000, last: int = 60000) -> int:
    """The first of `count` consecutive ports that all bind on 127.0.0.1 right now."""
    for base in range(first, last, count):
        sockets = [socket.socket() for _ in range(count)]
        try:
            for offset, sock in enumerate(sockets):
                sock.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no free ports")


@pytest.fixture(scope="module")
def soak(motion_onnx_fp32, serve_videos, tmp_path_factory) -> tuple[int, dict]:
    result = tmp_path_factory.mktemp("soak") / "soak.json"
    code = serve.main(
        [
            "--soak",
            MINUTES,
            "--model",
            str(motion_onnx_fp32),
            "--videos",
            str(serve_videos[0].parent),
            "--huge-side",
            str(HUGE_SIDE),
            "--max-pixels",
            str(MAX_PIXELS),
            "--max-video-bytes",
            str(1 << 20),
            "--base-port",
            str(consecutive_free_ports()),
            "--json",
            str(result),
        ]
    )
    assert result.is_file(), f"the soak exited with {code} before writing its results (its error is above)"
    return code, json.loads(result.read_text())


def test_every_request_is_answered_and_health_stays_ready(soak):
    code, document = soak
    summary = document["summary"]
    assert code == 0 and summary["answered"] == summary["sent"] > 0, summary["by_protocol"]
    assert all(summary["by_protocol"][protocol] for protocol in ("http", "grpc"))
    assert summary["not_ready_samples"] == 0 and summary["server_exit"] is None
    assert document["machine"]["cpu"] and document["command"].startswith(f"python -m benchmarks.serve --soak {MINUTES}")


@pytest.mark.parametrize("kind", ["good", "truncated", "noise", "empty", "oversized"])
def test_each_payload_ends_as_it_must(soak, kind):
    row = soak[1]["summary"]["kinds"][kind]
    assert row["sent"] > 0 and row["outcomes"] == {EXPECTED[kind]: row["sent"]}, row


@pytest.mark.parametrize("kind", ["huge", "switch"])
def test_frames_over_the_pixel_limit_are_refused(soak, kind):
    row = soak[1]["summary"]["kinds"][kind]
    assert row["sent"] > 0 and row["outcomes"] == {"limit --max-pixels": row["sent"]}, row


def test_no_descriptor_or_thread_leak(soak):
    """A leak grows with the requests; Triton's thread pools and gRPC streams come and go with the load
    by a few dozen. The run sends hundreds of requests, so a leak of one per request is far past POOL."""
    summary = soak[1]["summary"]
    assert summary["sent"] >= 8 * POOL, summary["sent"]
    for resource in ("fds", "threads"):
        assert summary[resource]["end"] <= summary[resource]["start"] + POOL, (resource, summary[resource])
    assert summary["processes"]["end"] == summary["processes"]["start"]


def test_no_memory_growth(soak):
    """The server's processes end the minute, with the clients idle, within the warm-up slack of their start."""
    summary = soak[1]["summary"]
    rss = summary["rss_mb"]
    assert rss["end"] <= rss["start"] + MEMORY_SLACK_MB, (rss, summary["rss_mb_by_process"])
    assert summary["kinds"]["switch"]["sent"] >= 16, summary["kinds"]["switch"]
