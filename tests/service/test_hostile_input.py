"""Input a stranger or a careless client sends gets a clear 4xx naming the field, never a 500:
unparseable sites, JSON nested too deep, times past the year 9999, NUL characters, replay ids
outside PostgreSQL's range, and a rate-limit answer asking for a wait of 30,000 years."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from harness.databases import asyncpg_dsn
from service.intake.parse import MAX_DEPTH
from tests.support import payloads
from tests.support.stack import Stack

UNPARSEABLE_SITES = ["https://[app.datadoghq.com]", "https://[", "https://app.datadoghq.com:99999"]


async def _outbox_items(stack: Stack, connection_id: str) -> int:
    db = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    try:
        count: int = await db.fetchval(
            "SELECT coalesce(sum(item_count), 0) FROM outbox WHERE connection_id = $1::uuid",
            connection_id,
        )
        return count
    finally:
        await db.close()


async def _oauth_calls(stack: Stack) -> list[dict[str, Any]]:
    """OAuth calls that reached 'Datadog' (a flow's only outbound requests; the worker's
    deliveries for other tests' connections may still arrive meanwhile)."""
    return [r for r in await stack.datadog_requests() if r["path"].startswith("/oauth2/")]


def _problem(answer: Any, pointer: str, reason: str) -> None:
    assert answer.status_code == 422, answer.text
    problems = answer.json()["problems"]
    assert any(p["pointer"] == pointer and reason in p["reason"] for p in problems), problems


# Sites the URL parser cannot read.


@pytest.mark.parametrize("value", UNPARSEABLE_SITES)
async def test_onboarding_refuses_an_unparseable_site(stack: Stack, value: str) -> None:
    with stack.no_new_traceback():
        async with stack.browser() as browser:
            page = await browser.get(f"{stack.api_url}/oauth/onboarding", params={"site": value})

    assert page.status_code == 400
    assert "Unknown Datadog site" in page.text
    assert await _oauth_calls(stack) == []


@pytest.mark.parametrize("value", UNPARSEABLE_SITES)
async def test_authorization_refuses_an_unparseable_site(
    stack: Stack, account_id: str, value: str
) -> None:
    with stack.no_new_traceback():
        answer = await stack.authorization(account_id, site=value)

    _problem(answer, "/site", "only an https origin or a bare host")
    assert await _oauth_calls(stack) == []


# JSON nested deeper than MAX_DEPTH.


PLACEHOLDER = "<deep>"


def _nested(body: Any, depth: int) -> bytes:
    """`body` as JSON with its placeholder replaced by a value `depth` containers deep
    (arrays and objects in turn), written by hand: no JSON encoder writes 1,000 levels."""
    opening = "".join('{"n":' if level % 2 else "[" for level in range(depth))
    closing = "".join("}" if level % 2 else "]" for level in reversed(range(depth)))
    return json.dumps(body).replace(f'"{PLACEHOLDER}"', f'{opening}"deep"{closing}').encode()


def _deep_log(depth: int) -> bytes:
    # The array and the item are two levels; the attribute brings the rest.
    return _nested([{"message": "x", "attr": PLACEHOLDER}], depth - 2)


def _deep_incident(depth: int) -> bytes:
    body = payloads.incident()
    # data, attributes, fields, one field: five levels with the top object.
    body["data"]["attributes"]["fields"] = {"severity": {"value": PLACEHOLDER}}
    return _nested(body, depth - 5)


def _deep_trace(depth: int) -> bytes:
    body = payloads.traces()
    span = body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    # resourceSpans[], {}, scopeSpans[], {}, spans[], {}: seven levels with the top object.
    span["attributes"] = PLACEHOLDER
    return _nested(body, depth - 7)


DEEP = [
    ("logs", _deep_log, "/0/attr"),
    ("incidents", _deep_incident, "/data/attributes/fields/severity/value"),
    ("traces", _deep_trace, "/resourceSpans/0/scopeSpans/0/spans/0/attributes"),
]


async def _send_raw(stack: Stack, connection_id: str, signal: str, body: bytes) -> Any:
    return await stack.api.post(
        f"/internal/v1/connections/{connection_id}/{signal}",
        content=body,
        headers={"Content-Type": "application/json"},
    )


@pytest.mark.parametrize(("signal", "build", "under"), DEEP, ids=[d[0] for d in DEEP])
@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 254, 300, 1000])
async def test_json_nested_too_deep_is_422_naming_where(
    stack: Stack, account_id: str, signal: str, build: Any, under: str, depth: int
) -> None:
    connection_id, _ = await stack.connected(account_id)

    with stack.no_new_traceback():
        answer = await _send_raw(stack, connection_id, signal, build(depth))

    assert answer.status_code == 422, answer.text
    [problem] = answer.json()["problems"]
    assert problem["pointer"].startswith(under), problem
    assert f"nested deeper than {MAX_DEPTH} levels" in problem["reason"]
    assert await _outbox_items(stack, connection_id) == 0


@pytest.mark.parametrize(
    ("signal", "build", "under"),
    # Datadog's incident fields are flat ({"type", "value"}): no deep incident is valid there.
    [d for d in DEEP if d[0] != "incidents"],
    ids=["logs", "traces"],
)
async def test_json_nested_to_the_limit_is_accepted_and_delivered(
    stack: Stack, account_id: str, signal: str, build: Any, under: str
) -> None:
    connection_id, dd_oid = await stack.connected(account_id)

    answer = await _send_raw(stack, connection_id, signal, build(MAX_DEPTH))

    assert answer.status_code == 202, answer.text
    assert len(await stack.wait_received(dd_oid, signal, 1)) == 1


# Times no calendar holds.


def _far_future(signal: str, value: Any) -> Any:
    if signal == "logs":
        return [{"message": "x", "timestamp": value}]
    if signal == "events":
        return {**payloads.event(), "date_happened": value}
    [check] = payloads.service_checks(1)
    return [{**check, "timestamp": value}]


FAR_FUTURE = [
    ("logs", 99999999999999999, "/0/timestamp"),
    ("logs", 18446744073709551615, "/0/timestamp"),
    ("logs", "9999-12-31T23:59:59-14:00", "/0/timestamp"),
    ("events", 99999999999999, "/date_happened"),
    ("service_checks", 99999999999999, "/0/timestamp"),
]


@pytest.mark.parametrize(("signal", "value", "pointer"), FAR_FUTURE)
async def test_a_time_after_the_year_9999_is_422_naming_the_field(
    stack: Stack, account_id: str, signal: str, value: Any, pointer: str
) -> None:
    connection_id, _ = await stack.connected(account_id)

    with stack.no_new_traceback():
        answer = await stack.send(connection_id, signal, _far_future(signal, value))

    _problem(answer, pointer, "after 9999-12-31T23:59:59Z")
    assert await _outbox_items(stack, connection_id) == 0


async def test_metric_points_far_ahead_are_refused_as_future(stack: Stack, account_id: str) -> None:
    connection_id, _ = await stack.connected(account_id)
    body = payloads.metrics()
    body["series"][0]["points"][0]["timestamp"] = 99999999999999

    answer = await stack.send(connection_id, "metrics", body)

    _problem(answer, "/series/0/points/0/timestamp", "more than 10 minutes in the future")


# NUL characters, which no PostgreSQL text holds.


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("account_id", "acct\x00"),
        ("account_label", "Acme\x00Corp"),
        ("return_to", "https://partner.example/back\x00"),
        ("domain", "datadoghq.com\x00"),
    ],
)
async def test_nul_in_an_authorization_is_422_naming_the_field(
    stack: Stack, field: str, value: str
) -> None:
    body = {"account_id": "acct-nul", field: value}

    with stack.no_new_traceback():
        answer = await stack.api.post("/internal/v1/authorizations", json=body)

    assert answer.status_code == 422, answer.text
    assert [p["pointer"] for p in answer.json()["problems"]] == [f"/{field}"]


async def test_nul_in_a_query_string_is_422_naming_the_parameter(stack: Stack) -> None:
    with stack.no_new_traceback():
        answer = await stack.api.get("/internal/v1/connections", params={"account_id": "a\x00"})

    assert answer.status_code == 422, answer.text
    [problem] = answer.json()["problems"]
    assert problem["pointer"] == "/query/account_id"
    assert "NUL" in problem["reason"]


# Bodies that are not text.


@pytest.mark.parametrize("route", ["authorizations", "logs"])
async def test_a_body_that_is_not_utf8_is_422(stack: Stack, account_id: str, route: str) -> None:
    path = "/internal/v1/authorizations"
    if route == "logs":
        connection_id, _ = await stack.connected(account_id)
        path = f"/internal/v1/connections/{connection_id}/logs"

    with stack.no_new_traceback():
        answer = await stack.api.post(
            path, content=b'[{"message": "\xff\xfe"}]', headers={"Content-Type": "application/json"}
        )

    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_body"
    assert [p["pointer"] for p in answer.json()["problems"]] == [""]


# Replays PostgreSQL cannot run.


@pytest.mark.parametrize(
    ("ids", "pointer"),
    [
        ([2**63], "/ids/0"),
        ([-(2**63) - 1], "/ids/0"),
        ([1, 99999999999999999999], "/ids/1"),
        (list(range(1, 1002)), "/ids"),
    ],
    ids=["2**63", "below int64", "a float-sized id", "1,001 ids"],
)
async def test_replay_ids_outside_the_database_are_422(
    stack: Stack, account_id: str, ids: list[int], pointer: str
) -> None:
    connection_id, _ = await stack.connected(account_id)

    with stack.no_new_traceback():
        answer = await stack.api.post(
            f"/internal/v1/connections/{connection_id}/dead_letters/replay", json={"ids": ids}
        )

    assert answer.status_code == 422, answer.text
    assert pointer in [p["pointer"] for p in answer.json()["problems"]]


# Datadog refusing a read as asked.


async def test_a_read_datadog_refuses_is_400_with_its_reasons(
    stack: Stack, account_id: str
) -> None:
    connection_id, dd_oid = await stack.connected(account_id)
    await stack.emu.post(
        "/_emulator/faults",
        json={
            "dd_oid": dd_oid,
            "path": "/api/v1/monitor",
            "status": 400,
            "count": 1,
            "body": {"errors": ["Invalid value for group_states"]},
        },
    )

    with stack.no_new_traceback():
        answer = await stack.api.get(
            f"/internal/v1/connections/{connection_id}/monitors", params={"group_states": "x"}
        )

    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "read_rejected"
    assert answer.json()["errors"] == ["Invalid value for group_states"]
    view = (await stack.api.get(f"/internal/v1/connections/{connection_id}")).json()
    assert view["status"] == "active"


# Datadog asking for an impossible wait.


async def _rate_limit_once(stack: Stack, dd_oid: str, reset: str) -> None:
    await stack.emu.post(
        "/_emulator/faults",
        json={
            "dd_oid": dd_oid,
            "path": "/api/v2/logs",
            "status": 429,
            "count": 1,
            "headers": {"X-RateLimit-Reset": reset},
            "body": {"errors": ["Too many requests"]},
        },
    )


@pytest.mark.parametrize("reset", ["1e12", "inf", "1e308"])
async def test_an_endless_rate_limit_reset_pauses_the_partition_for_an_hour_at_most(
    stack: Stack, account_id: str, reset: str
) -> None:
    connection_id, dd_oid = await stack.connected(account_id)
    await _rate_limit_once(stack, dd_oid, reset)

    with stack.no_new_traceback():
        assert (await stack.send(connection_id, "logs", payloads.logs(1))).status_code == 202
        paused_until = await _paused_until(stack, connection_id, "logs")

    wait = (paused_until - datetime.now(UTC)).total_seconds()
    assert 3500 < wait <= 3600, wait


@pytest.mark.parametrize("reset", ["nan", "-5", "soon"])
async def test_a_meaningless_rate_limit_reset_is_a_short_pause(
    stack: Stack, account_id: str, reset: str
) -> None:
    connection_id, dd_oid = await stack.connected(account_id)
    await _rate_limit_once(stack, dd_oid, reset)

    with stack.no_new_traceback():
        assert (await stack.send(connection_id, "logs", payloads.logs(1))).status_code == 202
        assert len(await stack.wait_received(dd_oid, "logs", 1)) == 1

    [limited, delivered] = await stack.datadog_requests(path="/api/v2/logs")
    assert (limited["status"], delivered["status"]) == (429, 202)


async def _paused_until(
    stack: Stack, connection_id: str, signal: str, deadline_seconds: float = 30
) -> datetime:
    """Poll the connection's view until the partition reports a pause."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        view = (await stack.api.get(f"/internal/v1/connections/{connection_id}")).json()
        for partition in view["delivery"]:
            if partition["signal"] == signal and partition["paused_until"]:
                return datetime.fromisoformat(partition["paused_until"])
        await asyncio.sleep(0.05)
    raise AssertionError(f"the {signal} partition never paused")
