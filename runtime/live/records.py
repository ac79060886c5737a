"""What a live run produces: a record per classified window and a record per source event, each one JSON line."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from runtime.results import Prediction

# Source events. `connected`: the first frame of the first connection; `lost`: the source failed to
# open, stalled (no packet for the stall timeout), or its stream ended (network sources: retried);
# `reconnected`: frames again after a loss; `ended`: a file reached its end, or a source gave up for
# good (over a limit); `skipped`: a corrupt stretch whose frames were left out (no window spans it).
EVENTS = ("connected", "lost", "reconnected", "ended", "skipped")


@dataclass(frozen=True)
class WindowRecord:
    """One window of one source: seconds of the source's media clock from its first frame, top-k, and
    the milliseconds from the arrival of the window's last sample to this record."""

    source: str
    start: float
    end: float
    predictions: list[Prediction]
    latency_ms: float

    @property
    def top1(self) -> Prediction:
        return self.predictions[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "topk": [vars(p) for p in self.predictions],
            "latency_ms": round(self.latency_ms, 1),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


@dataclass(frozen=True)
class EventRecord:
    """Something that happened to a source; `time` is its media clock (seconds) when known."""

    source: str
    event: str
    reason: str | None = None
    time: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {"source": self.source, "event": self.event}
        if self.reason is not None:
            record["reason"] = self.reason
        if self.time is not None:
            record["time"] = round(self.time, 3)
        return {**record, **self.details}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())
