"""The telemetry signals ddbridge delivers, and Datadog's rules for each in one table.

A signal fixes where a batch goes (host and path), which credential it carries, how it is
encoded, how much fits in one request, how old an item may be before Datadog's intake no
longer takes it and where an item keeps its own time (datadog.md sections 3 and 4); and how
long a send's `Idempotency-Key` holds. Intake and delivery both read these.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from service.sites import Site


class Signal(enum.StrEnum):
    METRICS = "metrics"
    LOGS = "logs"
    EVENTS = "events"
    SERVICE_CHECKS = "service_checks"
    INCIDENTS = "incidents"
    TRACES = "traces"


class Credential(enum.Enum):
    """Which credential a signal's requests carry (the door builds the header)."""

    API_KEY = "api_key"
    BEARER = "bearer"


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """Datadog's intake rules for one signal.

    `max_items` and `max_raw_bytes` bound one request before compression; `max_wire_bytes`
    bounds it after. `window_seconds` is how old an item may be when it reaches Datadog
    (None: Datadog stamps it on arrival). `envelope` wraps the joined items: the body is
    `prefix + item,item,... + suffix`.
    """

    signal: Signal
    path: str
    host: str  # "api", "logs" or "trace": which of the site's hosts
    credential: Credential
    encoding: str | None
    max_items: int
    max_raw_bytes: int
    max_wire_bytes: int
    window_seconds: int | None
    prefix: bytes = b"["
    suffix: bytes = b"]"
    scope: str | None = None
    """The OAuth scope a Bearer signal needs in the grant (checked before any request)."""

    def host_of(self, site: Site) -> str:
        return {"api": site.api_host, "logs": site.logs_host, "trace": site.trace_host}[self.host]


MIB = 1024 * 1024

SPECS: dict[Signal, SignalSpec] = {
    spec.signal: spec
    for spec in (
        SignalSpec(
            Signal.METRICS,
            "/api/v2/series",
            "api",
            Credential.API_KEY,
            "zstd1",
            max_items=100_000,
            max_raw_bytes=5 * MIB - 1,
            max_wire_bytes=512_000,
            window_seconds=3600,
            prefix=b'{"series":[',
            suffix=b"]}",
        ),
        SignalSpec(
            Signal.LOGS,
            "/api/v2/logs",
            "logs",
            Credential.API_KEY,
            "gzip",
            max_items=1000,
            max_raw_bytes=5_000_000,
            max_wire_bytes=5_000_000,
            window_seconds=18 * 3600,
        ),
        SignalSpec(
            Signal.EVENTS,
            "/api/v1/events",
            "api",
            Credential.API_KEY,
            None,
            max_items=1,
            max_raw_bytes=MIB,
            max_wire_bytes=MIB,
            window_seconds=18 * 3600,
            prefix=b"",
            suffix=b"",
        ),
        SignalSpec(
            Signal.SERVICE_CHECKS,
            "/api/v1/check_run",
            "api",
            Credential.API_KEY,
            None,
            max_items=1000,
            max_raw_bytes=MIB,
            max_wire_bytes=MIB,
            window_seconds=600,
        ),
        SignalSpec(
            Signal.INCIDENTS,
            "/api/v2/incidents",
            "api",
            Credential.BEARER,
            None,
            max_items=1,
            max_raw_bytes=MIB,
            max_wire_bytes=MIB,
            window_seconds=None,
            prefix=b"",
            suffix=b"",
            scope="incident_write",
        ),
        SignalSpec(
            Signal.TRACES,
            "/v1/traces",
            "trace",
            Credential.API_KEY,
            "gzip",
            max_items=10_000,
            max_raw_bytes=3_200_000,
            max_wire_bytes=3_200_000,
            window_seconds=None,
            prefix=b'{"resourceSpans":[',
            suffix=b"]}",
        ),
    )
}


# Where each signal keeps an item's own time (Datadog's windows are in `SPECS`).

STAMP_FIELDS = {
    Signal.LOGS: "timestamp",
    Signal.EVENTS: "date_happened",
    Signal.SERVICE_CHECKS: "timestamp",
}


def item_timestamp(signal: Signal, item: dict[str, Any]) -> float | None:
    """An item's own time in seconds, where Datadog reads one (None: stamped on arrival).

    Logs' reserved `timestamp` is epoch milliseconds or ISO 8601; events and service checks
    carry epoch seconds.
    """
    field = STAMP_FIELDS.get(signal)
    value = item.get(field) if field else None
    if isinstance(value, bool) or value is None:
        return None
    if signal is Signal.LOGS:
        if isinstance(value, int):
            return value / 1000
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value).timestamp()
            except (ValueError, OverflowError):
                return None
        return None
    return float(value) if isinstance(value, int | float) else None


IDEMPOTENCY_WINDOW = timedelta(hours=24)
"""How long a send's `Idempotency-Key` is answered with its first answer."""
