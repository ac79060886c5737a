"""The soak's bookkeeping without a server: error kinds, the schedule, and the summary's counts and memory trend."""

from __future__ import annotations

import pytest

from benchmarks.serve_soak import (
    CYCLE,
    EXPECTED,
    PROTOCOLS,
    Sample,
    Sent,
    classify,
    render,
    role_of,
    schedule,
    summarize,
)


@pytest.mark.parametrize(
    "message, kind",
    [
        (
            "video: frame of 8192x8192 = 67108864 pixels is over the limit of 8847360 (--max-pixels)",
            "limit --max-pixels",
        ),
        ("video: 4194305 bytes is over the limit of 4194304 bytes (--max-video-bytes)", "limit --max-video-bytes"),
        ("video: decoding took over 60 s (--decode-timeout) and was stopped", "limit --decode-timeout"),
        ("video: media time of 36000.0 s is over the limit of 3600 s (--max-duration)", "limit --max-duration"),
        ("Exceeds maximum queue size", "queue full"),
        ("video: not a readable video (Invalid data found when processing input)", "video error"),
        ("empty video (0 bytes)", "video error"),
    ],
)
def test_errors_are_classified_by_the_limit_they_name(message, kind):
    assert classify(message) == kind


def test_every_client_walks_the_whole_cycle_on_both_protocols():
    payloads = {kind: [kind.encode()] for kind in EXPECTED}
    for client in range(4):
        sent = [next_item for _, next_item in zip(range(2 * len(CYCLE)), schedule(client, payloads))]
        assert sorted(kind for kind, _, _ in sent) == sorted(CYCLE * 2)
        assert all(data == kind.encode() for kind, data, _ in sent)
        assert {protocol for _, _, protocol in sent} == set(PROTOCOLS)


def test_summary_counts_outcomes_and_fits_the_memory_trend():
    sent = [
        Sent("good", "http", "ok", 0.1),
        Sent("good", "grpc", "ok", 0.3),
        Sent("empty", "grpc", "video error", 0.05),
    ]
    sent.append(Sent("huge", "http", "unanswered ConnectionResetError", 1.0, "reset"))
    samples = [Sample(60.0 * minute, 500.0 + 10 * minute, 90, 160, 4, True) for minute in range(5)]
    summary = summarize(sent, samples[0], samples[-1], samples)
    assert (summary["sent"], summary["answered"]) == (4, 3)
    assert summary["kinds"]["good"]["outcomes"] == {"ok": 2} and summary["kinds"]["good"]["as_expected"] == 2
    assert summary["kinds"]["huge"]["outcomes"] == {"unanswered ConnectionResetError": 1}
    assert summary["kinds"]["huge"]["p50_ms"] is None  # latency counts answered requests only
    assert summary["rss_mb"] == {
        "start": 500.0,
        "peak": 540.0,
        "end": 540.0,
        "trend_mb_per_min": 10.0,
        "trend_after_warmup_mb_per_min": 10.0,
    }
    assert summary["by_protocol"]["http"] == {"ok": 1, "unanswered ConnectionResetError": 1}


def test_the_warm_up_is_left_out_of_the_second_trend():
    """Memory that fills in the first tenth of the run and then stays flat is no upward trend."""
    samples = [Sample(60.0 * minute, 500.0 if minute == 0 else 800.0, 90, 160, 4, True) for minute in range(11)]
    rss = summarize([Sent("good", "http", "ok", 0.1)], samples[0], samples[-1], samples)["rss_mb"]
    assert rss["trend_mb_per_min"] > 5 and rss["trend_after_warmup_mb_per_min"] == 0.0


@pytest.mark.parametrize(
    "server_exit, line",
    [
        (None, "- server exit: none, the server ran through the whole load"),
        ({"t": 61.5, "code": -9}, "- server exit: 61.5 s into the load, code -9"),
    ],
)
def test_the_rendering_says_whether_the_server_lived(server_exit, line):
    sent = [Sent("good", "http", "ok", 0.1), Sent("empty", "grpc", "video error", 0.05)]
    samples = [Sample(0.0, 500.0, 90, 160, 4, True), Sample(60.0, 510.0, 91, 160, 4, True)]
    summary = summarize(sent, samples[0], samples[-1], samples) | {"server_exit": server_exit}
    text = render(summary)
    assert "| good | 1 | ok 1 | ok |" in text and "- answered 2 / 2;" in text
    assert text.splitlines()[-1] == line
    del summary["server_exit"]
    assert render(summary).splitlines()[-1] == "- server exit: not recorded"


def test_processes_are_named_by_role():
    stub = "/tmp/w/backends/python/triton_python_backend_stub"
    assert (
        role_of([stub, "/tmp/w/models/stam_motion_video/1/model.py", "prefix", "4194304"]) == "stub stam_motion_video"
    )
    assert (
        role_of(["/site-packages/pytriton/tritonserver/bin/tritonserver", "--model-repository=/tmp/w"])
        == "tritonserver"
    )
