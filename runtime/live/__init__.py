"""Live sources classified in real time: many cameras or streams at once, one model, windows as they close.

`LiveRunner(model, sources, options)` is the library (torch-free); `stam-live` (runtime.live.cli) is its
command line. docs/live.md describes the drop policy, the events and the metrics.
"""

from runtime.live.records import EVENTS, EventRecord, WindowRecord
from runtime.live.runner import LiveOptions, LiveRunner
from runtime.live.sources import Source, parse_source, read_sources

__all__ = [
    "EVENTS",
    "EventRecord",
    "LiveOptions",
    "LiveRunner",
    "Source",
    "WindowRecord",
    "parse_source",
    "read_sources",
]
