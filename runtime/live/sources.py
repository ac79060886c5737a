"""Live sources: what the user names (URL, device or file, with an optional `NAME=` prefix) and the FFmpeg
options that make each kind of source open and read with bounded waits.

Network sources (rtsp, rtmp, srt, udp, tcp, http/https including HLS) are retried when lost; files
end; V4L2 devices (/dev/video*) are opened with the v4l2 demuxer and retried like a network source.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from runtime.errors import StamError

NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "srt", "udp", "tcp", "http", "https", "rtp")
RTSP_TRANSPORTS = ("tcp", "udp", "udp_multicast", "http")
MICROSECONDS = 1_000_000
PROBE_SECONDS = 1


@dataclass(frozen=True)
class Source:
    """One live source: its display name, what FFmpeg opens, and how."""

    name: str
    url: str
    format: str | None = None  # a demuxer or device name (v4l2 for /dev/video*)
    options: Mapping[str, str] = field(default_factory=dict)  # FFmpeg options given by the user

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0].lower() if "://" in self.url else ""

    @property
    def is_file(self) -> bool:
        """A file on disk: it ends, and is never retried."""
        return self.format is None and not self.scheme

    @property
    def is_device(self) -> bool:
        return self.format is not None

    def ffmpeg_options(self, stall_timeout: float, rtsp_transport: str = "tcp") -> dict[str, str]:
        """FFmpeg's own timeouts so that a blocking read returns: `rw_timeout` on every network protocol,
        the RTSP socket `timeout` and transport; the user's options win."""
        wait = str(round(stall_timeout * MICROSECONDS))
        options: dict[str, str] = {}
        if self.scheme in ("rtsp", "rtsps"):
            options.update(rtsp_transport=rtsp_transport, timeout=wait)
        elif self.scheme:
            options["rw_timeout"] = wait
        if self.scheme:  # probe one second of a stream, not FFmpeg's five: the first window comes sooner
            options["analyzeduration"] = str(PROBE_SECONDS * MICROSECONDS)
        return {**options, **self.options}


def parse_source(text: str, options: Mapping[str, str] | None = None) -> Source:
    """`[NAME=]URL|DEVICE|FILE`; the name defaults to the text itself. A `NAME=` prefix is recognised
    only before anything that looks like a URL, device or path (an `=` inside a URL's query stays)."""
    text = text.strip()
    name, target = text, text
    head, sep, rest = text.partition("=")
    if sep and head and "/" not in head and ":" not in head:
        name, target = head, rest
    if not target:
        raise StamError(f"source {text!r}: nothing to open after {name}=")
    scheme = target.split("://", 1)[0].lower() if "://" in target else ""
    if scheme and scheme not in NETWORK_SCHEMES and scheme != "file":
        raise StamError(f"source {text!r}: unknown scheme {scheme}:// (one of {', '.join(NETWORK_SCHEMES)})")
    if scheme == "file":
        target = target[len("file://") :]
    device = "v4l2" if target.startswith("/dev/video") else None
    if not scheme and device is None and not Path(target).is_file():
        raise StamError(f"source {text!r}: no such file, and not a URL (scheme://...) or a /dev/video device")
    return Source(name, target, device, dict(options or {}))


def read_sources(lines: Sequence[str], options: Mapping[str, str] | None = None) -> list[Source]:
    """Sources from lines (a --sources file): one per line; blank lines and `#` comments skipped."""
    return [parse_source(line, options) for line in lines if line.strip() and not line.lstrip().startswith("#")]


def check_unique(sources: Sequence[Source]) -> None:
    """Two sources with one name could not be told apart in the output."""
    seen: set[str] = set()
    for source in sources:
        if source.name in seen:
            raise StamError(f"two sources are named {source.name!r}: give each its own NAME= prefix")
        seen.add(source.name)
