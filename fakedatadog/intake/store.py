"""What the intake routes received, per org and signal: stored items and counters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Signal = Literal[
    "metrics",
    "logs",
    "events",
    "service_checks",
    "incidents",
    "traces",
    "otlp_metrics",
    "otlp_logs",
]


@dataclass(frozen=True, slots=True)
class Arrival:
    """The accepted request an item came in: when, where, how encoded, how big on the wire."""

    received_at: float
    host: str
    encoding: str
    raw_size: int


@dataclass(slots=True)
class Counter:
    """Accepted requests; `items` counts points (metrics), lines (logs), spans (traces) or
    objects (the rest); `dropped` those Datadog accepts with the request but never ingests
    (outside the signal's time window)."""

    requests: int = 0
    items: int = 0
    dropped: int = 0


@dataclass(slots=True)
class IntakeLog:
    """Accepted telemetry. Items are kept only outside bench mode; counters always."""

    items: dict[tuple[str, Signal], list[dict[str, Any]]] = field(default_factory=dict)
    counters: dict[tuple[str, Signal], Counter] = field(default_factory=dict)
    last_id: int = 0

    def next_id(self) -> int:
        """A fresh numeric id (v1 event ids), unique since the last reset."""
        self.last_id += 1
        return self.last_id

    def record(
        self,
        dd_oid: str,
        signal: Signal,
        arrival: Arrival,
        *,
        items: list[Any] | None,
        count: int,
        dropped: int = 0,
    ) -> None:
        """Count one accepted request of `count` units; store `items` unless None (bench)."""
        counter = self.counters.setdefault((dd_oid, signal), Counter())
        counter.requests += 1
        counter.items += count
        counter.dropped += dropped
        if items:
            stored = self.items.setdefault((dd_oid, signal), [])
            meta = {
                "received_at": arrival.received_at,
                "host": arrival.host,
                "encoding": arrival.encoding,
                "raw_size": arrival.raw_size,
            }
            stored.extend({**meta, "item": item} for item in items)

    def counter(self, dd_oid: str, signal: Signal) -> Counter:
        """The org's counter for `signal`, zero if it never sent any."""
        return self.counters.get((dd_oid, signal), Counter())
