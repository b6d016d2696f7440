"""Per-signal body checks: the official model first, then what the model lets through.

Each `validate_*` takes the parsed JSON document and the current time (seconds since the epoch)
and returns what to store, or raises `ApiError(400, "<JSON Pointer>: <reason>")`. Each
`count_*` is the bench-mode path: it checks only the outer shape and counts items.

Time windows follow Datadog's documentation, and none of them is a 400: the intake endpoints
are asynchronous, so a syntactically valid item outside its window is accepted with the
request and then never ingested. The emulator answers the same success and counts such items
as `dropped` instead of storing them:
- metrics (v2 series): points more than 1 hour old or more than 10 minutes ahead (MetricPoint
  and "Historical metrics ingestion": values submitted over an hour late are not ingested);
- service checks: more than 10 minutes old (SubmitServiceCheck: "can be submitted up to 10
  minutes in the past");
- events: `date_happened` more than 18 hours old (EventCreateRequest: "Limited to events no
  older than 18 hours");
- logs: a `timestamp` attribute (epoch milliseconds, or ISO 8601) more than 18 hours old
  (SubmitLog: "can be submitted with a timestamp that is up to 18 hours in the past").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from datadog_api_client.model_utils import OpenApiModel
from datadog_api_client.v1.model.event_create_request import EventCreateRequest
from datadog_api_client.v1.model.service_checks import ServiceChecks
from datadog_api_client.v2.model.http_log import HTTPLog
from datadog_api_client.v2.model.incident_create_request import IncidentCreateRequest
from datadog_api_client.v2.model.metric_payload import MetricPayload

from fakedatadog.errors import ApiError
from fakedatadog.intake.models import InvalidDocument, check

MAX_LOG_ENTRIES = 1000
MAX_LOG_MESSAGE_BYTES = 1_000_000
METRIC_MAX_AGE = 3600
METRIC_MAX_AHEAD = 600
SERVICE_CHECK_MAX_AGE = 600
EVENT_MAX_AGE = LOG_MAX_AGE = 18 * 3600


@dataclass(frozen=True, slots=True)
class Accepted:
    """An accepted body: `items` to store, `count` units ingested, `dropped` units not.

    `rejected` units were refused although the rest was taken (an OTLP partial success), for
    the reason `rejection`."""

    items: list[Any] = field(default_factory=list)
    count: int = 0
    dropped: int = 0
    rejected: int = 0
    rejection: str = ""


def invalid(pointer: str, reason: str) -> ApiError:
    """A 400 naming where the body is wrong."""
    return ApiError(400, f"{pointer}: {reason}")


def _model(document: Any, model: type[OpenApiModel]) -> None:
    try:
        check(document, model)
    except InvalidDocument as exc:
        raise ApiError(400, str(exc)) from exc


def validate_metrics(document: Any, now: float) -> Accepted:
    """A MetricPayload whose points all carry `timestamp` and `value` (MetricSeries.points:
    "All points must be objects with timestamp and a scalar value"); see the module for
    the window."""
    _model(document, MetricPayload)
    kept_series, kept, dropped = [], 0, 0
    for s_index, series in enumerate(document["series"]):
        points = []
        for p_index, point in enumerate(series["points"]):
            for name in ("timestamp", "value"):
                if point.get(name) is None:
                    where = f"/series/{s_index}/points/{p_index}"
                    raise invalid(where, f"missing required field {name!r}")
            if now - METRIC_MAX_AGE <= point["timestamp"] <= now + METRIC_MAX_AHEAD:
                points.append(point)
        kept += len(points)
        dropped += len(series["points"]) - len(points)
        if points:
            kept_series.append({**series, "points": points})
    return Accepted(kept_series, kept, dropped)


def count_metrics(document: Any) -> int:
    """Points in a `{"series": [{"points": [...]}, ...]}` document."""
    series = _outer(document, dict).get("series")
    if not isinstance(series, list):
        raise invalid("/series", "expected an array")
    return sum(len(s.get("points") or ()) for s in series if isinstance(s, dict))


def log_entries(document: Any) -> list[Any]:
    """The entries of a logs body: an array, or one object standing for itself (as Datadog
    takes it); 413 past 1000 entries (SubmitLog's limit), checked before anything else."""
    entries = [document] if isinstance(document, dict) else _outer(document, list)
    if len(entries) > MAX_LOG_ENTRIES:
        raise ApiError(
            413, f"Payload too large: {len(entries)} log entries, the limit is {MAX_LOG_ENTRIES}"
        )
    return entries


def validate_logs(document: Any, now: float) -> Accepted:
    """HTTPLog items (any extra attribute allowed). A `message` over 1 MB (1,000,000 bytes of
    UTF-8) is stored cut to that size with `"truncated": true` added, as Datadog truncates
    rather than refuses it."""
    entries = log_entries(document)
    _model(entries, HTTPLog)
    kept = []
    for entry in entries:
        if (when := _log_time(entry.get("timestamp"))) is not None and when < now - LOG_MAX_AGE:
            continue
        kept.append(_truncated(entry))
    return Accepted(kept, len(kept), len(entries) - len(kept))


def count_logs(document: Any) -> int:
    """Entries, with the 1000-entry limit still enforced."""
    return len(log_entries(document))


def validate_event(document: Any, now: float) -> Accepted:
    """One EventCreateRequest (title and text required, text at most 4000 characters,
    aggregation_key at most 100: the model's own validations)."""
    _model(document, EventCreateRequest)
    when = document.get("date_happened")
    if when is not None and when < now - EVENT_MAX_AGE:
        return Accepted([], 0, 1)
    return Accepted([document], 1)


def count_one(document: Any) -> int:
    """One event or incident: any JSON object."""
    _outer(document, dict)
    return 1


def validate_service_checks(document: Any, now: float) -> Accepted:
    """A ServiceChecks array (check, host_name, status 0-3 and tags required)."""
    _model(document, ServiceChecks)
    kept = [
        c
        for c in document
        if c.get("timestamp") is None or c["timestamp"] >= now - SERVICE_CHECK_MAX_AGE
    ]
    return Accepted(kept, len(kept), len(document) - len(kept))


def count_service_checks(document: Any) -> int:
    """Checks in the array."""
    return len(_outer(document, list))


def validate_incident(document: Any, _now: float) -> Accepted:
    """One IncidentCreateRequest (`data.type` "incidents", `title` and `customer_impacted`;
    `customer_impact_scope` too when `customer_impacted` is true: "Required if
    `customer_impacted:"true"`", says IncidentCreateAttributes)."""
    _model(document, IncidentCreateRequest)
    attributes = document["data"]["attributes"]
    if attributes["customer_impacted"] and "customer_impact_scope" not in attributes:
        raise invalid(
            "/data/attributes",
            "missing required field 'customer_impact_scope' (customer_impacted is true)",
        )
    return Accepted([document], 1)


def _truncated(entry: dict[str, Any]) -> dict[str, Any]:
    message = entry["message"].encode()
    if len(message) <= MAX_LOG_MESSAGE_BYTES:
        return entry
    cut = message[:MAX_LOG_MESSAGE_BYTES].decode(errors="ignore")
    return {**entry, "message": cut, "truncated": True}


def _outer(document: Any, kind: type) -> Any:
    if not isinstance(document, kind):
        expected = "an array" if kind is list else "an object"
        raise invalid("(root)", f"expected {expected}")
    return document


def _log_time(value: Any) -> float | None:
    """A log's `timestamp` in epoch seconds: numbers are milliseconds, strings ISO 8601 (UTC
    unless they say otherwise); anything else is None (Datadog then uses the intake time)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value / 1000
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    return None
