"""Live sources: what the user names (URL, device or file, with an optional `NAME=` prefix) and the FFmpeg
options that make each kind of source open and read with bounded waits.

Network sources (rtsp, rtmp, srt, udp, tcp, http/https including HLS) are retried when lost; files
end; V4L2 devices (/dev/video*) are opened with the v4l2 demuxer and retried like a network source.

A listening source (rtsp, tcp, srt) receives a stream that a sender pushes to its address: FFmpeg's
RTSP demuxer in listen mode (`rtsp_flags=listen`: the sender ANNOUNCEs and RECORDs), TCP's `listen`,
SRT's `mode=listener`. Each waits at most the stall timeout for its sender, then listens again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from runtime.errors import StamError

NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "srt", "udp", "tcp", "http", "https", "rtp")
RTSP_TRANSPORTS = ("tcp", "udp", "udp_multicast", "http")
LISTEN_SCHEMES = ("rtsp", "tcp", "srt")
LISTEN_KEYWORD = "listen"  # a --sources line `listen [NAME=]URL`
MICROSECONDS = 1_000_000
PROBE_SECONDS = 1


@dataclass(frozen=True)
class Source:
    """One live source: its display name, what FFmpeg opens, and how."""

    name: str
    url: str
    format: str | None = None  # a demuxer or device name (v4l2 for /dev/video*)
    options: Mapping[str, str] = field(default_factory=dict)  # FFmpeg options given by the user
    listen: bool = False  # receive a stream pushed to `url` instead of fetching one from it

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
        the RTSP socket `timeout` and transport; a listener's mode and its wait for a sender (RTSP's
        `listen_timeout` must be positive: the FFmpeg bundled with PyAV 18.1 refuses its default of -1,
        forever); the user's options win."""
        wait = str(round(stall_timeout * MICROSECONDS))
        options: dict[str, str] = {}
        if self.scheme in ("rtsp", "rtsps"):
            options.update(rtsp_transport=rtsp_transport, timeout=wait)
        elif self.scheme:
            options["rw_timeout"] = wait
        if self.listen and self.scheme == "rtsp":
            options.update(rtsp_flags="listen", listen_timeout=str(max(1, math.ceil(stall_timeout))))  # seconds
        elif self.listen and self.scheme == "tcp":
            options.update(listen="1", listen_timeout=str(max(1, round(stall_timeout * 1000))))  # milliseconds
        elif self.listen and self.scheme == "srt":
            options["mode"] = "listener"
        if self.scheme:  # probe one second of a stream, not FFmpeg's five: the first window comes sooner
            options["analyzeduration"] = str(PROBE_SECONDS * MICROSECONDS)
        return {**options, **self.options}


def parse_source(text: str, options: Mapping[str, str] | None = None, *, listen: bool = False) -> Source:
    """`[NAME=]URL|DEVICE|FILE`; the name defaults to the text itself. A `NAME=` prefix is recognised
    only before anything that looks like a URL, device or path (an `=` inside a URL's query stays).
    With `listen`, the URL is where a sender pushes the stream (rtsp://, tcp:// or srt://)."""
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
    if listen and scheme not in LISTEN_SCHEMES:
        raise StamError(f"source {text!r}: only {', '.join(s + '://' for s in LISTEN_SCHEMES)} sources can listen")
    if not scheme and device is None and not Path(target).is_file():
        raise StamError(f"source {text!r}: no such file, and not a URL (scheme://...) or a /dev/video device")
    return Source(name, target, device, dict(options or {}), listen)


def read_sources(lines: Sequence[str], options: Mapping[str, str] | None = None) -> list[Source]:
    """Sources from lines (a --sources file): one per line, `listen [NAME=]URL` for a listening source;
    blank lines and `#` comments skipped."""
    sources = []
    for line in lines:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        keyword, _, rest = text.partition(" ")
        listen = keyword == LISTEN_KEYWORD and bool(rest.strip())
        sources.append(parse_source(rest if listen else text, options, listen=listen))
    return sources


def check_unique(sources: Sequence[Source]) -> None:
    """Two sources with one name could not be told apart in the output."""
    seen: set[str] = set()
    for source in sources:
        if source.name in seen:
            raise StamError(f"two sources are named {source.name!r}: give each its own NAME= prefix")
        seen.add(source.name)
