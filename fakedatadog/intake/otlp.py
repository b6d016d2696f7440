"""OTLP/HTTP traces in the JSON encoding: an `ExportTraceServiceRequest`, checked and flattened.

The checks follow the OTLP specification's JSON mapping (opentelemetry-proto, `docs/specification.md`
"JSON Protobuf Encoding"): field names in lowerCamelCase; `traceId` and `spanId` as hex strings
(32 and 16 digits, not all zero); 64-bit times as decimal strings or integers; unknown fields
ignored, as receivers must. Every span needs `traceId`, `spanId`, `name`, `startTimeUnixNano`
and `endTimeUnixNano`. No protobuf package is installed, so `application/x-protobuf` is refused
with 415 by the route rather than accepted unchecked.
"""

from __future__ import annotations

import re
from typing import Any

from fakedatadog.intake.validation import Accepted, invalid

_TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")
_SPAN_ID = re.compile(r"[0-9a-fA-F]{16}")
_SPAN_KINDS = range(6)


def validate_traces(document: Any, _now: float) -> Accepted:
    """One stored item per span: `{"resource": <resource or {}>, "scope": <scope or {}>,
    "span": <span as sent>}`."""
    spans = []
    for r_index, resource_spans in enumerate(_array(document, "resourceSpans", "")):
        where = f"/resourceSpans/{r_index}"
        resource = _object(resource_spans, "resource", where)
        for s_index, scope_spans in enumerate(_array(resource_spans, "scopeSpans", where)):
            scope_where = f"{where}/scopeSpans/{s_index}"
            scope = _object(scope_spans, "scope", scope_where)
            for index, span in enumerate(_array(scope_spans, "spans", scope_where)):
                _check_span(span, f"{scope_where}/spans/{index}")
                spans.append({"resource": resource, "scope": scope, "span": span})
    return Accepted(spans, len(spans))


def count_traces(document: Any) -> int:
    """Spans in the request, trusting its shape wherever it is readable."""
    if not isinstance(document, dict):
        raise invalid("(root)", "expected an object")
    return sum(
        len(scope.get("spans") or ())
        for resource in document.get("resourceSpans") or ()
        if isinstance(resource, dict)
        for scope in resource.get("scopeSpans") or ()
        if isinstance(scope, dict)
    )


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
