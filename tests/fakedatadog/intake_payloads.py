"""Valid intake payloads of each signal, and a sender that encodes them as asked."""

from __future__ import annotations

import base64
import gzip
import json
import time
import zlib
from http import HTTPStatus
from typing import Any

import httpx
import zstandard
from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.fakedatadog.helpers import Emu, Tenant

ROUTES = {
    "metrics": ("api", "/api/v2/series"),
    "logs": ("http-intake.logs", "/api/v2/logs"),
    "events": ("api", "/api/v1/events"),
    "service_checks": ("api", "/api/v1/check_run"),
    "incidents": ("api", "/api/v2/incidents"),
    "traces": ("trace.agent", "/v1/traces"),
    "otlp_metrics": ("otlp", "/v1/metrics"),
    "otlp_logs": ("otlp", "/v1/logs"),
}
OTLP_SIGNALS = ("traces", "otlp_metrics", "otlp_logs")
OTLP_REQUESTS: dict[str, type[Message]] = {
    "traces": ExportTraceServiceRequest,
    "otlp_metrics": ExportMetricsServiceRequest,
    "otlp_logs": ExportLogsServiceRequest,
}
PROTOBUF = "application/x-protobuf"
# google.rpc.Code values of the OTLP answers these tests see.
INVALID_ARGUMENT = 3
PERMISSION_DENIED = 7


def url(signal: str, domain: str) -> str:
    prefix, path = ROUTES[signal]
    return f"/{prefix}.{domain}{path}"


def dumps(document: Any) -> bytes:
    """Compact JSON, so that sizes are easy to reason about."""
    return json.dumps(document, separators=(",", ":")).encode()


def compress(raw: bytes, encoding: str | None) -> bytes:
    if encoding is None:
        return raw
    if encoding == "gzip":
        return gzip.compress(raw)
    if encoding == "deflate":
        return zlib.compress(raw)
    assert encoding == "zstd1"
    return zstandard.ZstdCompressor().compress(raw)


def refusal(signal: str, status: int, message: str) -> dict[str, Any]:
    """The error body the signal's host answers: `{"errors": [message]}`, except on the logs
    intake, whose errors are HTTPLogErrors objects (status, title, detail), and on the OTLP
    hosts, whose errors are OTLP/HTTP's google.rpc.Status (JSON for a JSON request)."""
    if signal in OTLP_SIGNALS:
        code = PERMISSION_DENIED if status == 403 else INVALID_ARGUMENT
        return {"code": code, "message": message}
    if signal != "logs":
        return {"errors": [message]}
    error = {"status": str(status), "title": HTTPStatus(status).phrase, "detail": message}
    return {"errors": [error]}


def message(answer: httpx.Response) -> str:
    """The error message of an error answer, in any of the three shapes."""
    body = answer.json()
    if "message" in body:
        return str(body["message"])
    first = body["errors"][0]
    return str(first["detail"] if isinstance(first, dict) else first)


def protobuf(signal: str, document: dict[str, Any]) -> bytes:
    """An OTLP JSON document serialized as the official protobuf message (ids are hex in OTLP
    JSON, base64 in proto3's own JSON mapping)."""
    message = OTLP_REQUESTS[signal]()
    json_format.ParseDict(_ids_as_base64(document), message)
    return message.SerializeToString()


def _ids_as_base64(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: base64.b64encode(bytes.fromhex(item)).decode()
            if key in ("traceId", "spanId", "parentSpanId")
            else _ids_as_base64(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_ids_as_base64(item) for item in value]
    return value


def now() -> int:
    return int(time.time())


def series(points: int = 2, *, at: int | None = None, tag: str = "env:test") -> dict[str, Any]:
    stamp = now() if at is None else at
    return {
        "series": [
            {
                "metric": "partner.requests",
                "type": 1,
                "interval": 10,
                "points": [{"timestamp": stamp - i, "value": 1.5} for i in range(points)],
                "tags": [tag],
                "resources": [{"type": "host", "name": "web-1"}],
                "unit": "request",
            }
        ]
    }


def logs(count: int = 2, message: str = "hello") -> list[dict[str, Any]]:
    return [
        {
            "message": f"{message} {i}" if count > 1 else message,
            "ddsource": "partner",
            "ddtags": "env:test,team:a",
            "hostname": "web-1",
            "service": "checkout",
            "http": {"status_code": 200},
            "custom_attribute": [1, "two"],
        }
        for i in range(count)
    ]


def event(**overrides: Any) -> dict[str, Any]:
    return {
        "title": "Deploy finished",
        "text": "Version 7 is live",
        "alert_type": "success",
        "priority": "low",
        "tags": ["env:test"],
        "aggregation_key": "deploy-7",
        "date_happened": now(),
        "source_type_name": "partner",
        **overrides,
    }


def service_checks(count: int = 2) -> list[dict[str, Any]]:
    return [
        {
            "check": "partner.can_connect",
            "host_name": "web-1",
            "status": i % 4,
            "tags": ["env:test"],
            "timestamp": now(),
            "message": "fine",
        }
        for i in range(count)
    ]


def incident(title: str = "Checkout is down") -> dict[str, Any]:
    return {
        "data": {
            "type": "incidents",
            "attributes": {
                "title": title,
                "customer_impacted": True,
                "customer_impact_scope": "Checkout fails for every customer",
            },
        }
    }


def span(index: int = 0, **overrides: Any) -> dict[str, Any]:
    start = time.time_ns()
    return {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": f"{index + 1:016x}",
        "name": "GET /checkout",
        "kind": 2,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + 1_000_000),
        "attributes": [{"key": "http.method", "value": {"stringValue": "GET"}}],
        **overrides,
    }


def traces(spans: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]}
    return {
        "resourceSpans": [
            {
                "resource": resource,
                "scopeSpans": [
                    {"scope": {"name": "partner"}, "spans": spans or [span(0), span(1)]}
                ],
            }
        ]
    }


def otlp_metrics(names: tuple[str, ...] = ("partner.requests", "partner.errors")) -> dict[str, Any]:
    stamp = str(time.time_ns())
    metrics = [
        {
            "name": name,
            "sum": {
                "aggregationTemporality": 1,
                "isMonotonic": True,
                "dataPoints": [{"asInt": "3", "timeUnixNano": stamp}],
            },
        }
        for name in names
    ]
    return {"resourceMetrics": [{"scopeMetrics": [{"scope": {"name": "p"}, "metrics": metrics}]}]}


def otlp_logs(count: int = 2) -> dict[str, Any]:
    records = [
        {
            "timeUnixNano": str(time.time_ns()),
            "severityNumber": 9,
            "severityText": "INFO",
            "body": {"stringValue": f"hello {i}"},
        }
        for i in range(count)
    ]
    return {"resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]}


async def submit(
    emu: Emu,
    tenant: Tenant,
    signal: str,
    document: Any = None,
    *,
    raw: bytes | None = None,
    encoding: str | None = None,
    domain: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST `document` (or `raw` bytes) to the signal's route with the tenant's credential."""
    body = compress(dumps(document) if raw is None else raw, encoding)
    sent = {"Content-Type": "application/json"}
    if signal == "incidents":
        sent["Authorization"] = f"Bearer {tenant.access_token}"
    elif signal in OTLP_SIGNALS:
        sent["dd-api-key"] = tenant.api_key
    else:
        sent["DD-API-KEY"] = tenant.api_key
    if encoding is not None:
        sent["Content-Encoding"] = encoding
    sent.update(headers or {})
    return await emu.http.post(url(signal, domain or tenant.domain), content=body, headers=sent)
