"""The send API refuses what Datadog would refuse, precisely, and stores nothing of it."""

from __future__ import annotations

import time
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from harness.databases import asyncpg_dsn
from tests.support import payloads
from tests.support.stack import Stack


async def _outbox_rows(stack: Stack, connection_id: str) -> int:
    db = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    try:
        count: int = await db.fetchval(
            "SELECT count(*) FROM outbox WHERE connection_id = $1::uuid", connection_id
        )
        count += await db.fetchval(
            "SELECT count(*) FROM idempotency_keys WHERE connection_id = $1::uuid", connection_id
        )
        return count
    finally:
        await db.close()


def _stale_metrics() -> dict[str, Any]:
    return payloads.metrics(series=2, points=1, at=time.time() - 3700)


BAD_BODIES: list[tuple[str, str, Any, str, str]] = [
    (
        "metrics",
        "missing metric",
        {"series": [{"points": []}]},
        "/series/0/metric",
        "Field required",
    ),
    (
        "metrics",
        "value as a string",
        {"series": [{"metric": "m", "points": [{"timestamp": 1, "value": "1.5"}]}]},
        "/series/0/points/0/value",
        "Input should be a valid number",
    ),
    (
        "metrics",
        "unknown type",
        {
            "series": [
                {"metric": "m", "type": 7, "points": [{"timestamp": int(time.time()), "value": 1}]}
            ]
        },
        "/series/0/type",
        "Input should be 0, 1, 2 or 3",
    ),
    (
        "metrics",
        "field Datadog does not allow",
        {
            "series": [
                {
                    "metric": "m",
                    "colour": "red",
                    "points": [{"timestamp": int(time.time()), "value": 1}],
                }
            ]
        },
        "/series/0/colour",
        "Extra inputs are not permitted",
    ),
    (
        "metrics",
        "stale point",
        _stale_metrics(),
        "/series/0/points/0/timestamp",
        "older than 1 hour",
    ),
    ("logs", "not an array", {"message": "x"}, "", "must be a non-empty array of log items"),
    ("logs", "missing message", [{"ddsource": "x"}], "/0/message", "Field required"),
    (
        "logs",
        "ddtags as a list",
        [{"message": "x", "ddtags": ["a:b"]}],
        "/0/ddtags",
        "Input should be a valid string",
    ),
    (
        "events",
        "text too long",
        {"title": "t", "text": "x" * 4001},
        "/text",
        "at most 4000 characters",
    ),
    (
        "events",
        "bad alert type",
        [{"title": "t", "text": "x", "alert_type": "panic"}],
        "/0/alert_type",
        "Input should be",
    ),
    (
        "service_checks",
        "status out of range",
        [{"check": "c", "host_name": "h", "status": 4, "tags": []}],
        "/0/status",
        "Input should be 0, 1, 2 or 3",
    ),
    (
        "service_checks",
        "stale check",
        [
            {
                "check": "c",
                "host_name": "h",
                "status": 0,
                "tags": [],
                "timestamp": int(time.time()) - 700,
            }
        ],
        "/0/timestamp",
        "older than 10 minutes",
    ),
    (
        "incidents",
        "impact without scope",
        {"data": {"type": "incidents", "attributes": {"title": "t", "customer_impacted": True}}},
        "/data/attributes/customer_impact_scope",
        "required when customer_impacted is true",
    ),
    (
        "traces",
        "span without ids",
        {"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "x"}]}]}]},
        "/resourceSpans/0/scopeSpans/0/spans/0/traceId",
        "Field required",
    ),
]


@pytest.mark.parametrize(
    ("signal", "case", "body", "pointer", "reason"), BAD_BODIES, ids=[b[1] for b in BAD_BODIES]
)
async def test_bad_bodies_are_refused_precisely_and_store_nothing(
    stack: Stack, account_id: str, signal: str, case: str, body: Any, pointer: str, reason: str
) -> None:
    connection_id, _ = await stack.connected(account_id)

    answer = await stack.send(connection_id, signal, body, **{"Idempotency-Key": case})

    assert answer.status_code == 422, answer.text
    problems = answer.json()["problems"]
    assert any(p["pointer"] == pointer and reason in p["reason"] for p in problems), problems
    assert await _outbox_rows(stack, connection_id) == 0


async def test_every_problem_is_listed(stack: Stack, account_id: str) -> None:
    connection_id, _ = await stack.connected(account_id)
    body = {"series": [{"points": [{"timestamp": "now", "value": 1}]}, {"metric": 5, "points": []}]}

    answer = await stack.send(connection_id, "metrics", body)

    pointers = {p["pointer"] for p in answer.json()["problems"]}
    assert pointers == {"/series/0/metric", "/series/0/points/0/timestamp", "/series/1/metric"}


async def test_malformed_json_is_refused(stack: Stack, account_id: str) -> None:
    connection_id, _ = await stack.connected(account_id)

    answer = await stack.api.post(
        f"/internal/v1/connections/{connection_id}/logs",
        content=b'[{"message": "x"',
        headers={"Content-Type": "application/json"},
    )

    assert answer.status_code == 422
    assert answer.json()["problems"][0]["reason"].startswith("malformed JSON")
    assert await _outbox_rows(stack, connection_id) == 0


async def test_body_over_the_limit_is_413(stack: Stack, account_id: str) -> None:
    """The stack's limit is the default 16 MiB."""
    connection_id, _ = await stack.connected(account_id)

    answer = await stack.api.post(
        f"/internal/v1/connections/{connection_id}/logs",
        content=b"[" + b" " * (16 * 1024 * 1024) + b"]",
        headers={"Content-Type": "application/json"},
    )

    assert answer.status_code == 413
    assert answer.json()["error"] == "body_too_large"
    assert await _outbox_rows(stack, connection_id) == 0


async def test_unknown_connection_is_404_and_wrong_token_401(stack: Stack) -> None:
    missing = await stack.send(str(uuid.uuid4()), "logs", payloads.logs(1))
    async with httpx.AsyncClient(base_url=stack.api_url) as anonymous:
        unauthorized = await anonymous.post(
            f"/internal/v1/connections/{uuid.uuid4()}/logs",
            json=payloads.logs(1),
            headers={"Authorization": "Bearer nope"},
        )

    assert missing.status_code == 404
    assert unauthorized.status_code == 401


async def test_disconnected_connection_is_409_with_its_status(
    stack: Stack, account_id: str
) -> None:
    connection_id, _ = await stack.connected(account_id)
    await stack.api.delete(f"/internal/v1/connections/{connection_id}")

    answer = await stack.send(connection_id, "metrics", payloads.metrics())

    assert answer.status_code == 409
    assert answer.json()["status"] == "disconnected"
    assert await _outbox_rows(stack, connection_id) == 0


async def test_idempotent_repeat_returns_the_first_answer_and_stores_nothing(
    stack: Stack, account_id: str
) -> None:
    connection_id, dd_oid = await stack.connected(account_id)
    key = {"Idempotency-Key": "order-42"}

    first = await stack.send(connection_id, "logs", payloads.logs(3), **key)
    again = await stack.send(connection_id, "logs", payloads.logs(3), **key)
    other = await stack.send(
        connection_id, "logs", payloads.logs(2), **{"Idempotency-Key": "order-43"}
    )

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert other.json()["batch_id"] != first.json()["batch_id"]
    assert len(await stack.wait_received(dd_oid, "logs", 5)) == 5
    logs = await stack.wait_delivered(connection_id, "logs", 5)
    assert logs["delivered_items"] == 5


async def test_backlog_cap_answers_429_for_that_connection_only(
    stack: Stack, account_id: str
) -> None:
    """The stack caps backlogs at 5,000 items; Datadog is made to fail so nothing drains."""
    busy, busy_oid = await stack.connected(account_id)
    quiet, _ = await stack.connected(account_id + "-quiet")
    await stack.emu.post(
        "/_emulator/faults", json={"dd_oid": busy_oid, "status": 503, "count": 1000}
    )

    for _ in range(5):
        assert (await stack.send(busy, "logs", payloads.logs(1000))).status_code == 202
    refused = await stack.send(busy, "logs", payloads.logs(1))
    elsewhere = await stack.send(quiet, "logs", payloads.logs(1))

    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "5"
    assert refused.json()["error"] == "backlog_full"
    assert elsewhere.status_code == 202
