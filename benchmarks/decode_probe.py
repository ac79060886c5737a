"""Decode one video under limits in a process of its own and print one JSON line: what happened and what it cost.

A hostile file may crash, hang or exhaust a process, so callers (the hostile-file tests and
`benchmarks.hostile`) run this in a child with a timeout and read its peak memory from the kernel's
own count (`ru_maxrss`), never trusting the decoder to report on itself.

    python -m benchmarks.decode_probe VIDEO [--frames 8] [--limits '{"max_pixels": 76800}']
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

KIB = 1024


@dataclass(frozen=True)
class Probe:
    """One decode's outcome: `ok` (with the pixels' shape and range), `limit` (LimitExceeded) or `error`
    (another VideoError); `crash` when the child died or printed something else, `hang` on timeout."""

    outcome: str
    message: str
    seconds: float
    peak_rss_mb: float
    shape: list[int] | None = None
    pixel_range: list[float] | None = None
    notes: list[str] | None = None


def decode(path: str, frames: int, limits_json: str) -> Probe:
    """load_clip in this process; the outcome as data."""
    from runtime.clips import load_clip
    from runtime.errors import VideoError
    from runtime.limits import LimitExceeded, Limits

    limits = Limits(**json.loads(limits_json))
    started = time.perf_counter()
    try:
        pixels, notes = load_clip(path, frames, limits=limits)
    except LimitExceeded as error:
        return Probe("limit", str(error), time.perf_counter() - started, peak_rss_mb())
    except VideoError as error:
        return Probe("error", str(error), time.perf_counter() - started, peak_rss_mb())
    seconds = time.perf_counter() - started
    span = [float(pixels.min()), float(pixels.max())]
    return Probe("ok", "", seconds, peak_rss_mb(), list(pixels.shape), span, notes)


def peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM, which counts this program only (ru_maxrss would also
    count the parent's pages that the child shared between fork and exec)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * KIB / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KIB / 2**20


def probe_in_child(path: str | Path, frames: int, limits: dict, timeout_s: float) -> Probe:
    """Run `decode` in a fresh interpreter; a timeout is a `hang`, a death or stray output a `crash`."""
    command = [sys.executable, "-m", "benchmarks.decode_probe", str(path), "--frames", str(frames)]
    command += ["--limits", json.dumps(limits)]
    started = time.perf_counter()
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return Probe("hang", f"no answer after {timeout_s:g} s", time.perf_counter() - started, float("nan"))
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or len(lines) != 1:
        tail = (result.stderr.strip().splitlines() or [""])[-1]
        return Probe("crash", f"exit {result.returncode}: {tail}", time.perf_counter() - started, float("nan"))
    return Probe(**json.loads(lines[0]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.decode_probe", description=__doc__.split("\n")[0])
    parser.add_argument("video")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--limits", default="{}", help="Limits fields as JSON (absent ones keep their defaults)")
    args = parser.parse_args(argv)
    print(json.dumps(asdict(decode(args.video, args.frames, args.limits))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
