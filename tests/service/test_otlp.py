"""OpenTelemetry as it is exported: the official SDK's OTLP/HTTP exporters, pointed at ddbridge
with only the endpoint and a header, reach each org's Datadog OTLP intake unchanged; and the
OTLP routes answer as the OTLP/HTTP specification says."""

from __future__ import annotations

import asyncio
import gzip
import json
import secrets
import time
from typing import Any

import httpx
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from service.sites import KNOWN_SITES
from tests.support import otlp
from tests.support.stack import Stack

PROTOBUF = "application/x-protobuf"
OTLP_SITES = [site for site in KNOWN_SITES if site.has_otlp_intake]
SIGNALS = {"spans": "traces", "metrics": "otlp_metrics", "logs": "otlp_logs"}


def _base(stack: Stack, connection_id: str) -> str:
    """The exporter's base endpoint for a connection (it appends `/v1/<signal>`)."""
    return f"{stack.api_url}/internal/v1/connections/{connection_id}/otlp"


def _headers(stack: Stack) -> str:
    """`OTEL_EXPORTER_OTLP_HEADERS` carrying the internal API token."""
    return f"Authorization=Bearer%20{stack.internal_token}"


def _canonical(item: dict[str, Any]) -> str:
    return json.dumps(item, sort_keys=True)


async def _arrived(stack: Stack, dd_oid: str, sent: otlp.Telemetry) -> dict[str, list[str]]:
    """What the emulator holds for the org, per signal, once it holds as much as was sent."""
    arrived = {}
    for name, signal in SIGNALS.items():
        expected = otlp.items(signal, getattr(sent, name))
        items = await stack.wait_received(dd_oid, signal, len(expected))
        arrived[signal] = sorted(_canonical(i["item"]) for i in items)
    return arrived


def _expected(sent: otlp.Telemetry) -> dict[str, list[str]]:
    return {
        signal: sorted(_canonical(item) for item in otlp.items(signal, getattr(sent, name)))
        for name, signal in SIGNALS.items()
    }


async def test_the_sdk_reaches_every_site_with_an_otlp_intake(
    stack: Stack, account_id: str
) -> None:
    """Spans, delta metrics and logs from the stock exporters arrive for the right org, with
    the same content, on each of the seven sites that have Datadog's OTLP intake."""
    connections = [
        await stack.connected(f"{account_id}-{site.name}", site.domain) for site in OTLP_SITES
    ]

    exporters = [
        otlp.stock_exporters(_base(stack, connection_id), _headers(stack))
        for connection_id, _ in connections
    ]
    sent = await asyncio.gather(
        *(
            asyncio.to_thread(
                otlp.export_telemetry, built, spans=40, logs=15, service=f"svc-{site.name}"
            )
            for site, built in zip(OTLP_SITES, exporters, strict=True)
        )
    )

    for site, (_, dd_oid), telemetry in zip(OTLP_SITES, connections, sent, strict=True):
        assert all(telemetry.results), site.name
        assert await _arrived(stack, dd_oid, telemetry) == _expected(telemetry), site.name
        assert len(otlp.items("traces", telemetry.spans)) == 40
        assert len(otlp.items("otlp_logs", telemetry.logs)) == 15
        for signal, host in (
            ("traces", site.trace_host),
            ("otlp_metrics", site.otlp_host),
            ("otlp_logs", site.otlp_host),
        ):
            assert {i["host"] for i in await stack.received(dd_oid, signal)} == {host}
    deliveries = await stack.datadog_requests(path="/v1/traces")
    assert {r["headers"]["content-type"] for r in deliveries} == {PROTOBUF}
    assert {r["headers"]["content-encoding"] for r in deliveries} == {"gzip"}


async def test_gzip_and_json_exports_arrive_the_same(stack: Stack, account_id: str) -> None:
    """The SDK with gzip compression, and the same requests in OTLP's JSON encoding (plain and
    gzip), all arrive unchanged."""
    by_gzip, dd_gzip = await stack.connected(f"{account_id}-gzip")
    by_json, dd_json = await stack.connected(f"{account_id}-json")

    exporters = otlp.stock_exporters(_base(stack, by_gzip), _headers(stack), compression="gzip")
    sent = await asyncio.to_thread(otlp.export_telemetry, exporters, spans=25, logs=10)
    answers = []
    for name, path in (("spans", "traces"), ("metrics", "metrics"), ("logs", "logs")):
        for index, request in enumerate(getattr(sent, name)):
            body = json.dumps(otlp.as_json(request)).encode()
            headers = {"Content-Type": "application/json"}
            if index % 2:
                body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
            url = f"/internal/v1/connections/{by_json}/otlp/v1/{path}"
            answers.append(await stack.api.post(url, content=body, headers=headers))

    assert all(sent.results)
    assert {(a.status_code, a.headers["content-type"], a.text) for a in answers} == {
        (200, "application/json", "{}")
    }
    assert await _arrived(stack, dd_gzip, sent) == _expected(sent)
    assert await _arrived(stack, dd_json, sent) == _expected(sent)


async def test_gzip_members_and_bombs(stack: Stack, account_id: str) -> None:
    """Two gzip members are one body (here two serialized requests: one request of both); a
    body inflating past MAX_BODY_BYTES is refused without inflating the rest."""
    connection_id, dd_oid = await stack.connected(account_id)
    url = f"/internal/v1/connections/{connection_id}/otlp/v1/traces"
    headers = {"Content-Type": PROTOBUF, "Content-Encoding": "gzip"}
    first, second = _trace_request(2), _trace_request(3)
    members = gzip.compress(first.SerializeToString()) + gzip.compress(second.SerializeToString())
    bomb = gzip.compress(b"\x00" * (17 * 1024 * 1024))

    joined = await stack.api.post(url, content=members, headers=headers)
    exploded = await stack.api.post(url, content=bomb, headers=headers)

    assert joined.status_code == 200
    assert len(await stack.wait_received(dd_oid, "traces", 5)) == 5
    assert exploded.status_code == 413
    status = status_pb2.Status.FromString(exploded.content)
    assert status.message.startswith("the body inflates past the limit of 16777216 bytes")


async def test_malformed_protobuf_is_refused_with_400(stack: Stack, account_id: str) -> None:
    connection_id, _ = await stack.connected(account_id)

    answer = await _post(stack, connection_id, "traces", b"\x0a\x05\x0a")

    assert (answer.status_code, answer.headers["content-type"]) == (400, PROTOBUF)
    status = status_pb2.Status.FromString(answer.content)
    assert status.code == 3  # INVALID_ARGUMENT
    assert status.message.startswith("the body is not a protobuf ExportTraceServiceRequest")
    assert _reason(status) == "malformed_export"
    view = (await stack.api.get(f"/internal/v1/connections/{connection_id}")).json()
    assert all(p["pending_items"] == 0 for p in view["delivery"])


async def test_a_cumulative_metric_gets_a_partial_success_naming_it(
    stack: Stack, account_id: str
) -> None:
    connection_id, dd_oid = await stack.connected(account_id)
    request = _metrics_request({"partner.requests": "delta", "partner.total": "cumulative"})

    answer = await _post(stack, connection_id, "metrics", request.SerializeToString())

    assert (answer.status_code, answer.headers["content-type"]) == (200, PROTOBUF)
    success = ExportMetricsServiceResponse.FromString(answer.content).partial_success
    assert success.rejected_data_points == 2
    assert success.error_message == (
        "refused 2 data point(s): metric 'partner.total' has cumulative temporality; Datadog's "
        "OTLP intake takes delta metrics only (set the exporter's temporality preference to "
        "delta)"
    )
    [item] = await stack.wait_received(dd_oid, "otlp_metrics", 1)
    assert item["item"]["metric"]["name"] == "partner.requests"
    assert len(item["item"]["metric"]["sum"]["dataPoints"]) == 2


async def test_invalid_spans_are_a_partial_success_and_the_rest_arrives(
    stack: Stack, account_id: str
) -> None:
    connection_id, dd_oid = await stack.connected(account_id)
    document = _spans_document(3)
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["traceId"] = "00" * 16

    answer = await stack.api.post(
        f"/internal/v1/connections/{connection_id}/otlp/v1/traces", json=document
    )

    assert answer.status_code == 200
    assert answer.json() == {
        "partialSuccess": {
            "rejectedSpans": "1",
            "errorMessage": "refused 1 span(s): /resourceSpans/0/scopeSpans/0/spans/1: traceId "
            "must be 16 bytes, not all zero",
        }
    }
    spans = await stack.wait_received(dd_oid, "traces", 2)
    assert [s["item"]["span"]["name"] for s in spans] == ["op-0", "op-2"]


async def test_a_fed_site_connection_is_refused_naming_the_site(
    stack: Stack, account_id: str
) -> None:
    connection_id, _ = await stack.connected(account_id, "ddog-gov.com")
    bodies = {
        "traces": _trace_request(1).SerializeToString(),
        "metrics": _metrics_request({"partner.requests": "delta"}).SerializeToString(),
        "logs": b"",
    }

    answers = {path: await _post(stack, connection_id, path, body) for path, body in bodies.items()}

    for path, answer in answers.items():
        assert (answer.status_code, answer.headers["content-type"]) == (409, PROTOBUF), path
        status = status_pb2.Status.FromString(answer.content)
        assert status.message == (
            "US1-FED (ddog-gov.com) has no agentless OTLP intake; nothing was accepted"
        )
        assert _reason(status) == "connection_not_deliverable"


async def test_failures_are_statuses_in_the_request_encoding(stack: Stack, account_id: str) -> None:
    connection_id, _ = await stack.connected(account_id)
    url = f"{stack.api_url}/internal/v1/connections/{connection_id}/otlp/v1/logs"

    async with httpx.AsyncClient() as stranger:
        unauthorized = await stranger.post(
            url, content=b"{}", headers={"Content-Type": "application/json"}
        )
    wrong_type = await stack.api.post(url, content=b"hello", headers={"Content-Type": "text/plain"})
    unknown = await _post(stack, "6f1f1c4e-1111-4b6e-9f4e-5d0c2a1b3c4d", "logs", b"")

    assert unauthorized.status_code == 401
    assert unauthorized.json()["code"] == 16  # UNAUTHENTICATED
    assert unauthorized.json()["message"] == "a valid internal API bearer token is required"
    assert wrong_type.status_code == 415
    assert wrong_type.json()["message"].startswith("Content-Type 'text/plain' is not an OTLP/HTTP")
    assert (unknown.status_code, unknown.headers["content-type"]) == (404, PROTOBUF)
    assert _reason(status_pb2.Status.FromString(unknown.content)) == "not_found"


async def test_an_export_over_datadogs_limit_goes_as_requests_within_it(
    stack: Stack, account_id: str
) -> None:
    """7 MB of spans in one export: cut into rows under the trace intake's 3.2 MB, so every
    request Datadog gets is within its limit (the emulator refuses any over it with 413)."""
    connection_id, dd_oid = await stack.connected(account_id)
    request = _trace_request(700)
    for index, span in enumerate(request.resource_spans[0].scope_spans[0].spans):
        span.attributes.add(key="payload").value.string_value = secrets.token_hex(5000)
        span.name = f"op-{index}"

    answer = await _post(stack, connection_id, "traces", request.SerializeToString())

    assert answer.status_code == 200, answer.text
    assert len(await stack.wait_received(dd_oid, "traces", 700, deadline_seconds=60)) == 700
    statuses = [r["status"] for r in await stack.datadog_requests(path="/v1/traces")]
    assert len(statuses) >= 3
    assert set(statuses) == {200}


async def test_a_413_from_datadog_splits_protobuf_rows(stack: Stack, account_id: str) -> None:
    """Datadog's 413 splits the coalesced protobuf batch (rows, then a row's spans) and
    every span still arrives once."""
    connection_id, dd_oid = await stack.connected(account_id)
    await stack.emu.post(
        "/_emulator/faults",
        json={"path": "/v1/traces", "status": 413, "count": 2, "dd_oid": dd_oid},
    )

    answer = await stack.api.post(
        f"/internal/v1/connections/{connection_id}/otlp/v1/traces", json=_spans_document(8)
    )

    assert answer.status_code == 200
    spans = await stack.wait_received(dd_oid, "traces", 8)
    assert sorted(s["item"]["span"]["name"] for s in spans) == sorted(f"op-{i}" for i in range(8))
    statuses = [r["status"] for r in await stack.datadog_requests(path="/v1/traces")]
    assert statuses[:2] == [413, 413]
    assert statuses.count(200) >= 2


async def test_a_400_status_from_datadog_dead_letters_the_span_with_its_message(
    stack: Stack, account_id: str
) -> None:
    """A refusal is isolated span by span; the dead letter keeps the Status's message and the
    span's protobuf, and the other span arrives."""
    connection_id, dd_oid = await stack.connected(account_id)
    refusal = {"code": 3, "message": "this span is refused"}
    await stack.emu.post(  # the batch of two, then its first half
        "/_emulator/faults",
        json={"path": "/v1/traces", "status": 400, "count": 2, "dd_oid": dd_oid, "body": refusal},
    )

    answer = await stack.api.post(
        f"/internal/v1/connections/{connection_id}/otlp/v1/traces", json=_spans_document(2)
    )

    assert answer.status_code == 200
    [letter] = await stack.wait_dead_letters(connection_id, 1)
    assert (letter["signal"], letter["kind"], letter["status"]) == ("otlp_traces", "rejected", 400)
    assert (letter["reason"], letter["item_count"]) == ("this span is refused", 1)
    [arrived] = await stack.wait_received(dd_oid, "traces", 1)
    assert arrived["item"]["span"]["name"] == "op-1"


async def test_a_partial_success_from_datadog_is_counted_as_dropped(
    stack: Stack, account_id: str
) -> None:
    """Datadog took the request but refused two data points of it: they cannot be told apart
    to keep them, so the worker counts them (and logs why) instead of losing them unseen."""
    connection_id, dd_oid = await stack.connected(account_id, "uk1.datadoghq.com")
    partial = {"partialSuccess": {"rejectedDataPoints": "2", "errorMessage": "too many tags"}}
    await stack.emu.post(
        "/_emulator/faults",
        json={"path": "/v1/metrics", "status": 200, "count": 1, "dd_oid": dd_oid, "body": partial},
    )
    request = _metrics_request({"partner.requests": "delta"})

    answer = await _post(stack, connection_id, "metrics", request.SerializeToString())

    assert answer.status_code == 200
    dropped = (
        'ddbridge_dropped_items_total{reason="refused_by_datadog",signal="otlp_metrics",'
        'site="uk1.datadoghq.com"} 2.0'
    )
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient() as http:
        while dropped not in (figures := (await http.get(stack.worker_metrics_url)).text):
            assert time.monotonic() < deadline, figures
            await asyncio.sleep(0.05)
    view = (await stack.api.get(f"/internal/v1/connections/{connection_id}")).json()
    [metrics] = [p for p in view["delivery"] if p["signal"] == "otlp_metrics"]
    assert (metrics["delivered_items"], metrics["pending_items"]) == (2, 0)


async def _post(stack: Stack, connection_id: str, path: str, body: bytes) -> httpx.Response:
    return await stack.api.post(
        f"/internal/v1/connections/{connection_id}/otlp/v1/{path}",
        content=body,
        headers={"Content-Type": PROTOBUF},
    )


def _reason(status: Any) -> str:
    [detail] = status.details
    info = error_details_pb2.ErrorInfo()
    assert detail.Unpack(info)
    assert info.domain == "ddbridge"
    return str(info.reason)


def _trace_request(count: int) -> ExportTraceServiceRequest:
    """`count` spans `op-0`, `op-1`, ... of one trace, one resource and scope."""
    now = time.time_ns()
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name").value.string_value = "jobs"
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "partner"
    for index in range(count):
        scope.spans.add(
            trace_id=bytes.fromhex("5b8efff798038103d269b633813fc60c"),
            span_id=(index + 1).to_bytes(8, "big"),
            name=f"op-{index}",
            kind=1,
            start_time_unix_nano=now - 1000,
            end_time_unix_nano=now,
        )
    return request


def _spans_document(count: int) -> dict[str, Any]:
    """`_trace_request` in OTLP's JSON encoding."""
    return otlp.as_json(_trace_request(count))


def _metrics_request(temporalities: dict[str, str]) -> ExportMetricsServiceRequest:
    """Monotonic sums of two data points each, with the given temporality (delta or
    cumulative)."""
    now = time.time_ns()
    request = ExportMetricsServiceRequest()
    scope = request.resource_metrics.add().scope_metrics.add()
    for name, temporality in temporalities.items():
        metric = scope.metrics.add(name=name)
        metric.sum.aggregation_temporality = AggregationTemporality.Value(
            f"AGGREGATION_TEMPORALITY_{temporality.upper()}"
        )
        metric.sum.is_monotonic = True
        for value in (1, 2):
            point = metric.sum.data_points.add(as_int=value, time_unix_nano=now)
            point.start_time_unix_nano = now - 10_000_000_000
    return request
