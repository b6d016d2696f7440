"""OTLP export requests (traces, metrics, logs): checked, and flattened to items.

The checks read a request in the OTLP specification's JSON mapping (opentelemetry-proto,
`docs/specification.md` "JSON Protobuf Encoding"), as sent or as `otlp_wire` writes a decoded
protobuf request: field names in lowerCamelCase; `traceId` and `spanId` as hex strings (32 and
16 digits, not all zero); 64-bit times as decimal strings or integers; unknown fields ignored, as
receivers must. Every span needs `traceId`, `spanId`, `name`, `startTimeUnixNano` and
`endTimeUnixNano`; every metric a `name`; a log record's optional times are nanoseconds and its
`severityNumber` 0 to 24.

Metrics must be delta: Datadog's OTLP metrics intake asks for delta temporality only, so a sum,
histogram or exponential histogram whose temporality is not delta is refused as a partial
success (named in the answer), and the rest of the request is kept. Counts are spans, data
points and log records.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

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
    """An ExportMetricsServiceRequest: one stored item per delta (or gauge, or summary) metric
    (`"metric"`), each named; metrics of another temporality are refused by name."""
    checked = _validate(document, _METRICS, _check_metric)
    kept = [item for item in checked.items if _is_delta(item["metric"])]
    refused = [item["metric"] for item in checked.items if not _is_delta(item["metric"])]
    if not refused:
        return Accepted(kept, sum(_points(item["metric"]) for item in kept))
    names = ", ".join(sorted({repr(metric["name"]) for metric in refused}))
    return Accepted(
        kept,
        sum(_points(item["metric"]) for item in kept),
        rejected=sum(_points(metric) for metric in refused),
        rejection=f"only delta temporality is accepted; refused the data points of {names}",
    )


def validate_logs(document: Any, _now: float) -> Accepted:
    """An ExportLogsServiceRequest: one stored item per log record (`"logRecord"`)."""
    return _validate(document, _LOGS, _check_log_record)


def count_traces(document: Any) -> int:
    """Spans in the request, trusting its shape wherever it is readable (bench mode)."""
    return _count(document, _TRACES, len)


def count_metrics(document: Any) -> int:
    """Data points in the request, trusting its shape wherever it is readable."""
    return _count(
        document, _METRICS, lambda metrics: sum(_points(m) for m in metrics if isinstance(m, dict))
    )


def count_logs(document: Any) -> int:
    return _count(document, _LOGS, len)


def count_decoded_traces(request: ExportTraceServiceRequest) -> int:
    """Spans in a decoded protobuf request (bench mode: nothing else is read)."""
    return sum(len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans)


def count_decoded_metrics(request: ExportMetricsServiceRequest) -> int:
    """Data points in a decoded request."""
    points = 0
    for rm in request.resource_metrics:
        for scope in rm.scope_metrics:
            for metric in scope.metrics:
                data = metric.WhichOneof("data")
                points += 0 if data is None else len(getattr(metric, data).data_points)
    return points


def count_decoded_logs(request: ExportLogsServiceRequest) -> int:
    """Log records in a decoded request."""
    return sum(len(scope.log_records) for rl in request.resource_logs for scope in rl.scope_logs)


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


def _count(document: Any, layout: _Layout, leaves: Callable[[list[Any]], int]) -> int:
    if not isinstance(document, dict):
        raise invalid("(root)", "expected an object")
    return sum(
        leaves(scope.get(layout.leaves) or [])
        for resource in document.get(layout.resources) or ()
        if isinstance(resource, dict)
        for scope in resource.get(layout.scopes) or ()
        if isinstance(scope, dict)
    )


_DATA_FIELDS = ("gauge", "sum", "histogram", "exponentialHistogram", "summary")
_DELTA = 1  # AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA


def _data(metric: dict[str, Any]) -> dict[str, Any]:
    """The metric's one data field (gauge, sum, ...), or {} if it has none."""
    return next((metric[name] for name in _DATA_FIELDS if isinstance(metric.get(name), dict)), {})


def _points(metric: dict[str, Any]) -> int:
    points = _data(metric).get("dataPoints")
    return len(points) if isinstance(points, list) else 0


def _is_delta(metric: dict[str, Any]) -> bool:
    """Sums and histograms must say delta; gauges and summaries carry no temporality."""
    for name in ("sum", "histogram", "exponentialHistogram"):
        data = metric.get(name)
        if isinstance(data, dict):
            return data.get("aggregationTemporality") == _DELTA
    return True


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
