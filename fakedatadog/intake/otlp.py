"""OTLP/HTTP JSON export requests (traces, metrics, logs): checked, and flattened to items.

The checks follow the OTLP specification's JSON mapping (opentelemetry-proto, `docs/specification.md`
"JSON Protobuf Encoding"): field names in lowerCamelCase; `traceId` and `spanId` as hex strings
(32 and 16 digits, not all zero); 64-bit times as decimal strings or integers; unknown fields
ignored, as receivers must. Every span needs `traceId`, `spanId`, `name`, `startTimeUnixNano`
and `endTimeUnixNano`; every metric a `name`; a log record's optional times are nanoseconds and
its `severityNumber` 0 to 24. No protobuf package is installed, so `application/x-protobuf` is refused
with 415 by the route rather than accepted unchecked.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fakedatadog.intake.validation import Accepted, invalid

_TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")
_SPAN_ID = re.compile(r"[0-9a-fA-F]{16}")
_SPAN_KINDS = range(6)
_SEVERITY_NUMBERS = range(25)


def validate_traces(document: Any, _now: float) -> Accepted:
    """One stored item per span: `{"resource": <resource or {}>, "scope": <scope or {}>,
    "span": <span as sent>}`."""
    return _validate(document, _TRACES, _check_span)


def validate_metrics(document: Any, _now: float) -> Accepted:
    """An ExportMetricsServiceRequest: one stored item per metric (`"metric"`), each named."""
    return _validate(document, _METRICS, _check_metric)


def validate_logs(document: Any, _now: float) -> Accepted:
    """An ExportLogsServiceRequest: one stored item per log record (`"logRecord"`)."""
    return _validate(document, _LOGS, _check_log_record)


def count_traces(document: Any) -> int:
    """Spans in the request, trusting its shape wherever it is readable."""
    return _count(document, _TRACES)


def count_metrics(document: Any) -> int:
    return _count(document, _METRICS)


def count_logs(document: Any) -> int:
    return _count(document, _LOGS)


@dataclass(frozen=True, slots=True)
class _Layout:
    """The three nested arrays of one OTLP export request, and what a stored item calls a leaf."""

    resources: str
    scopes: str
    leaves: str
    item: str


_TRACES = _Layout("resourceSpans", "scopeSpans", "spans", "span")
_METRICS = _Layout("resourceMetrics", "scopeMetrics", "metrics", "metric")
_LOGS = _Layout("resourceLogs", "scopeLogs", "logRecords", "logRecord")


def _validate(document: Any, layout: _Layout, check_leaf: Callable[[Any, str], None]) -> Accepted:
    items = []
    for r_index, resource_entry in enumerate(_array(document, layout.resources, "")):
        where = f"/{layout.resources}/{r_index}"
        resource = _object(resource_entry, "resource", where)
        for s_index, scope_entry in enumerate(_array(resource_entry, layout.scopes, where)):
            scope_where = f"{where}/{layout.scopes}/{s_index}"
            scope = _object(scope_entry, "scope", scope_where)
            for index, leaf in enumerate(_array(scope_entry, layout.leaves, scope_where)):
                check_leaf(leaf, f"{scope_where}/{layout.leaves}/{index}")
                items.append({"resource": resource, "scope": scope, layout.item: leaf})
    return Accepted(items, len(items))


def _count(document: Any, layout: _Layout) -> int:
    if not isinstance(document, dict):
        raise invalid("(root)", "expected an object")
    return sum(
        len(scope.get(layout.leaves) or ())
        for resource in document.get(layout.resources) or ()
        if isinstance(resource, dict)
        for scope in resource.get(layout.scopes) or ()
        if isinstance(scope, dict)
    )


def _check_metric(metric: Any, where: str) -> None:
    if not isinstance(metric, dict):
        raise invalid(where, "expected an object")
    name = metric.get("name")
    if not isinstance(name, str) or not name:
        raise invalid(f"{where}/name", "expected a non-empty string")


def _check_log_record(record: Any, where: str) -> None:
    """Optional times are nanoseconds; `severityNumber` is a SeverityNumber (0 to 24)."""
    if not isinstance(record, dict):
        raise invalid(where, "expected an object")
    for field in ("timeUnixNano", "observedTimeUnixNano"):
        if record.get(field) is not None:
            _nanos(record, field, where)
    severity = record.get("severityNumber", 0)
    if isinstance(severity, bool) or severity not in _SEVERITY_NUMBERS:
        raise invalid(f"{where}/severityNumber", f"{severity!r} is not a SeverityNumber (0 to 24)")


def _check_span(span: Any, where: str) -> None:
    if not isinstance(span, dict):
        raise invalid(where, "expected an object")
    _id(span, "traceId", _TRACE_ID, where, required=True)
    _id(span, "spanId", _SPAN_ID, where, required=True)
    _id(span, "parentSpanId", _SPAN_ID, where, required=False)
    name = span.get("name")
    if not isinstance(name, str) or not name:
        raise invalid(f"{where}/name", "expected a non-empty string")
    times = [_nanos(span, field, where) for field in ("startTimeUnixNano", "endTimeUnixNano")]
    if times[1] < times[0]:
        raise invalid(f"{where}/endTimeUnixNano", "is before startTimeUnixNano")
    kind = span.get("kind", 0)
    if isinstance(kind, bool) or kind not in _SPAN_KINDS:
        raise invalid(f"{where}/kind", f"{kind!r} is not a SpanKind (0 to 5)")


def _id(
    span: dict[str, Any], field: str, pattern: re.Pattern[str], where: str, *, required: bool
) -> None:
    value = span.get(field)
    if value in (None, "") and not required:
        return
    if not isinstance(value, str) or not pattern.fullmatch(value) or not value.strip("0"):
        digits = 32 if pattern is _TRACE_ID else 16
        raise invalid(f"{where}/{field}", f"expected {digits} hex digits, not all zero")


def _nanos(span: dict[str, Any], field: str, where: str) -> int:
    value = span.get(field)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise invalid(f"{where}/{field}", "expected nanoseconds as a decimal string or integer")


def _array(container: Any, field: str, where: str) -> list[Any]:
    if not isinstance(container, dict):
        raise invalid(where or "(root)", "expected an object")
    value = container.get(field, [])
    if not isinstance(value, list):
        raise invalid(f"{where}/{field}", "expected an array")
    return value


def _object(container: Any, field: str, where: str) -> dict[str, Any]:
    if not isinstance(container, dict):
        raise invalid(where, "expected an object")
    value = container.get(field, {})
    if not isinstance(value, dict):
        raise invalid(f"{where}/{field}", "expected an object")
    return value
