"""Rows of OTLP signals are serialized export requests: joined bytes are one request, and a
request is halved and fitted under a size without losing or duplicating a leaf."""

from __future__ import annotations

from google.protobuf.message import Message
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from service import otlp


def _traces(resources: int, spans: int) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for r in range(resources):
        entry = request.resource_spans.add()
        entry.resource.attributes.add(key="service.name").value.string_value = f"svc-{r}"
        scope = entry.scope_spans.add()
        for s in range(spans):
            scope.spans.add(name=f"{r}-{s}", trace_id=b"\x01" * 16, span_id=bytes([s + 1]) * 8)
    return request


def _names(request: Message) -> list[str]:
    return [span.name for _, span, _ in otlp.TRACES.leaves(request)]


def test_joined_rows_are_one_request_holding_every_resource() -> None:
    first, second = _traces(2, 3), _traces(1, 4)

    joined = ExportTraceServiceRequest.FromString(
        first.SerializeToString() + second.SerializeToString()
    )

    assert len(joined.resource_spans) == 3
    assert _names(joined) == _names(first) + _names(second)


def test_halving_cuts_the_first_level_with_two_entries() -> None:
    by_resource = otlp.halve(otlp.TRACES, _traces(3, 2))
    by_span = otlp.halve(otlp.TRACES, _traces(1, 5))

    assert [_names(half) for half in by_resource] == [["0-0", "0-1"], ["1-0", "1-1", "2-0", "2-1"]]
    assert [_names(half) for half in by_span] == [["0-0", "0-1"], ["0-2", "0-3", "0-4"]]
    kept = by_span[1]
    assert isinstance(kept, ExportTraceServiceRequest)
    assert kept.resource_spans[0].resource.attributes[0].value.string_value == "svc-0"


def test_metrics_are_halved_down_to_data_points() -> None:
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add(name="m")
    for value in range(4):
        metric.gauge.data_points.add(as_int=value)

    first, second = otlp.halve(otlp.METRICS, request)

    assert [otlp.METRICS.count(half) for half in (first, second)] == [2, 2]
    assert isinstance(first, ExportMetricsServiceRequest)
    assert first.resource_metrics[0].scope_metrics[0].metrics[0].name == "m"


def test_fit_keeps_every_span_once_in_pieces_within_the_room() -> None:
    request = _traces(3, 40)

    pieces = otlp.fit(otlp.TRACES, request, 1000)

    assert all(piece.ByteSize() <= 1000 for piece in pieces)
    assert sorted(name for piece in pieces for name in _names(piece)) == sorted(_names(request))
