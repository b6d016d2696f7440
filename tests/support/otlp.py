"""The official OpenTelemetry SDK exporting as a partner's service would, and what it sent.

`export_telemetry` runs the SDK with the stock OTLP/HTTP protobuf exporters
(`stock_exporters`), configured only by the standard `OTEL_EXPORTER_OTLP_*` settings (endpoint, headers, compression, and delta
temporality, which Datadog's OTLP intake asks for anyway). Each exporter is watched by a
wrapper that keeps the request it serializes (the SDK's own encoder), so a test can compare
what arrived with what left. `items` flattens requests into the emulator's canonical items.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Link, SpanKind


@dataclass
class Telemetry:
    """The export requests the SDK sent, per signal, and whether each export succeeded."""

    spans: list[Message] = field(default_factory=list)
    metrics: list[Message] = field(default_factory=list)
    logs: list[Message] = field(default_factory=list)
    results: list[bool] = field(default_factory=list)


class _Spans(SpanExporter):
    def __init__(self, inner: OTLPSpanExporter, sent: Telemetry) -> None:
        self.inner, self.sent = inner, sent

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.sent.spans.append(encode_spans(spans))
        result = self.inner.export(spans)
        self.sent.results.append(result is SpanExportResult.SUCCESS)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()  # type: ignore[no-untyped-call]


class _Metrics(MetricExporter):
    def __init__(self, inner: OTLPMetricExporter, sent: Telemetry) -> None:
        super().__init__(inner._preferred_temporality, inner._preferred_aggregation)
        self.inner, self.sent = inner, sent

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        self.sent.metrics.append(encode_metrics(metrics_data))
        result = self.inner.export(metrics_data, timeout_millis, **kwargs)
        self.sent.results.append(result is MetricExportResult.SUCCESS)
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown(timeout_millis, **kwargs)


class _Logs(LogRecordExporter):
    def __init__(self, inner: OTLPLogExporter, sent: Telemetry) -> None:
        self.inner, self.sent = inner, sent

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        self.sent.logs.append(encode_logs(batch))
        result = self.inner.export(batch)
        self.sent.results.append(result is LogRecordExportResult.SUCCESS)
        return result

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.inner.shutdown()  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class Exporters:
    """The three stock exporters (each watched), and what they sent."""

    spans: SpanExporter
    metrics: MetricExporter
    logs: LogRecordExporter
    sent: Telemetry


def stock_exporters(endpoint: str, headers: str, *, compression: str = "none") -> Exporters:
    """The stock OTLP/HTTP exporters built as a service's start-up builds them: from the
    environment alone, here `endpoint` (an OTLP base URL), `headers` (in
    `OTEL_EXPORTER_OTLP_HEADERS` syntax), `compression` and delta temporality. Call it from one
    thread at a time (it sets the process environment while the exporters read it)."""
    environment = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_HEADERS": headers,
        "OTEL_EXPORTER_OTLP_COMPRESSION": compression,
        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta",
    }
    sent = Telemetry()
    with mock.patch.dict(os.environ, environment):
        return Exporters(
            _Spans(OTLPSpanExporter(), sent),
            _Metrics(OTLPMetricExporter(), sent),
            _Logs(OTLPLogExporter(), sent),
            sent,
        )


def export_telemetry(
    exporters: Exporters, *, spans: int, logs: int, service: str = "checkout"
) -> Telemetry:
    """Export `spans` spans (nested, with attributes, events and links), two rounds of delta
    metrics (a counter, a histogram, a gauge) and `logs` log records. Blocking: the SDK
    exports from its own threads; call it with `asyncio.to_thread`."""
    resource = Resource.create({"service.name": service, "deployment.environment": "test"})
    _traces(TracerProvider(resource=resource), exporters.spans, spans)
    _metrics(resource, exporters.metrics)
    _logs(LoggerProvider(resource=resource), exporters.logs, logs)
    return exporters.sent


def _traces(provider: TracerProvider, exporter: SpanExporter, count: int) -> None:
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=256))
    tracer = provider.get_tracer("partner.jobs", "1.2.3")
    made = 0
    while made < count:
        with tracer.start_as_current_span("GET /checkout", kind=SpanKind.SERVER) as root:
            root.set_attribute("http.request.method", "GET")
            root.add_event("cache miss", {"cache.key": f"cart-{made}"})
            made += 1
            if made < count:
                link = Link(root.get_span_context(), {"link.kind": "follows"})
                with tracer.start_as_current_span("SELECT cart", links=[link]) as child:
                    child.set_attribute("db.rows", made)
                    made += 1
    provider.shutdown()


def _metrics(resource: Resource, exporter: MetricExporter) -> None:
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(resource=resource, metric_readers=[reader])
    meter = provider.get_meter("partner.jobs")
    requests = meter.create_counter("partner.requests", unit="1")
    latency = meter.create_histogram("partner.latency", unit="ms")
    queue = meter.create_gauge("partner.queue.depth")
    for round_ in range(2):
        for route in ("/checkout", "/cart"):
            requests.add(3 + round_, {"route": route})
            latency.record(12.5 * (round_ + 1), {"route": route})
        queue.set(7 - round_)
        provider.force_flush()
    provider.shutdown()


def _logs(provider: LoggerProvider, exporter: LogRecordExporter, count: int) -> None:
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    logger = provider.get_logger("partner.jobs")
    for index in range(count):
        logger.emit(body=f"job {index} done", severity_text="INFO", attributes={"job": index})
    provider.shutdown()


def items(signal: str, requests: Sequence[Message]) -> list[dict[str, Any]]:
    """The requests flattened as the emulator records them: one item per span (traces), metric
    (otlp_metrics) or log record (otlp_logs), with its resource and scope, in the canonical
    OTLP JSON form (ids in hex, enums as integers, defaults left out)."""
    resources, scopes, leaves, leaf = {
        "traces": ("resourceSpans", "scopeSpans", "spans", "span"),
        "otlp_metrics": ("resourceMetrics", "scopeMetrics", "metrics", "metric"),
        "otlp_logs": ("resourceLogs", "scopeLogs", "logRecords", "logRecord"),
    }[signal]
    flattened = []
    for request in requests:
        document = as_json(request)
        for entry in document.get(resources, []):
            for scope in entry.get(scopes, []):
                for value in scope.get(leaves, []):
                    flattened.append(
                        {
                            "resource": entry.get("resource", {}),
                            "scope": scope.get("scope", {}),
                            leaf: value,
                        }
                    )
    return flattened


def as_json(request: Message) -> dict[str, Any]:
    """A request in OTLP's JSON encoding, canonical: ids in hex, enums as integers, 64-bit
    integers as strings, defaults left out."""
    document: dict[str, Any] = _hex_ids(
        json_format.MessageToDict(request, use_integers_for_enums=True)
    )
    return document


def _hex_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: base64.b64decode(item).hex()
            if key in ("traceId", "spanId", "parentSpanId")
            else _hex_ids(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_hex_ids(item) for item in value]
    return value
