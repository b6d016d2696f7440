"""Intake body validation: precise 400s for what Datadog refuses, 2xx for what it takes, and
time windows (accepted with the request, then dropped and counted)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.fakedatadog import intake_payloads as p
from tests.fakedatadog.helpers import Emu, Tenant

DOMAIN = "ap1.datadoghq.com"
NOW = p.now()


@pytest.fixture
async def tenant(emu: Emu) -> Tenant:
    return await emu.tenant(DOMAIN)


def with_series(**fields: Any) -> dict[str, Any]:
    document = p.series(1)
    document["series"][0].update(fields)
    return document


def point(**fields: Any) -> dict[str, Any]:
    return {"series": [{"metric": "m", "points": [fields]}]}


def incident(**attributes: Any) -> dict[str, Any]:
    return {
        "data": {
            "type": "incidents",
            "attributes": {"title": "t", "customer_impacted": False, **attributes},
        }
    }


INVALID: list[tuple[str, Any, str]] = [
    ("metrics", with_series(type=7), "/series/0/type: 7 is not one of 0, 1, 2, 3"),
    ("metrics", with_series(type="gauge"), "/series/0/type: 'gauge' is not one of 0, 1, 2, 3"),
    ("metrics", {"series": [{"points": []}]}, "/series/0: missing required field 'metric'"),
    ("metrics", {"series": ["m"]}, "/series/0: expected an object, got a string"),
    ("metrics", {"series": {}}, "/series: expected an array, got an object"),
    ("metrics", {}, "(root): missing required field 'series'"),
    ("metrics", [], "(root): expected an object, got an array"),
    (
        "metrics",
        point(timestamp=str(NOW), value=1),
        "/series/0/points/0/timestamp: expected an integer, got a string",
    ),
    (
        "metrics",
        point(timestamp=NOW, value=True),
        "/series/0/points/0/value: expected a number, got a boolean",
    ),
    ("metrics", point(timestamp=NOW), "/series/0/points/0: missing required field 'value'"),
    ("metrics", point(value=1.0), "/series/0/points/0: missing required field 'timestamp'"),
    (
        "metrics",
        with_series(tags=["a:b", 3]),
        "/series/0/tags/1: expected a string, got an integer",
    ),
    (
        "metrics",
        with_series(resources=[{"type": "host", "name": "h"}, "h2"]),
        "/series/0/resources/1: expected an object, got a string",
    ),
    ("logs", [{"message": "a"}, {"msg": "b"}], "/1: missing required field 'message'"),
    ("logs", [{"message": "a", "ddtags": ["env:x"]}], "/0/ddtags: expected a string, got an array"),
    ("logs", [{"message": 5}], "/0/message: expected a string, got an integer"),
    ("logs", ["plain text"], "/0: expected an object, got a string"),
    ("logs", 3, "(root): expected an array"),
    ("events", {"text": "x"}, "(root): missing required field 'title'"),
    ("events", {"title": "t"}, "(root): missing required field 'text'"),
    ("events", p.event(text="x" * 4001), "/text: longer than 4000 characters (4001)"),
    (
        "events",
        p.event(aggregation_key="k" * 101),
        "/aggregation_key: longer than 100 characters (101)",
    ),
    (
        "events",
        p.event(alert_type="fatal"),
        "/alert_type: 'fatal' is not one of 'error', 'info', 'recommendation', 'snapshot', "
        "'success', 'user_update', 'warning'",
    ),
    ("events", p.event(priority="high"), "/priority: 'high' is not one of 'low', 'normal'"),
    (
        "events",
        p.event(date_happened=str(NOW)),
        "/date_happened: expected an integer, got a string",
    ),
    (
        "service_checks",
        [{**p.service_checks(1)[0], "status": 4}],
        "/0/status: 4 is not one of 0, 1, 2, 3",
    ),
    (
        "service_checks",
        [p.service_checks(1)[0], {"check": "c", "status": 0, "tags": []}],
        "/1: missing required field 'host_name'",
    ),
    ("service_checks", p.service_checks(1)[0], "(root): expected an array, got an object"),
    (
        "incidents",
        {"data": {"type": "incident", "attributes": {"title": "t", "customer_impacted": False}}},
        "/data/type: 'incident' is not one of 'incidents'",
    ),
    (
        "incidents",
        {"data": {"type": "incidents", "attributes": {"title": "t"}}},
        "/data/attributes: missing required field 'customer_impacted'",
    ),
    (
        "traces",
        p.traces([p.span(0), p.span(1, traceId="xyz")]),
        "/resourceSpans/0/scopeSpans/0/spans/1/traceId: expected 32 hex digits, not all zero",
    ),
    (
        "traces",
        p.traces([p.span(0, spanId="0" * 16)]),
        "/resourceSpans/0/scopeSpans/0/spans/0/spanId: expected 16 hex digits, not all zero",
    ),
    (
        "traces",
        p.traces([{k: v for k, v in p.span(0).items() if k != "name"}]),
        "/resourceSpans/0/scopeSpans/0/spans/0/name: expected a non-empty string",
    ),
    (
        "traces",
        p.traces([p.span(0, endTimeUnixNano="1")]),
        "/resourceSpans/0/scopeSpans/0/spans/0/endTimeUnixNano: is before startTimeUnixNano",
    ),
    (
        "traces",
        p.traces([p.span(0, kind=9)]),
        "/resourceSpans/0/scopeSpans/0/spans/0/kind: 9 is not a SpanKind (0 to 5)",
    ),
    ("traces", {"resourceSpans": {}}, "/resourceSpans: expected an array"),
    # Shapes that used to crash the emulator (500) instead of answering 400.
    (
        "metrics",
        {"series": [{"metric": "m", "points": [[NOW, 1.5]]}]},
        "/series/0/points/0: expected an object, got an array",
    ),
    ("logs", [{"message": None}], "/0/message: expected a string, got null"),
    # null where the definitions do not say `nullable`.
    ("metrics", with_series(metric=None), "/series/0/metric: expected a string, got null"),
    ("metrics", with_series(type=None), "/series/0/type: expected one of 0, 1, 2, 3, got null"),
    ("metrics", with_series(tags=None), "/series/0/tags: expected an array, got null"),
    ("logs", [{"message": "m", "service": None}], "/0/service: expected a string, got null"),
    (
        "service_checks",
        [{**p.service_checks(1)[0], "status": None}],
        "/0/status: expected one of 0, 1, 2, 3, got null",
    ),
    (
        "service_checks",
        [{**p.service_checks(1)[0], "tags": None}],
        "/0/tags: expected an array, got null",
    ),
    (
        "service_checks",
        [{**p.service_checks(1)[0], "timestamp": None}],
        "/0/timestamp: expected an integer, got null",
    ),
    # int64 bounds (`format: int64`).
    (
        "metrics",
        point(timestamp=2**63, value=1),
        "/series/0/points/0/timestamp: 9223372036854775808 is outside the 64-bit integer range",
    ),
    (
        "events",
        p.event(date_happened=-(2**63) - 1),
        "/date_happened: expected an integer, got a number",
    ),
    # Incidents: the scope a customer impact needs, and fields in one of their two forms.
    (
        "incidents",
        incident(customer_impacted=True),
        "/data/attributes: missing required field 'customer_impact_scope' "
        "(customer_impacted is true)",
    ),
    (
        "incidents",
        incident(fields={"severity": "SEV-1"}),
        "/data/attributes/fields/severity: matches none of its forms "
        "(IncidentFieldAttributesSingleValue: /data/attributes/fields/severity: expected an "
        "object, got a string; IncidentFieldAttributesMultipleValue: "
        "/data/attributes/fields/severity: expected an object, got a string)",
    ),
    (
        "incidents",
        incident(fields={"teams": {"type": "dropdown", "value": ["a"]}}),
        "/data/attributes/fields/teams: matches none of its forms "
        "(IncidentFieldAttributesSingleValue: /data/attributes/fields/teams/value: expected a "
        "string, got an array; IncidentFieldAttributesMultipleValue: "
        "/data/attributes/fields/teams/type: 'dropdown' is not one of 'autocomplete', "
        "'metrictag', 'multiselect', 'textarray')",
    ),
    (
        "incidents",
        incident(fields={"x": {"value": None}}),
        "/data/attributes/fields/x: matches more than one of its forms "
        "(IncidentFieldAttributesSingleValue, IncidentFieldAttributesMultipleValue)",
    ),
]


@pytest.mark.parametrize(
    ("signal", "document", "reason"), INVALID, ids=[f"{s}:{r}" for s, _, r in INVALID]
)
async def test_invalid_bodies_are_refused_with_their_location(
    emu: Emu, tenant: Tenant, signal: str, document: Any, reason: str
) -> None:
    answer = await p.submit(emu, tenant, signal, document)

    assert (answer.status_code, answer.json()) == (400, p.refusal(signal, 400, reason))
    assert await emu.counts() == {}


ACCEPTED: list[tuple[str, Any]] = [
    ("metrics", with_series(some_future_field={"x": 1})),
    ("metrics", {"series": [{"metric": "m", "points": [{"timestamp": NOW, "value": 3}]}]}),
    ("metrics", {"series": []}),
    ("logs", [{"message": "m", "anything": {"deep": [1, None, True]}, "status": "error"}]),
    ("logs", []),
    ("events", p.event(text="x" * 4000, aggregation_key="k" * 100)),
    ("events", {"title": "t", "text": "x", "priority": None}),
    ("service_checks", []),
    ("traces", {}),
    ("traces", p.traces([p.span(0, parentSpanId="", unknownField=1, kind=0)])),
    # What the definitions allow: nullable fields, unknown log attributes, int64 maxima.
    ("logs", [{"message": "m", "custom": None, "ddsource": "partner"}]),
    ("metrics", point(timestamp=2**63 - 1, value=1)),
    ("metrics", point(timestamp=NOW, value=2**63)),
    ("incidents", incident(customer_impacted=True, customer_impact_scope="All of EU")),
    (
        "incidents",
        incident(
            fields={
                "severity": {"type": "dropdown", "value": "SEV-2"},
                "summary": {"type": "textbox", "value": None},
                "teams": {"type": "multiselect", "value": ["payments"]},
                "services": {"value": ["checkout"]},
            }
        ),
    ),
    (
        "incidents",
        {**incident(), "data": {**incident()["data"], "relationships": {"commander_user": None}}},
    ),
]


@pytest.mark.parametrize(("signal", "document"), ACCEPTED)
async def test_what_datadog_accepts_is_accepted(
    emu: Emu, tenant: Tenant, signal: str, document: Any
) -> None:
    answer = await p.submit(emu, tenant, signal, document)
    assert answer.is_success, answer.text


async def test_metric_points_outside_the_window_are_dropped(emu: Emu, tenant: Tenant) -> None:
    now = p.now()
    stamps = [now - 7200, now - 3500, now, now + 500, now + 700]
    document = {
        "series": [
            {"metric": "kept", "points": [{"timestamp": t, "value": 1} for t in stamps]},
            {"metric": "gone", "points": [{"timestamp": now - 4000, "value": 1}]},
        ]
    }

    answer = await p.submit(emu, tenant, "metrics", document)

    assert (answer.status_code, answer.json()) == (202, {"errors": []})
    [stored] = (await emu.intake(tenant.dd_oid, "metrics"))["items"]
    assert [pt["timestamp"] for pt in stored["item"]["points"]] == stamps[1:4]
    assert (await emu.counts())[tenant.dd_oid]["metrics"] == {
        "requests": 1,
        "items": 3,
        "dropped": 3,
    }


async def test_stale_service_checks_events_and_logs_are_dropped(emu: Emu, tenant: Tenant) -> None:
    now = p.now()
    checks = p.service_checks(2)
    checks[0]["timestamp"] = now - 660
    old_ms = int((time.time() - 19 * 3600) * 1000)
    recent_iso = datetime.now(UTC).isoformat()
    old_iso = datetime.fromtimestamp(now - 19 * 3600, UTC).replace(tzinfo=None).isoformat()
    log_lines = [
        {"message": "old", "timestamp": old_ms},
        {"message": "old iso", "timestamp": old_iso},
        {"message": "new", "timestamp": recent_iso},
        {"message": "no time"},
        {"message": "odd time", "timestamp": "yesterday"},
    ]

    answers = [
        await p.submit(emu, tenant, "service_checks", checks),
        await p.submit(emu, tenant, "events", p.event(date_happened=now - 19 * 3600)),
        await p.submit(emu, tenant, "events", p.event(date_happened=now - 17 * 3600)),
        await p.submit(emu, tenant, "logs", log_lines),
    ]

    assert [a.status_code for a in answers] == [202, 202, 202, 202]
    assert answers[1].json()["status"] == "ok"
    counts = (await emu.counts())[tenant.dd_oid]
    assert counts["service_checks"] == {"requests": 1, "items": 1, "dropped": 1}
    assert counts["events"] == {"requests": 2, "items": 1, "dropped": 1}
    assert counts["logs"] == {"requests": 1, "items": 3, "dropped": 2}
    stored = (await emu.intake(tenant.dd_oid, "logs"))["items"]
    assert [i["item"]["message"] for i in stored] == ["new", "no time", "odd time"]
