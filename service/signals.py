"""The telemetry signals ddbridge delivers, and Datadog's rules for each in one table.

A signal fixes where a batch goes (host and path), which credential it carries, how it is
encoded, how much fits in one request, how old an item may be before Datadog's intake no
longer takes it and where an item keeps its own time (datadog.md sections 3 and 4); and how
long a send's `Idempotency-Key` holds. Intake and delivery both read these.

The OTLP signals (`OTLP_SIGNALS`) are taken as OpenTelemetry exports them and go to Datadog's
agentless OTLP intake as protobuf: their rows are serialized export requests, joined with no
separator (`service.otlp`). Datadog documents 3.2 MB per trace request; for metrics and logs it
documents no limit, and the logs intake's 5 MB is assumed (a guess).
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
    OTLP_TRACES = "otlp_traces"
    OTLP_METRICS = "otlp_metrics"
    OTLP_LOGS = "otlp_logs"


OTLP_SIGNALS = (Signal.OTLP_TRACES, Signal.OTLP_METRICS, Signal.OTLP_LOGS)
JSON = "application/json"
PROTOBUF = "application/x-protobuf"


class Credential(enum.Enum):
    """Which credential a signal's requests carry (the door builds the header)."""

    API_KEY = "api_key"
    BEARER = "bearer"


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """Datadog's intake rules for one signal.

    `max_items` and `max_raw_bytes` bound one request before compression; `max_wire_bytes`
    bounds it after. `window_seconds` is how old an item may be when it reaches Datadog
    (None: Datadog stamps it on arrival, or no window is documented). The body is
    `prefix + item<separator>item... + suffix`, sent as `content_type`.
    """

    signal: Signal
    path: str
    host: str  # "api", "logs", "trace" or "otlp": which of the site's hosts
    credential: Credential
    encoding: str | None
    max_items: int
    max_raw_bytes: int
    max_wire_bytes: int
    window_seconds: int | None
    prefix: bytes = b"["
    suffix: bytes = b"]"
    separator: bytes = b","
    content_type: str = JSON
    scope: str | None = None
    """The OAuth scope a Bearer signal needs in the grant (checked before any request)."""

    def host_of(self, site: Site) -> str:
        hosts = {
            "api": site.api_host,
            "logs": site.logs_host,
            "trace": site.trace_host,
            "otlp": site.otlp_host,
        }
        return hosts[self.host]

    def missing_on(self, site: Site) -> str | None:
        """Why `site` has no intake for this signal (None: it has one)."""
        if self.host in ("trace", "otlp") and not site.has_otlp_intake:
            what = "trace" if self.signal is Signal.TRACES else "OTLP"
            return f"{site.name} ({site.domain}) has no agentless {what} intake"
        return None


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
        *(
            SignalSpec(
                signal,
                path,
                host,
                Credential.API_KEY,
                "gzip",
                max_items=1_000_000,  # none documented: the size binds first
                max_raw_bytes=limit,
                max_wire_bytes=limit,
                window_seconds=None,
                prefix=b"",
                suffix=b"",
                separator=b"",
                content_type=PROTOBUF,
            )
            for signal, path, host, limit in (
                (Signal.OTLP_TRACES, "/v1/traces", "trace", 3_200_000),
                (Signal.OTLP_METRICS, "/v1/metrics", "otlp", 5_000_000),
                (Signal.OTLP_LOGS, "/v1/logs", "otlp", 5_000_000),
            )
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
