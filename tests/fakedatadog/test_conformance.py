"""Conformance: the emulator answers what Datadog's definitions say, for requests the official
`datadog-api-client` builds and for malformed variants of them.

Every intake and OAuth route ddbridge uses is covered:
- the client's own API classes, pointed at the emulator with `Configuration(host=...)`, send
  metrics, logs, an event, service checks, an incident (Bearer), the key validation and the
  monitor listing; the client then reads each answer with its response model, so an answer
  that does not fit the definitions fails the call;
- the OAuth token, revoke and marketplace-key routes and the OTLP trace intake are not in the
  client (nor in the OpenAPI definitions): those requests are built as Datadog's OAuth and
  OTLP documentation describe, and the key answer is read with the client's APIKeyResponse;
- at least 20 malformed variants per intake route, made by breaking the body the client
  serialized (or, for traces, the documented OTLP JSON body): each must be refused with the
  documented status, never 500, with a message that names the field (its JSON Pointer), and in
  the host's error shape (APIErrorResponse, HTTPLogErrors on the logs intake, or OTLP/HTTP's
  google.rpc.Status on the OTLP trace intake).
"""

# The official client's API classes and named-value models have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from datadog_api_client.v1.api.authentication_api import AuthenticationApi
from datadog_api_client.v1.api.events_api import EventsApi
from datadog_api_client.v1.api.monitors_api import MonitorsApi
from datadog_api_client.v1.api.service_checks_api import ServiceChecksApi
from datadog_api_client.v1.model.api_error_response import APIErrorResponse
from datadog_api_client.v1.model.event_alert_type import EventAlertType
from datadog_api_client.v1.model.event_create_request import EventCreateRequest
from datadog_api_client.v1.model.event_priority import EventPriority
from datadog_api_client.v1.model.service_check import ServiceCheck
from datadog_api_client.v1.model.service_check_status import ServiceCheckStatus
from datadog_api_client.v1.model.service_checks import ServiceChecks
from datadog_api_client.v2.api.incidents_api import IncidentsApi
from datadog_api_client.v2.api.logs_api import LogsApi
from datadog_api_client.v2.api.metrics_api import MetricsApi
from datadog_api_client.v2.model.api_key_response import APIKeyResponse
from datadog_api_client.v2.model.content_encoding import ContentEncoding
from datadog_api_client.v2.model.http_log import HTTPLog
from datadog_api_client.v2.model.http_log_errors import HTTPLogErrors
from datadog_api_client.v2.model.http_log_item import HTTPLogItem
from datadog_api_client.v2.model.incident_create_attributes import IncidentCreateAttributes
from datadog_api_client.v2.model.incident_create_data import IncidentCreateData
from datadog_api_client.v2.model.incident_create_request import IncidentCreateRequest
from datadog_api_client.v2.model.incident_field_attributes_multiple_value import (
    IncidentFieldAttributesMultipleValue,
)
from datadog_api_client.v2.model.incident_field_attributes_single_value import (
    IncidentFieldAttributesSingleValue,
)
from datadog_api_client.v2.model.incident_field_attributes_single_value_type import (
    IncidentFieldAttributesSingleValueType,
)
from datadog_api_client.v2.model.incident_field_attributes_value_type import (
    IncidentFieldAttributesValueType,
)
from datadog_api_client.v2.model.incident_type import IncidentType
from datadog_api_client.v2.model.metric_content_encoding import MetricContentEncoding
from datadog_api_client.v2.model.metric_intake_type import MetricIntakeType
from datadog_api_client.v2.model.metric_payload import MetricPayload
from datadog_api_client.v2.model.metric_point import MetricPoint
from datadog_api_client.v2.model.metric_resource import MetricResource
from datadog_api_client.v2.model.metric_series import MetricSeries
from google.protobuf import json_format
from google.rpc.status_pb2 import Status

from tests.fakedatadog import intake_payloads as p
from tests.fakedatadog.helpers import Emu, Tenant, query_of
from tests.fakedatadog.official import api_client, body_of, parse

DOMAIN = "us5.datadoghq.com"
NOW = int(time.time())


@pytest.fixture
async def tenant(emu: Emu) -> Tenant:
    return await emu.tenant(DOMAIN)


# --- Requests the official client builds ------------------------------------------------------


def metric_payload() -> MetricPayload:
    return MetricPayload(
        series=[
            MetricSeries(
                metric="partner.requests",
                type=MetricIntakeType.COUNT,
                interval=10,
                points=[
                    MetricPoint(timestamp=NOW, value=1.5),
                    MetricPoint(timestamp=NOW - 10, value=2.0),
                ],
                tags=["env:test"],
                resources=[MetricResource(name="web-1", type="host")],
                unit="request",
                source_type_name="partner",
            )
        ]
    )


def http_log() -> HTTPLog:
    return HTTPLog(
        [
            HTTPLogItem(
                message="checkout failed",
                ddsource="partner",
                ddtags="env:test,team:a",
                hostname="web-1",
                service="checkout",
                status="error",
            )
        ]
    )


def event_request() -> EventCreateRequest:
    return EventCreateRequest(
        title="Deploy finished",
        text="Version 7 is live",
        alert_type=EventAlertType.SUCCESS,
        priority=EventPriority.LOW,
        tags=["env:test"],
        aggregation_key="deploy-7",
        date_happened=NOW,
        source_type_name="partner",
        host="web-1",
    )


def service_checks() -> ServiceChecks:
    return ServiceChecks(
        [
            ServiceCheck(
                check="partner.can_connect",
                host_name="web-1",
                status=ServiceCheckStatus.WARNING,
                tags=["env:test"],
                timestamp=NOW,
                message="slow",
            )
        ]
    )


def incident_request() -> IncidentCreateRequest:
    return IncidentCreateRequest(
        data=IncidentCreateData(
            type=IncidentType.INCIDENTS,
            attributes=IncidentCreateAttributes(
                title="Checkout is down",
                customer_impacted=True,
                customer_impact_scope="Every EU customer",
                fields={
                    "severity": IncidentFieldAttributesSingleValue(
                        type=IncidentFieldAttributesSingleValueType.DROPDOWN, value="SEV-2"
                    ),
                    "teams": IncidentFieldAttributesMultipleValue(
                        type=IncidentFieldAttributesValueType.MULTISELECT, value=["payments"]
                    ),
                },
            ),
        )
    )


def otlp_traces() -> dict[str, Any]:
    """An ExportTraceServiceRequest in OTLP's JSON encoding (not in the client)."""
    return p.traces()


async def call(emulator_url: str, host: str, operation: Callable[[Any], Any], **auth: str) -> Any:
    """Run `operation(api_client)` with the official client aimed at `host` on the emulator."""

    def run() -> Any:
        with api_client(f"{emulator_url}/{host}", **auth) as client:
            return operation(client)

    return await asyncio.to_thread(run)


@pytest.mark.parametrize("encoding", list(MetricContentEncoding.allowed_values))
async def test_client_submits_metrics(
    emulator_url: str, emu: Emu, tenant: Tenant, encoding: str
) -> None:
    answer = await call(
        emulator_url,
        f"api.{DOMAIN}",
        lambda c: MetricsApi(c).submit_metrics(
            body=metric_payload(), content_encoding=MetricContentEncoding(encoding)
        ),
        api_key=tenant.api_key,
    )

    assert answer.to_dict() == {"errors": []}
    [stored] = (await emu.intake(tenant.dd_oid, "metrics"))["items"]
    assert (stored["encoding"], stored["item"]["points"][0]["value"]) == (encoding, 1.5)


@pytest.mark.parametrize("encoding", list(ContentEncoding.allowed_values))
async def test_client_submits_logs(
    emulator_url: str, emu: Emu, tenant: Tenant, encoding: str
) -> None:
    answer = await call(
        emulator_url,
        f"http-intake.logs.{DOMAIN}",
        lambda c: LogsApi(c).submit_log(
            body=http_log(), content_encoding=ContentEncoding(encoding)
        ),
        api_key=tenant.api_key,
    )

    assert answer == {}
    [stored] = (await emu.intake(tenant.dd_oid, "logs"))["items"]
    assert stored["item"]["status"] == "error"


async def test_client_posts_an_event(emulator_url: str, emu: Emu, tenant: Tenant) -> None:
    answer = await call(
        emulator_url,
        f"api.{DOMAIN}",
        lambda c: EventsApi(c).create_event(body=event_request()),
        api_key=tenant.api_key,
    )

    assert answer.status == "ok"
    assert (answer.event.title, str(answer.event.alert_type)) == ("Deploy finished", "success")
    assert answer.event.id_str == str(answer.event.id)


async def test_client_submits_service_checks(emulator_url: str, emu: Emu, tenant: Tenant) -> None:
    answer = await call(
        emulator_url,
        f"api.{DOMAIN}",
        lambda c: ServiceChecksApi(c).submit_service_check(body=service_checks()),
        api_key=tenant.api_key,
    )

    assert answer.to_dict() == {"status": "ok"}
    [stored] = (await emu.intake(tenant.dd_oid, "service_checks"))["items"]
    assert stored["item"]["status"] == 1


async def test_client_creates_an_incident_with_the_oauth_token(
    emulator_url: str, emu: Emu, tenant: Tenant
) -> None:
    def create(client: Any) -> Any:
        client.configuration.unstable_operations["create_incident"] = True
        with pytest.warns(UserWarning, match="unstable operation 'create_incident'"):
            return IncidentsApi(client).create_incident(body=incident_request())

    answer = await call(emulator_url, f"api.{DOMAIN}", create, access_token=tenant.access_token)

    attributes = answer.data.attributes
    assert (attributes.title, attributes.public_id) == ("Checkout is down", 1)
    assert answer.data.type == IncidentType.INCIDENTS


async def test_client_validates_the_api_key(emulator_url: str, emu: Emu, tenant: Tenant) -> None:
    answer = await call(
        emulator_url,
        f"api.{DOMAIN}",
        lambda c: AuthenticationApi(c).validate(),
        api_key=tenant.api_key,
    )
    assert answer.valid is True


async def test_client_lists_monitors_with_the_oauth_token(
    emulator_url: str, emu: Emu, tenant: Tenant
) -> None:
    seeded = await emu.http.post(
        "/_emulator/monitors",
        json={"dd_oid": tenant.dd_oid, "name": "Latency", "type": "metric alert", "query": "q"},
    )
    assert seeded.status_code == 201

    monitors = await call(
        emulator_url,
        f"api.{DOMAIN}",
        lambda c: MonitorsApi(c).list_monitors(),
        access_token=tenant.access_token,
    )

    assert [(m.name, str(m.type)) for m in monitors] == [("Latency", "metric alert")]


async def test_oauth_routes_answer_in_their_documented_shapes(emu: Emu) -> None:
    """Token (form and JSON bodies), refresh, marketplace key and revoke, as Datadog's OAuth2
    endpoint reference describes them; the key answer is read by the client's model."""
    org = await emu.org("Acme", DOMAIN)
    client = await emu.client(DOMAIN, scopes=["api_keys_write", "incident_write"])
    flow = emu.flow(client)
    code = query_of(await emu.decide(org["app_host"], flow, org["dd_oid"]))["code"]
    token_url = f"/api.{DOMAIN}/oauth2/v1/token"
    exchange = {
        "grant_type": "authorization_code",
        "client_id": client["client_id"],
        "client_secret": client["client_secret"],
        "redirect_uri": flow.redirect_uri,
        "code": code,
        "code_verifier": flow.verifier,
    }

    tokens = await emu.http.post(token_url, json=exchange)
    refreshed = await emu.http.post(
        token_url,
        data={
            "grant_type": "refresh_token",
            "client_id": client["client_id"],
            "client_secret": client["client_secret"],
            "refresh_token": tokens.json()["refresh_token"],
        },
    )
    key = await emu.create_api_key(DOMAIN, refreshed.json()["access_token"])
    revoked = await emu.http.post(
        f"/api.{DOMAIN}/oauth2/v1/revoke",
        data={
            "client_id": client["client_id"],
            "client_secret": client["client_secret"],
            "token": tokens.json()["refresh_token"],
            "token_type_hint": "refresh_token",
        },
    )

    for answer in (tokens, refreshed):
        assert answer.status_code == 200
        assert answer.headers["cache-control"] == "no-store"
        body = answer.json()
        assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in", "scope"}
        assert (body["token_type"], body["expires_in"]) == ("Bearer", 3600)
        assert body["scope"].split() == ["api_keys_write", "incident_write"]
    assert key.status_code == 201
    assert parse(key.json(), APIKeyResponse).data.attributes.name == "OAuth Client API Key"
    assert (revoked.status_code, revoked.json()) == (200, {})


async def test_otlp_traces_are_accepted(emu: Emu, tenant: Tenant) -> None:
    answer = await p.submit(emu, tenant, "traces", otlp_traces())
    assert (answer.status_code, answer.json()) == (200, {})


# --- Malformed variants -----------------------------------------------------------------------

_DELETE = object()


@dataclass(frozen=True)
class Variant:
    """One malformed request: the valid body with `value` put at `pointer` (or the member
    removed), or `raw` bytes; `field` is what the refusal must name."""

    signal: str
    pointer: str
    value: Any = _DELETE
    status: int = 400
    field: str | None = None

    @property
    def id(self) -> str:
        shown = "delete" if self.value is _DELETE else repr(self.value)[:30]
        return f"{self.signal}:{self.pointer or '(root)'}={shown}"

    def expected_field(self) -> str:
        """The JSON Pointer (or, for a removed member, its quoted name) the message must hold."""
        if self.field is not None:
            return self.field
        if self.value is _DELETE:
            return repr(self.pointer.rsplit("/", 1)[1])
        return self.pointer or "(root)"

    def document(self, valid: Any) -> Any:
        document = copy.deepcopy(valid)
        if not self.pointer:
            return self.value
        *path, last = self.pointer.removeprefix("/").split("/")
        parent = document
        for token in path:
            parent = parent[int(token)] if isinstance(parent, list) else parent[token]
        key: Any = int(last) if isinstance(parent, list) else last
        if self.value is _DELETE:
            del parent[key]
        elif isinstance(parent, list) and key == len(parent):
            parent.append(self.value)
        else:
            parent[key] = self.value
        return document


def _variants(signal: str, cases: list[tuple[Any, ...]]) -> list[Variant]:
    return [Variant(signal, *case) for case in cases]


SERIES = "/series/0"
POINT = "/series/0/points/0"
METRICS = _variants(
    "metrics",
    [
        ("/series",),
        ("/series", {}),
        ("/series", None),
        ("/series", "partner.requests"),
        ("", []),
        ("", None),
        (f"{SERIES}", "partner.requests"),
        (f"{SERIES}/metric",),
        (f"{SERIES}/metric", None),
        (f"{SERIES}/metric", 5),
        (f"{SERIES}/type", 7),
        (f"{SERIES}/type", "gauge"),
        (f"{SERIES}/type", None),
        (f"{SERIES}/type", True),
        (f"{SERIES}/points",),
        (f"{SERIES}/points", None),
        (f"{SERIES}/points", [[NOW, 1.5]], 400, POINT),
        (f"{POINT}/timestamp", str(NOW)),
        (f"{POINT}/timestamp", 2**63),
        (f"{POINT}/timestamp", NOW + 0.5),
        (f"{POINT}/timestamp",),
        (f"{POINT}/value", "1.5"),
        (f"{POINT}/value", True),
        (f"{POINT}/value",),
        (f"{SERIES}/tags", None),
        (f"{SERIES}/tags", "env:test"),
        (f"{SERIES}/tags/0", 3),
        (f"{SERIES}/resources/0", "web-1"),
        (f"{SERIES}/resources/0/name", 1),
        (f"{SERIES}/interval", "10"),
        (f"{SERIES}/unit", []),
        (f"{SERIES}/source_type_name", None),
    ],
)

LOGS = _variants(
    "logs",
    [
        ("/0/message", None),
        ("/0/message",),
        ("/0/message", 5),
        ("/0/message", {"text": "x"}),
        ("/0/message", ["x"]),
        ("/0/ddtags", ["env:test"]),
        ("/0/ddtags", None),
        ("/0/ddtags", 1),
        ("/0/ddsource", None),
        ("/0/ddsource", 1),
        ("/0/hostname", None),
        ("/0/hostname", {}),
        ("/0/service", None),
        ("/0/service", False),
        ("/0", "checkout failed"),
        ("/0", None),
        ("/0", 1),
        ("/0", []),
        ("/1", {"msg": "no message"}, 400, "/1: missing required field 'message'"),
        ("", 3),
        ("", "checkout failed"),
        ("", None),
        ("", True),
        ("", [{"message": "m"}] * 1001, 413, "1001 log entries"),
    ],
)

EVENTS = _variants(
    "events",
    [
        ("/title",),
        ("/text",),
        ("/title", None),
        ("/text", None),
        ("/title", 1),
        ("/text", "x" * 4001),
        ("/aggregation_key", "k" * 101),
        ("/alert_type", "fatal"),
        ("/alert_type", None),
        ("/priority", "high"),
        ("/date_happened", "now"),
        ("/date_happened", 2**63),
        ("/date_happened", NOW + 0.5),
        ("/tags", "env:test"),
        ("/tags", None),
        ("/tags/0", 1),
        ("/host", 1),
        ("/device_name", []),
        ("/source_type_name", {}),
        ("/related_event_id", "1"),
        ("/related_event_id", 2**64),
        ("", []),
        ("", "Deploy finished"),
        ("", None),
    ],
)

CHECK = "/0"
SERVICE_CHECKS = _variants(
    "service_checks",
    [
        ("", {}),
        ("", None),
        ("", "partner.can_connect"),
        (CHECK, "partner.can_connect"),
        (f"{CHECK}/check",),
        (f"{CHECK}/host_name",),
        (f"{CHECK}/status",),
        (f"{CHECK}/tags",),
        (f"{CHECK}/status", 4),
        (f"{CHECK}/status", None),
        (f"{CHECK}/status", "OK"),
        (f"{CHECK}/status", True),
        (f"{CHECK}/tags", None),
        (f"{CHECK}/tags", "env:test"),
        (f"{CHECK}/tags/0", 1),
        (f"{CHECK}/timestamp", None),
        (f"{CHECK}/timestamp", str(NOW)),
        (f"{CHECK}/timestamp", 2**63),
        (f"{CHECK}/timestamp", NOW + 0.5),
        (f"{CHECK}/message", None),
        (f"{CHECK}/message", 1),
        (f"{CHECK}/check", None),
        (f"{CHECK}/check", []),
        (f"{CHECK}/host_name", 5),
    ],
)

ATTRS = "/data/attributes"
FIELDS = f"{ATTRS}/fields"
INCIDENTS = _variants(
    "incidents",
    [
        ("/data",),
        ("/data", None),
        ("/data", "incident"),
        ("/data/type",),
        ("/data/type", "incident"),
        ("/data/type", None),
        (ATTRS,),
        (f"{ATTRS}/title",),
        (f"{ATTRS}/title", None),
        (f"{ATTRS}/title", 5),
        (f"{ATTRS}/customer_impacted",),
        (f"{ATTRS}/customer_impacted", "yes"),
        (f"{ATTRS}/customer_impacted", None),
        (f"{ATTRS}/customer_impact_scope",),
        (f"{ATTRS}/customer_impact_scope", 5),
        (FIELDS, "severity:SEV-1"),
        (f"{FIELDS}/severity", "SEV-1"),
        (f"{FIELDS}/severity", {"type": "dropdown", "value": ["SEV-1"]}),
        (f"{FIELDS}/severity", {"value": None}),
        (f"{FIELDS}/severity", {"type": "bogus", "value": "SEV-1"}),
        (f"{FIELDS}/teams", {"type": "multiselect", "value": "payments"}),
        (f"{ATTRS}/is_test", "no"),
        (f"{ATTRS}/notification_handles", "@ops"),
        (f"{ATTRS}/notification_handles", [{"handle": 1}], 400, "/notification_handles/0/handle"),
        (f"{ATTRS}/initial_cells", [{"cell_type": "markdown"}], 400, "/initial_cells/0"),
        ("/data/relationships", {}, 400, "'commander_user'"),
        (f"{ATTRS}/incident_type_uuid", 5),
        ("", []),
    ],
)

SPAN = "/resourceSpans/0/scopeSpans/0/spans/0"
TRACES = _variants(
    "traces",
    [
        ("", []),
        ("", None),
        ("/resourceSpans", {}),
        ("/resourceSpans/0", 1),
        ("/resourceSpans/0/resource", "checkout"),
        ("/resourceSpans/0/scopeSpans", "x"),
        ("/resourceSpans/0/scopeSpans/0/scope", 5),
        ("/resourceSpans/0/scopeSpans/0/spans", {}),
        (SPAN, "GET /checkout"),
        (f"{SPAN}/traceId", _DELETE, 400, f"{SPAN}/traceId"),
        (f"{SPAN}/traceId", "xyz"),
        (f"{SPAN}/traceId", "0" * 32),
        (f"{SPAN}/spanId", "1" * 15),
        (f"{SPAN}/spanId", "0" * 16),
        (f"{SPAN}/parentSpanId", "zz"),
        (f"{SPAN}/name", _DELETE, 400, f"{SPAN}/name"),
        (f"{SPAN}/name", ""),
        (f"{SPAN}/name", 5),
        (f"{SPAN}/startTimeUnixNano", _DELETE, 400, f"{SPAN}/startTimeUnixNano"),
        (f"{SPAN}/startTimeUnixNano", "soon"),
        (f"{SPAN}/startTimeUnixNano", -1),
        (f"{SPAN}/endTimeUnixNano", "1"),
        (f"{SPAN}/endTimeUnixNano", True),
        (f"{SPAN}/kind", 9),
        (f"{SPAN}/kind", "SPAN_KIND_SERVER"),
    ],
)

VALID: dict[str, Callable[[], Any]] = {
    "metrics": lambda: body_of(metric_payload()),
    "logs": lambda: body_of(http_log()),
    "events": lambda: body_of(event_request()),
    "service_checks": lambda: body_of(service_checks()),
    "incidents": lambda: body_of(incident_request()),
    "traces": otlp_traces,
}
MALFORMED = [*METRICS, *LOGS, *EVENTS, *SERVICE_CHECKS, *INCIDENTS, *TRACES]


def test_every_intake_route_has_twenty_malformed_variants() -> None:
    per_signal = {signal: sum(v.signal == signal for v in MALFORMED) for signal in VALID}
    assert all(count >= 20 for count in per_signal.values()), per_signal


@pytest.mark.parametrize("variant", MALFORMED, ids=[v.id for v in MALFORMED])
async def test_malformed_bodies_are_refused_naming_the_field(
    emu: Emu, tenant: Tenant, variant: Variant
) -> None:
    document = variant.document(VALID[variant.signal]())

    answer = await p.submit(emu, tenant, variant.signal, document)

    assert answer.status_code == variant.status, answer.text
    assert variant.expected_field() in p.message(answer), answer.text
    _check_error_shape(variant.signal, answer)
    assert await emu.counts() == {}


HEADER_VARIANTS: list[tuple[str, dict[str, str], bytes | None, int, str]] = [
    ("Content-Type", {"Content-Type": "text/plain"}, None, 415, "Content-Type"),
    ("no Content-Type", {"Content-Type": ""}, None, 415, "Content-Type"),
    ("Content-Encoding", {"Content-Encoding": "br"}, None, 415, "Content-Encoding"),
    ("corrupt gzip", {"Content-Encoding": "gzip"}, b"\x1f\x8b not gzip", 400, "gzip"),
    ("not JSON", {}, b'{"series": [', 400, "invalid JSON"),
]


@pytest.mark.parametrize("signal", list(VALID))
@pytest.mark.parametrize(
    ("headers", "raw", "status", "named"),
    [case[1:] for case in HEADER_VARIANTS],
    ids=[case[0] for case in HEADER_VARIANTS],
)
async def test_unreadable_bodies_are_refused_naming_the_header(
    emu: Emu,
    tenant: Tenant,
    signal: str,
    headers: dict[str, str],
    raw: bytes | None,
    status: int,
    named: str,
) -> None:
    """Bodies that cannot be read: the refusal names the header (or the encoding) at fault."""
    body = raw if raw is not None else p.dumps(VALID[signal]())
    gzip_only = signal in ("events", "incidents") and headers.get("Content-Encoding") == "gzip"

    answer = await p.submit(emu, tenant, signal, raw=body, headers=headers)

    if gzip_only:  # routes that take no compression at all refuse the encoding first
        status, named = 415, "Content-Encoding"
    assert answer.status_code == status, answer.text
    assert named in p.message(answer), answer.text
    _check_error_shape(signal, answer)


def _check_error_shape(signal: str, answer: httpx.Response) -> None:
    """The error body fits the definitions: HTTPLogErrors on the logs intake, APIErrorResponse
    elsewhere, except on the OTLP trace intake, outside the definitions, which answers as
    OTLP/HTTP says: a google.rpc.Status (here in JSON, as the request was)."""
    if signal == "traces":
        status = json_format.Parse(answer.text, Status())
        assert status.code == p.INVALID_ARGUMENT
        assert status.message
    elif signal == "logs":
        errors = parse(answer.json(), HTTPLogErrors).errors
        assert [(e.status, e.title) for e in errors] == [
            (str(answer.status_code), answer.reason_phrase)
        ]
    else:
        assert parse(answer.json(), APIErrorResponse).errors
