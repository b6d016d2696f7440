"""OTLP export requests through the official definitions: decoding, counting, halving, fitting.

Intake and delivery share these. An outbox row of an OTLP signal holds one serialized
`Export*ServiceRequest`. That message has a single field, the repeated resource entries
(field 1), and protobuf concatenates repeated fields: the serializations of several requests,
joined, are the serialization of one request holding all their resources. So rows coalesce
into a Datadog request by joining bytes, never parsed, and a row is parsed only to split it.

Counts are leaves: spans, metric data points, log records.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from service.signals import Signal

_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId"})

Entries = Callable[[Any], Any]
"""From a message, the repeated field one level down (a protobuf repeated container)."""


def _field(name: str) -> Entries:
    return lambda message: getattr(message, name)


def _data_points(metric: Any) -> Any:
    """A metric's data points, whichever of gauge, sum, histogram... holds them."""
    data = metric.WhichOneof("data")
    return getattr(metric, data).data_points if data is not None else ()


@dataclass(frozen=True, slots=True)
class Kind:
    """One OTLP export service.

    `path` walks from the request down to its leaves, one repeated field per level;
    `pointer` names the same levels in OTLP JSON, to point at a leaf in either encoding.
    """

    name: str
    request: type[Message]
    response: type[Message]
    path: tuple[Entries, ...]
    pointer: tuple[str, ...]
    leaf: str
    rejected_field: str

    def leaves(self, request: Message) -> Iterator[tuple[str, Any, tuple[Any, ...]]]:
        """Every leaf with its JSON pointer and the entries above it (resource, scope, ...)."""
        yield from _walk(request, self.path, self.pointer, "", ())

    def count(self, request: Message) -> int:
        return sum(1 for _ in self.leaves(request))


def _walk(
    message: Any, path: tuple[Entries, ...], names: tuple[str, ...], at: str, above: tuple[Any, ...]
) -> Iterator[tuple[str, Any, tuple[Any, ...]]]:
    entries_of, *deeper = path
    name, *deeper_names = names
    for index, entry in enumerate(entries_of(message)):
        where = f"{at}/{name}/{index}"
        if deeper:
            yield from _walk(entry, tuple(deeper), tuple(deeper_names), where, (*above, entry))
        else:
            yield where, entry, above


TRACES = Kind(
    "ExportTraceServiceRequest",
    trace_service_pb2.ExportTraceServiceRequest,
    trace_service_pb2.ExportTraceServiceResponse,
    (_field("resource_spans"), _field("scope_spans"), _field("spans")),
    ("resourceSpans", "scopeSpans", "spans"),
    "span",
    "rejected_spans",
)
METRICS = Kind(
    "ExportMetricsServiceRequest",
    metrics_service_pb2.ExportMetricsServiceRequest,
    metrics_service_pb2.ExportMetricsServiceResponse,
    (_field("resource_metrics"), _field("scope_metrics"), _field("metrics"), _data_points),
    ("resourceMetrics", "scopeMetrics", "metrics", "dataPoints"),
    "data point",
    "rejected_data_points",
)
LOGS = Kind(
    "ExportLogsServiceRequest",
    logs_service_pb2.ExportLogsServiceRequest,
    logs_service_pb2.ExportLogsServiceResponse,
    (_field("resource_logs"), _field("scope_logs"), _field("log_records")),
    ("resourceLogs", "scopeLogs", "logRecords"),
    "log record",
    "rejected_log_records",
)


KINDS: dict[Signal, Kind] = {
    Signal.OTLP_TRACES: TRACES,
    Signal.OTLP_METRICS: METRICS,
    Signal.OTLP_LOGS: LOGS,
}
"""The export service of each OTLP signal."""


class MalformedRequest(ValueError):
    """The body is not an export request of its kind in the encoding it claims."""


def from_protobuf(kind: Kind, raw: bytes) -> Message:
    try:
        return kind.request.FromString(raw)
    except DecodeError as exc:
        raise MalformedRequest(f"not a protobuf {kind.name}: {exc}") from exc


def from_json(kind: Kind, raw: bytes) -> Message:
    """A request in OTLP's JSON encoding: proto3's JSON mapping with trace and span ids as hex
    (not base64), unknown fields ignored as receivers must."""
    try:
        document = orjson.loads(raw)
        message = kind.request()
        json_format.ParseDict(_ids_as_base64(document), message, ignore_unknown_fields=True)
    except (orjson.JSONDecodeError, json_format.ParseError, ValueError) as exc:
        raise MalformedRequest(f"not an OTLP JSON {kind.name}: {exc}") from exc
    return message


def _ids_as_base64(value: Any) -> Any:
    """`value` with every id string hex-decoded and base64-encoded for `json_format`; ids are
    the only OTLP object keys with these names (attribute keys are values, not keys)."""
    if isinstance(value, dict):
        return {
            key: _hex_as_base64(item)
            if key in _ID_FIELDS and isinstance(item, str)
            else _ids_as_base64(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_ids_as_base64(item) for item in value]
    return value


def _hex_as_base64(value: str) -> str:
    try:
        return base64.b64encode(bytes.fromhex(value)).decode()
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a hex-encoded id") from exc


def refused_in_answer(kind: Kind, content_type: str, body: bytes) -> tuple[int, str]:
    """(leaves refused, why) from a 200 `Export*ServiceResponse`'s `partial_success`, read in
    its encoding; (0, "") when it reports none or cannot be read (a 2xx is a delivery)."""
    response = kind.response()
    try:
        if content_type.startswith("application/x-protobuf"):
            response.ParseFromString(body)
        elif body.strip():
            json_format.Parse(body, response, ignore_unknown_fields=True)
    except (DecodeError, json_format.ParseError):
        return 0, ""
    success = response.partial_success  # type: ignore[attr-defined]
    return int(getattr(success, kind.rejected_field)), str(success.error_message)


def halve(kind: Kind, request: Message) -> tuple[Message, Message]:
    """Two requests sharing out the leaves: the first level (resources, scopes, metrics, data
    points) with more than one entry is cut in two, the levels above it copied into both.
    Needs at least two leaves."""
    halves = _halve(request, kind.path)
    assert halves is not None, "a request with fewer than two leaves cannot be halved"
    return halves


def _halve(message: Any, path: tuple[Entries, ...]) -> tuple[Any, Any] | None:
    entries_of, *deeper = path
    entries = entries_of(message)
    if len(entries) > 1:
        first, second = _copy(message), _copy(message)
        half = len(entries) // 2
        del entries_of(first)[half:]
        del entries_of(second)[:half]
        return first, second
    if len(entries) == 1 and deeper:
        inner = _halve(entries[0], tuple(deeper))
        if inner is None:
            return None
        first, second = _copy(message), _copy(message)
        entries_of(first)[0].CopyFrom(inner[0])
        entries_of(second)[0].CopyFrom(inner[1])
        return first, second
    return None


def _copy(message: Any) -> Any:
    copied = type(message)()
    copied.CopyFrom(message)
    return copied


def fit(kind: Kind, request: Message, room: int) -> list[Message]:
    """`request` cut into requests of at most `room` serialized bytes (halving until each
    fits; a single leaf larger than `room` stays alone, for Datadog to judge)."""
    if request.ByteSize() <= room or kind.count(request) < 2:
        return [request]
    first, second = halve(kind, request)
    return [*fit(kind, first, room), *fit(kind, second, room)]
