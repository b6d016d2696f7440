"""Intake routes: each accepts its payload on each encoding, on the right host and credential."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)

from tests.fakedatadog import intake_payloads as p
from tests.fakedatadog.helpers import Emu, Tenant

KEYED_SIGNALS = ["metrics", "logs", "events", "service_checks", *p.OTLP_SIGNALS]
DOMAIN = "datadoghq.eu"
FORBIDDEN = {"errors": ["Forbidden"]}


@pytest.fixture
async def tenant(emu: Emu) -> Tenant:
    return await emu.tenant(DOMAIN)


@pytest.mark.parametrize("encoding", [None, "gzip", "deflate", "zstd1"])
async def test_series_accepted_on_each_encoding(emu: Emu, tenant: Tenant, encoding: str) -> None:
    answer = await p.submit(emu, tenant, "metrics", p.series(3), encoding=encoding)

    assert (answer.status_code, answer.json()) == (202, {"errors": []})
    stored = await emu.intake(tenant.dd_oid, "metrics")
    assert stored["requests"] == 1
    [item] = stored["items"]
    assert item["item"] == p.series(3, at=item["item"]["points"][0]["timestamp"])["series"][0]
    assert item["host"] == f"api.{DOMAIN}"
    assert item["encoding"] == (encoding or "identity")
    assert item["raw_size"] == len(p.compress(p.dumps(p.series(3)), encoding))


@pytest.mark.parametrize("encoding", [None, "gzip", "deflate"])
async def test_logs_accepted_on_each_encoding(emu: Emu, tenant: Tenant, encoding: str) -> None:
    answer = await p.submit(emu, tenant, "logs", p.logs(3), encoding=encoding)

    assert (answer.status_code, answer.json()) == (202, {})
    stored = await emu.intake(tenant.dd_oid, "logs")
    assert [i["item"] for i in stored["items"]] == p.logs(3)
    assert {i["host"] for i in stored["items"]} == {f"http-intake.logs.{DOMAIN}"}


async def test_a_single_log_object_is_one_line(emu: Emu, tenant: Tenant) -> None:
    answer = await p.submit(emu, tenant, "logs", {"message": "alone", "level": "info"})

    assert answer.status_code == 202
    assert [i["item"] for i in (await emu.intake(tenant.dd_oid, "logs"))["items"]] == [
        {"message": "alone", "level": "info"}
    ]


async def test_event_answer_has_datadogs_shape(emu: Emu, tenant: Tenant) -> None:
    sent = p.event()
    answer = await p.submit(emu, tenant, "events", sent)

    assert answer.status_code == 202
    body = answer.json()
    assert body["status"] == "ok"
    event = body["event"]
    assert event["id_str"] == str(event["id"])
    assert event["url"] == f"/event/event?id={event['id']}"
    for name in ("title", "text", "alert_type", "priority", "tags", "date_happened"):
        assert event[name] == sent[name]
    assert [i["item"] for i in (await emu.intake(tenant.dd_oid, "events"))["items"]] == [sent]


async def test_event_defaults(emu: Emu, tenant: Tenant) -> None:
    answer = await p.submit(emu, tenant, "events", {"title": "t", "text": "x"})

    event = answer.json()["event"]
    assert (event["alert_type"], event["priority"]) == ("info", "normal")
    assert abs(event["date_happened"] - p.now()) <= 2


async def test_service_checks_accepted(emu: Emu, tenant: Tenant) -> None:
    answer = await p.submit(emu, tenant, "service_checks", p.service_checks(4))

    assert (answer.status_code, answer.json()) == (202, {"status": "ok"})
    items = (await emu.intake(tenant.dd_oid, "service_checks"))["items"]
    assert [i["item"]["status"] for i in items] == [0, 1, 2, 3]


async def test_incident_is_created(emu: Emu, tenant: Tenant) -> None:
    first = await p.submit(emu, tenant, "incidents", p.incident("One"))
    second = await p.submit(emu, tenant, "incidents", p.incident("Two"))

    assert (first.status_code, second.status_code) == (201, 201)
    data = first.json()["data"]
    assert data["type"] == "incidents"
    uuid.UUID(data["id"])
    assert data["attributes"]["title"] == "One"
    assert data["attributes"]["customer_impacted"] is True
    assert [
        first.json()["data"]["attributes"]["public_id"],
        second.json()["data"]["attributes"]["public_id"],
    ] == [1, 2]
    assert len((await emu.intake(tenant.dd_oid, "incidents"))["items"]) == 2


@pytest.mark.parametrize("encoding", [None, "gzip"])
async def test_otlp_json_traces_accepted(emu: Emu, tenant: Tenant, encoding: str) -> None:
    answer = await p.submit(emu, tenant, "traces", p.traces(), encoding=encoding)

    assert (answer.status_code, answer.json()) == (200, {})
    items = (await emu.intake(tenant.dd_oid, "traces"))["items"]
    assert [i["item"]["span"]["spanId"] for i in items] == [f"{1:016x}", f"{2:016x}"]
    assert items[0]["item"]["resource"]["attributes"][0]["key"] == "service.name"
    assert items[0]["host"] == f"trace.agent.{DOMAIN}"


async def test_otlp_json_metrics_and_logs_accepted_on_the_otlp_host(
    emu: Emu, tenant: Tenant
) -> None:
    metrics = await p.submit(emu, tenant, "otlp_metrics", p.otlp_metrics(), encoding="gzip")
    logs = await p.submit(emu, tenant, "otlp_logs", p.otlp_logs(3))

    assert [(a.status_code, a.json()) for a in (metrics, logs)] == [(200, {}), (200, {})]
    stored = (await emu.intake(tenant.dd_oid, "otlp_metrics"))["items"]
    assert [i["item"]["metric"]["name"] for i in stored] == ["partner.requests", "partner.errors"]
    assert stored[0]["host"] == f"otlp.{DOMAIN}"
    lines = (await emu.intake(tenant.dd_oid, "otlp_logs"))["items"]
    assert [i["item"]["logRecord"]["body"]["stringValue"] for i in lines] == [
        "hello 0",
        "hello 1",
        "hello 2",
    ]


async def test_host_names_are_case_insensitive(emu: Emu, tenant: Tenant) -> None:
    shouting = DOMAIN.upper()
    headers = {"DD-API-KEY": tenant.api_key, "Content-Type": "application/json"}

    answer = await emu.http.post(
        f"/API.{shouting}/api/v2/series", content=p.dumps(p.series()), headers=headers
    )
    validate = await emu.http.get(f"/Api.{shouting}/api/v1/validate", headers=headers)

    assert (answer.status_code, validate.status_code) == (202, 200)
    recorded = await emu.requests()
    assert {r["host"] for r in recorded[-2:]} == {f"api.{DOMAIN}"}


@pytest.mark.parametrize("signal", p.OTLP_SIGNALS)
async def test_fed_sites_have_no_agentless_otlp_hosts(emu: Emu, signal: str) -> None:
    """Datadog lists neither `trace.agent.` nor `otlp.` hosts for US1-FED and US2-FED."""
    tenant = await emu.tenant("ddog-gov.com")
    document = {"traces": p.traces(), "otlp_metrics": p.otlp_metrics()}.get(signal, p.otlp_logs())

    answer = await p.submit(emu, tenant, signal, document)

    assert answer.status_code == 421
    assert f"unknown host '{p.ROUTES[signal][0]}.ddog-gov.com'" in answer.json()["errors"][0]


OTLP_DOCUMENTS: dict[str, Callable[[], dict[str, Any]]] = {
    "traces": lambda: p.traces([p.span(i) for i in range(3)]),
    "otlp_metrics": p.otlp_metrics,
    "otlp_logs": lambda: p.otlp_logs(3),
}


@pytest.mark.parametrize("encoding", [None, "gzip"])
@pytest.mark.parametrize("signal", p.OTLP_SIGNALS)
async def test_otlp_protobuf_is_read_with_the_official_definitions(
    emu: Emu, signal: str, encoding: str | None
) -> None:
    """The same request sent as protobuf and as JSON is recorded identically (the canonical
    OTLP JSON form); each answer is an empty Export*ServiceResponse in the request's encoding."""
    document = OTLP_DOCUMENTS[signal]()
    as_json, as_protobuf = await emu.tenant(DOMAIN), await emu.tenant(DOMAIN, name="Proto")

    json_answer = await p.submit(emu, as_json, signal, document, encoding=encoding)
    proto_answer = await p.submit(
        emu,
        as_protobuf,
        signal,
        raw=p.protobuf(signal, document),
        encoding=encoding,
        headers={"Content-Type": p.PROTOBUF},
    )

    assert (json_answer.status_code, json_answer.json()) == (200, {})
    assert (proto_answer.status_code, proto_answer.content) == (200, b"")
    assert proto_answer.headers["content-type"] == p.PROTOBUF
    by_json = [i["item"] for i in (await emu.intake(as_json.dd_oid, signal))["items"]]
    by_protobuf = [i["item"] for i in (await emu.intake(as_protobuf.dd_oid, signal))["items"]]
    assert by_protobuf == by_json
    assert len(by_json) == (3 if signal != "otlp_metrics" else 2)


async def test_recorded_spans_keep_hex_ids_and_every_field(emu: Emu, tenant: Tenant) -> None:
    span = p.span(0, parentSpanId=f"{9:016x}", kind=3)
    raw = p.protobuf("traces", p.traces([span]))

    answer = await p.submit(emu, tenant, "traces", raw=raw, headers={"Content-Type": p.PROTOBUF})

    assert answer.status_code == 200
    [item] = (await emu.intake(tenant.dd_oid, "traces"))["items"]
    assert item["item"]["span"] == span
    assert item["item"]["scope"] == {"name": "partner"}


async def test_malformed_protobuf_is_a_400_status_in_protobuf(emu: Emu, tenant: Tenant) -> None:
    headers = {"Content-Type": p.PROTOBUF}
    answer = await p.submit(emu, tenant, "traces", raw=b"\x0a\x05\x0a", headers=headers)

    assert answer.status_code == 400
    assert answer.headers["content-type"] == p.PROTOBUF
    status = Status.FromString(answer.content)
    assert status.code == p.INVALID_ARGUMENT
    assert status.message.startswith("Malformed payload: not a protobuf ExportTraceServiceRequest")
    assert await emu.counts() == {}


async def test_a_protobuf_span_is_checked_like_a_json_one(emu: Emu, tenant: Tenant) -> None:
    raw = p.protobuf("traces", p.traces([p.span(0), p.span(1, name="")]))

    answer = await p.submit(emu, tenant, "traces", raw=raw, headers={"Content-Type": p.PROTOBUF})

    assert answer.status_code == 400
    assert Status.FromString(answer.content).message == (
        "/resourceSpans/0/scopeSpans/0/spans/1/name: expected a non-empty string"
    )


@pytest.mark.parametrize("protobuf", [False, True])
async def test_metrics_that_are_not_delta_are_refused_by_name(
    emu: Emu, tenant: Tenant, protobuf: bool
) -> None:
    """Datadog's OTLP metrics intake takes delta temporality only: a cumulative sum is a partial
    success naming it, and the delta metric beside it is kept."""
    document = p.otlp_metrics(("partner.delta", "partner.total"))
    document["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][1]["sum"][
        "aggregationTemporality"
    ] = 2
    headers = {"Content-Type": p.PROTOBUF} if protobuf else {}
    raw = p.protobuf("otlp_metrics", document) if protobuf else p.dumps(document)

    answer = await p.submit(emu, tenant, "otlp_metrics", raw=raw, headers=headers)

    assert answer.status_code == 200
    expected = ExportMetricsServiceResponse()
    expected.partial_success.rejected_data_points = 1
    expected.partial_success.error_message = (
        "only delta temporality is accepted; refused the data points of 'partner.total'"
    )
    if protobuf:
        assert ExportMetricsServiceResponse.FromString(answer.content) == expected
    else:
        assert answer.json() == json_format.MessageToDict(expected)
    stored = (await emu.intake(tenant.dd_oid, "otlp_metrics"))["items"]
    assert [i["item"]["metric"]["name"] for i in stored] == ["partner.delta"]
    assert (await emu.counts())[tenant.dd_oid]["otlp_metrics"]["items"] == 1


async def test_otlp_errors_are_a_status_in_the_request_encoding(emu: Emu, tenant: Tenant) -> None:
    as_protobuf = {"Content-Type": p.PROTOBUF, "dd-api-key": "0" * 32}
    as_json = {"Content-Type": "application/json", "dd-api-key": "0" * 32}
    url = p.url("otlp_logs", DOMAIN)

    protobuf = await emu.http.post(
        url, content=p.protobuf("otlp_logs", p.otlp_logs()), headers=as_protobuf
    )
    json_ = await emu.http.post(url, content=p.dumps(p.otlp_logs()), headers=as_json)
    plain = await p.submit(
        emu, tenant, "otlp_logs", raw=b"hello", headers={"Content-Type": "text/plain"}
    )

    assert protobuf.status_code == json_.status_code == 403
    assert Status.FromString(protobuf.content) == Status(
        code=p.PERMISSION_DENIED, message="Forbidden"
    )
    assert json_.json() == {"code": p.PERMISSION_DENIED, "message": "Forbidden"}
    assert (plain.status_code, plain.json()) == (
        415,
        {
            "code": p.INVALID_ARGUMENT,
            "message": "Unsupported Content-Type 'text/plain': use application/x-protobuf or "
            "application/json",
        },
    )


async def test_monitors_are_listed_for_their_org_only(emu: Emu, tenant: Tenant) -> None:
    other = await emu.tenant(DOMAIN, name="Other")
    seeded = await emu.http.post(
        "/_emulator/monitors",
        json={
            "dd_oid": tenant.dd_oid,
            "name": "High latency",
            "type": "metric alert",
            "query": "avg(last_5m):avg:partner.latency{*} > 2",
            "tags": ["team:a"],
        },
    )
    assert seeded.status_code == 201
    await emu.http.post(
        "/_emulator/monitors",
        json={"dd_oid": other.dd_oid, "name": "X", "type": "log alert", "query": "q"},
    )

    listed = await emu.http.get(
        f"/api.{DOMAIN}/api/v1/monitor", headers={"Authorization": f"Bearer {tenant.access_token}"}
    )

    assert listed.status_code == 200
    assert listed.json() == [seeded.json()]
    monitor = seeded.json()
    assert (monitor["name"], monitor["type"], monitor["tags"]) == (
        "High latency",
        "metric alert",
        ["team:a"],
    )
    assert isinstance(monitor["id"], int)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"dd_oid": "nobody", "name": "n", "type": "metric alert", "query": "q"}, 400),
        ({"name": "n", "type": "metric alert", "query": "q"}, 422),
    ],
)
async def test_bad_monitor_seeds_are_refused(emu: Emu, body: dict[str, Any], status: int) -> None:
    assert (await emu.http.post("/_emulator/monitors", json=body)).status_code == status


async def test_unknown_monitor_type_is_refused(emu: Emu, tenant: Tenant) -> None:
    body = {"dd_oid": tenant.dd_oid, "name": "n", "type": "metric", "query": "q"}
    assert (await emu.http.post("/_emulator/monitors", json=body)).status_code == 400


@pytest.mark.parametrize(
    ("signal", "wrong_host"),
    [
        ("metrics", f"http-intake.logs.{DOMAIN}"),
        ("metrics", f"trace.agent.{DOMAIN}"),
        ("logs", f"api.{DOMAIN}"),
        ("events", f"http-intake.logs.{DOMAIN}"),
        ("service_checks", f"trace.agent.{DOMAIN}"),
        ("incidents", f"http-intake.logs.{DOMAIN}"),
        ("traces", f"api.{DOMAIN}"),
        ("traces", f"otlp.{DOMAIN}"),
        ("otlp_metrics", f"trace.agent.{DOMAIN}"),
        ("otlp_logs", f"http-intake.logs.{DOMAIN}"),
        ("metrics", "app.datadoghq.eu"),
    ],
)
async def test_wrong_kind_of_host_is_not_found(
    emu: Emu, tenant: Tenant, signal: str, wrong_host: str
) -> None:
    """A path of another kind of host is 404; an OTLP path on the other OTLP host answers as
    OTLP/HTTP does (a google.rpc.Status, NOT_FOUND), anything else `{"errors": [...]}`."""
    path = p.ROUTES[signal][1]
    answer = await emu.http.post(
        f"/{wrong_host}{path}", content=b"{}", headers={"DD-API-KEY": tenant.api_key}
    )
    otlp = signal in p.OTLP_SIGNALS and wrong_host.startswith(("trace.agent.", "otlp."))
    expected = {"code": 5, "message": "Not Found"} if otlp else {"errors": ["Not Found"]}
    assert (answer.status_code, answer.json()) == (404, expected)


@pytest.mark.parametrize("signal", KEYED_SIGNALS)
async def test_api_key_of_another_site_is_forbidden(emu: Emu, tenant: Tenant, signal: str) -> None:
    answer = await p.submit(emu, tenant, signal, {}, domain="datadoghq.com")
    assert (answer.status_code, answer.json()) == (403, p.refusal(signal, 403, "Forbidden"))


@pytest.mark.parametrize("signal", KEYED_SIGNALS)
async def test_missing_unknown_and_revoked_keys_are_forbidden(
    emu: Emu, tenant: Tenant, signal: str
) -> None:
    missing = await emu.http.post(p.url(signal, DOMAIN), content=b"{}")
    unknown = await p.submit(
        emu, tenant, signal, {}, headers={"DD-API-KEY": "0" * 32, "dd-api-key": "0" * 32}
    )
    await emu.http.post("/_emulator/api_keys/revoke", json={"dd_oid": tenant.dd_oid})
    revoked = await p.submit(emu, tenant, signal, {})

    for answer in (missing, unknown, revoked):
        assert (answer.status_code, answer.json()) == (403, p.refusal(signal, 403, "Forbidden"))
    assert await emu.counts() == {}


async def test_incidents_need_a_token_with_incident_write(emu: Emu) -> None:
    tenant = await emu.tenant(DOMAIN, scopes=["api_keys_write"])
    no_scope = await p.submit(emu, tenant, "incidents", p.incident())
    no_token = await emu.http.post(p.url("incidents", DOMAIN), json=p.incident())
    api_key_only = await emu.http.post(
        p.url("incidents", DOMAIN), json=p.incident(), headers={"DD-API-KEY": tenant.api_key}
    )

    assert (no_scope.status_code, no_scope.json()) == (403, FORBIDDEN)
    assert no_token.status_code == 401
    assert api_key_only.status_code == 401


async def test_monitors_need_monitors_read(emu: Emu) -> None:
    tenant = await emu.tenant(DOMAIN, scopes=["api_keys_write", "incident_write"])
    headers = {"Authorization": f"Bearer {tenant.access_token}"}

    answer = await emu.http.get(f"/api.{DOMAIN}/api/v1/monitor", headers=headers)
    elsewhere = await emu.http.get("/api.datadoghq.com/api/v1/monitor", headers=headers)

    assert (answer.status_code, answer.json()) == (403, FORBIDDEN)
    assert (elsewhere.status_code, elsewhere.json()) == (403, FORBIDDEN)


async def test_every_site_takes_its_own_orgs_telemetry(emu: Emu) -> None:
    """Metrics and logs on all nine sites; OTLP traces on all but the FED sites, which have no
    agentless trace intake host at all (misdirected, like any host that is not Datadog's)."""
    fed = ["ddog-gov.com", "us2.ddog-gov.com"]
    domains = [
        "datadoghq.com",
        "us3.datadoghq.com",
        "us5.datadoghq.com",
        "datadoghq.eu",
        "ap1.datadoghq.com",
        "ap2.datadoghq.com",
        "uk1.datadoghq.com",
        *fed,
    ]
    for domain in domains:
        tenant = await emu.tenant(domain, name=domain)
        for signal, document in (
            ("metrics", p.series()),
            ("logs", p.logs()),
            ("traces", p.traces()),
        ):
            answer = await p.submit(emu, tenant, signal, document)
            if signal == "traces" and domain in fed:
                assert answer.status_code == 421, (domain, answer.text)
            else:
                assert answer.is_success, (domain, signal, answer.text)
    counts = await emu.counts()
    assert len(counts) == len(domains)
    assert all(c["metrics"]["items"] == 2 for c in counts.values())
    traced = {dd_oid for dd_oid, c in counts.items() if "traces" in c}
    assert len(traced) == len(domains) - len(fed)


async def test_logs_intake_errors_are_http_log_errors(emu: Emu, tenant: Tenant) -> None:
    """SubmitLog answers every error as HTTPLogErrors: objects with status, title and detail."""
    refused = await p.submit(emu, tenant, "logs", [{"msg": "no message"}])
    forbidden = await p.submit(emu, tenant, "logs", p.logs(), headers={"DD-API-KEY": "0" * 32})

    assert (refused.status_code, refused.json()) == (
        400,
        {
            "errors": [
                {
                    "status": "400",
                    "title": "Bad Request",
                    "detail": "/0: missing required field 'message'",
                }
            ]
        },
    )
    assert (forbidden.status_code, forbidden.json()) == (
        403,
        {"errors": [{"status": "403", "title": "Forbidden", "detail": "Forbidden"}]},
    )
