"""runtime.live and stam-live against real live sources on the loopback: MPEG-TS over TCP and live HLS over HTTP
served to the reader, RTSP and MPEG-TS over TCP pushed to it while it listens; each a subprocess that remuxes a
generated video in real time."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import ExitStack

import av
import pytest

from benchmarks.live_sources import PUSHED, free_port, live_source
from benchmarks.motion.generate import plan_long_video, write_long_video
from runtime.errors import StamError
from runtime.live import EventRecord, LiveOptions, LiveRunner, Source, WindowRecord, parse_source, read_sources
from runtime.live.report import prometheus_text, status_table
from runtime.split import open_window_model
from runtime.timeline import Timeline
from runtime.windows import TimelineOptions

WINDOWS = TimelineOptions.resolve(4, stride=2, fps=2.0, topk=1)
NEEDS_RTSP = pytest.mark.skipif("rtsp" not in av.formats_available, reason="PyAV's FFmpeg has no RTSP (de)muxer")


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """About 10 s of the motion generator's long mode: three shots at 15 fps, 160x120."""
    path = tmp_path_factory.mktemp("live") / "motion.mp4"
    write_long_video(plan_long_video(3, 7, width=160, height=120, fps=15), path)
    return path


@pytest.fixture(scope="module")
def pair(tiny_split):
    with open_window_model(tiny_split[0]) as model:
        yield model


@pytest.fixture(scope="module")
def timeline(pair, video):
    """start -> top-1 label of `python -m runtime.infer --timeline` on the same file."""
    return {round(r.start, 3): r.top1.label for r in Timeline(pair, str(video), WINDOWS)}


def run_live(pair, sources, until=None, **options) -> tuple[list, LiveRunner]:
    """Records of a run over `sources` (Source, or text to parse); `until(records, runner)` may stop it early."""
    sources = [s if isinstance(s, Source) else parse_source(s) for s in sources]
    runner = LiveRunner(pair, sources, LiveOptions(WINDOWS, **options))
    records = []
    for record in runner:
        records.append(record)
        if until is not None and until(records, runner):
            runner.stop()
    return records, runner


def windows_of(records, source=None) -> list[WindowRecord]:
    return [r for r in records if isinstance(r, WindowRecord) and source in (None, r.source)]


def events_of(records, source=None) -> list[str]:
    return [r.event for r in records if isinstance(r, EventRecord) and source in (None, r.source)]


def agreement(windows: list[WindowRecord], timeline: dict[float, str]) -> float:
    matched = [w for w in windows if round(w.start, 3) in timeline]
    return sum(timeline[round(w.start, 3)] == w.top1.label for w in matched) / max(1, len(matched))


def test_a_file_read_at_full_speed_gives_the_timeline(pair, video, timeline):
    records, runner = run_live(pair, [str(video)])
    windows = windows_of(records)
    assert {round(w.start, 3): w.top1.label for w in windows} == {
        start: label for start, label in timeline.items() if start + 2.0 <= windows[-1].end
    }
    assert events_of(records) == ["connected", "ended"]
    assert runner.hub.counts[0].dropped == 0


def test_a_whole_model_runs_every_window_whole(mean_rgb_onnx, video):
    """A whole-model artifact (here the hand-built mean-colour graph) classifies the same windows."""
    from runtime.live.cli import main

    with open_window_model(mean_rgb_onnx) as whole:
        records, _ = run_live(whole, [str(video)])
    windows = windows_of(records)
    assert [w.start for w in windows] == [k / 2 for k in range(0, len(windows) * 2, 2)]
    assert main([str(mean_rgb_onnx), str(video), "--window", "4", "--backend", "onnxruntime", "--json"]) == 0


def source_of(kind: str, name: str, url: str) -> Source:
    """The reader's side of a benchmarks.live_sources source: a pushed one is listened for at its URL."""
    return parse_source(f"{name}={url}", listen=kind in PUSHED)


@pytest.mark.parametrize(
    "steady, dying",
    [
        pytest.param(("ts", "hls"), "ts", id="served"),
        pytest.param(("rtsp", "ts-push"), "rtsp", id="pushed", marks=NEEDS_RTSP),
    ],
)
def test_sources_at_once_one_killed_and_restarted(pair, video, timeline, steady, dying):
    """Three sources in real time: MPEG-TS over TCP twice and live HLS, served to the reader; or RTSP twice
    and MPEG-TS over TCP, pushed to it while it listens. The third dies and comes back on its address."""
    port = free_port()
    with ExitStack() as served:
        sources = [source_of(kind, kind, served.enter_context(live_source(kind, video))[0]) for kind in steady]
        with live_source(dying, video, port=port, loops=3) as (dying_url, _):
            sources.append(source_of(dying, "dying", dying_url))
            seen = threading.Event()

            def until(records, runner):
                if not seen.is_set() and len(windows_of(records, "dying")) >= 3:
                    seen.set()
                for index, name in enumerate(steady):  # drops while the source played the video once
                    if name not in drops and "lost" in events_of(records, name):
                        drops[name] = runner.hub.counts[index].dropped
                ended = all("lost" in events_of(records, name) for name in steady)
                return ended and events_of(records, "dying")[-2:] == ["reconnected", "lost"]

            holder: dict = {}
            drops: dict = {}
            thread = threading.Thread(
                target=lambda: holder.update(result=run_live(pair, sources, until, stall_timeout=5.0))
            )
            thread.start()
            assert seen.wait(60)
        with live_source(dying, video, port=port):  # the camera restarts on the same address
            thread.join(90)
    records, runner = holder["result"]
    assert events_of(records, "dying")[:3] == ["connected", "lost", "reconnected"]
    dying_windows = windows_of(records, "dying")
    lost = next(r for r in records if isinstance(r, EventRecord) and r.event == "lost" and r.source == "dying")
    back = next(r for r in records if isinstance(r, EventRecord) and r.event == "reconnected")
    assert back.time >= lost.time  # the clock continues across the gap
    assert not [w for w in dying_windows if w.start < back.time < w.end]  # no window spans it
    assert [w for w in dying_windows if w.start >= back.time]
    for name in steady:
        windows = windows_of(records, name)
        assert len(windows) >= len(timeline) - 2, name  # the others did not wait
        assert agreement(windows, timeline) >= 0.9, name
        assert drops[name] == 0, name


@NEEDS_RTSP
def test_a_listener_nobody_pushes_to_is_lost_then_connected(pair, video):
    """A listening source waits at most the stall timeout for its sender, says so once, and listens again."""
    port = free_port()
    url = f"rtsp://127.0.0.1:{port}/live"
    with ExitStack() as sender:

        def until(records, _):
            if events_of(records) == ["lost"]:  # only now does a sender start
                sender.enter_context(live_source("rtsp", video, port=port))
            return len(windows_of(records)) >= 1

        records, _ = run_live(pair, [parse_source(url, listen=True)], until, stall_timeout=1.0)
    assert events_of(records) == ["lost", "connected"]
    lost = next(r for r in records if isinstance(r, EventRecord))
    assert lost.reason == "no sender for 1 s (listening)"


def test_a_stalled_source_is_lost(pair, video):
    with live_source("ts", video, stall_after=3.0) as (url, _):
        records, _ = run_live(pair, [url], lambda records, _: "lost" in events_of(records), stall_timeout=1.5)
    lost = [r for r in records if isinstance(r, EventRecord) and r.event == "lost"]
    assert "stalled" in lost[0].reason and windows_of(records)


def test_a_corrupt_stretch_is_skipped(pair, video):
    with live_source("ts", video, extra=["--corrupt-from", "4", "--corrupt-for", "1"]) as (url, _):
        records, _ = run_live(
            pair,
            [url],
            lambda records, _: len(windows_of(records)) >= 8 or "lost" in events_of(records),
            stall_timeout=5.0,
        )
    skipped = [r for r in records if isinstance(r, EventRecord) and r.event == "skipped"]
    assert skipped, events_of(records)
    assert not [w for w in windows_of(records) if w.start < skipped[0].time + 0.5 < w.end]


class SlowModel:
    """A model that takes 0.4 s per embedding call: the sources outrun it."""

    def __init__(self, model):
        self.model = model

    def __getattr__(self, name):
        return getattr(self.model, name)

    def embed(self, frames):
        time.sleep(0.4)
        return self.model.embed(frames)


def test_overload_drops_the_backlog_and_latency_stays_bounded(pair, video):
    fast = TimelineOptions.resolve(4, stride=1, fps=8.0, batch_size=2, topk=1)
    sources = [parse_source(f"s{i}={video}") for i in range(2)]
    # 2 frames per 0.4 s across 2 sources: each gets 2.5 of its 8 samples per second (0.31), above the
    # T / (T + queue) = 0.2 that windows need under the backlog policy
    runner = LiveRunner(SlowModel(pair), sources, LiveOptions(fast, realtime=True, queue=16))
    records = list(runner)
    dropped = [counts.dropped for counts in runner.hub.counts]
    assert all(count > 0 for count in dropped), dropped
    latencies = [w.latency_ms for w in windows_of(records)]
    assert latencies and max(latencies) < 10_000  # queue 16 at 8/s plus model calls, not the video's length
    text = prometheus_text(runner)
    assert f'stam_live_dropped_samples_total{{source="s0"}} {dropped[0]}' in text
    assert f"stam_live_latency_seconds_count {len(latencies)}" in text
    table = status_table(runner).splitlines()
    assert len(table) == 3 and table[1].split()[0] == "s0" and str(dropped[0]) in table[1].split()


def test_sigterm_drains_and_exits_0(tiny_split, video):
    with live_source("ts", video, loops=5) as (url, _):
        command = [sys.executable, "-m", "runtime.live.cli", str(tiny_split[0]), url]
        port = free_port()
        command += ["--window", "4", "--stride", "2", "--fps", "2", "--json", "--metrics-port", str(port)]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            lines = []
            for line in process.stdout:
                lines.append(line)
                if '"latency_ms"' in line:
                    break
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=30)
        finally:
            process.kill()
    lines += out.splitlines(keepends=True)
    assert process.returncode == 0, err
    records = [json.loads(line) for line in lines]
    assert records[0]["event"] == "connected" and any("latency_ms" in r for r in records)
    assert f'stam_live_source_up{{source="{url}"}} 1' in metrics


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["nowhere.mp4"], "no such file"),
        (["ftp://example/x"], "unknown scheme"),
        (["--listen", "udp://127.0.0.1:5000"], "only rtsp://, tcp://, srt:// sources can listen"),
        (["--window", "0", "x.mp4"], "positive integer"),
        ([], "no source"),
    ],
)
def test_bad_arguments_are_one_error_line(tiny_split, arguments, message):
    done = subprocess.run(
        [sys.executable, "-m", "runtime.live.cli", str(tiny_split[0]), *arguments],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_no_source_that_opens_is_exit_2(tiny_split):
    done = subprocess.run(
        [sys.executable, "-m", "runtime.live.cli", str(tiny_split[0]), f"tcp://127.0.0.1:{free_port()}", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stderr.startswith("error: no source opened")


def test_source_names_and_options():
    source = parse_source("cam1=rtsp://10.0.0.1/stream?a=b")
    assert (source.name, source.url) == ("cam1", "rtsp://10.0.0.1/stream?a=b")
    probe = {"analyzeduration": "1000000"}
    assert source.ffmpeg_options(2.0) == {"rtsp_transport": "tcp", "timeout": "2000000", **probe}
    assert parse_source("udp://239.0.0.1:1234").ffmpeg_options(1.0) == {"rw_timeout": "1000000", **probe}
    assert [s.name for s in read_sources(["# cameras", "", "door=udp://a:1", "srt://b:2"])] == ["door", "srt://b:2"]
    pushed = read_sources(["listen yard=rtsp://0.0.0.0:8554/yard", "listen tcp://0.0.0.0:9000"])
    assert [(s.name, s.listen) for s in pushed] == [("yard", True), ("tcp://0.0.0.0:9000", True)]
    listening = {"rtsp_flags": "listen", "listen_timeout": "2"}  # whole seconds: FFmpeg's RTSP unit
    assert pushed[0].ffmpeg_options(1.5) == {"rtsp_transport": "tcp", "timeout": "1500000", **listening, **probe}
    assert pushed[1].ffmpeg_options(1.5) == {"rw_timeout": "1500000", "listen": "1", "listen_timeout": "1500", **probe}
    assert parse_source("srt://0.0.0.0:9000", listen=True).ffmpeg_options(1.0)["mode"] == "listener"
    with pytest.raises(StamError, match="two sources"):
        from runtime.live.sources import check_unique

        check_unique([parse_source("a=udp://x:1"), parse_source("a=udp://y:1")])
