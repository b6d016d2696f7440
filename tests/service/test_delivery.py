"""Every signal reaches the right org, host, credential and encoding, through the real worker."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import pytest

from harness.databases import asyncpg_dsn
from service.sites import KNOWN_SITES, Site
from tests.support import payloads
from tests.support.stack import Stack

SETTLE_SECONDS = 30


@pytest.mark.parametrize("site", KNOWN_SITES, ids=lambda site: site.name)
async def test_metrics_and_logs_reach_the_org_on_every_site(
    stack: Stack, account_id: str, site: Site
) -> None:
    connection_id, dd_oid = await stack.connected(account_id, site.domain)

    metrics = await stack.send(connection_id, "metrics", payloads.metrics(series=3, points=2))
    logs = await stack.send(connection_id, "logs", payloads.logs(5))

    assert metrics.status_code == 202, metrics.text
    assert metrics.json()["accepted"] == 6
    assert logs.status_code == 202, logs.text
    series = {
        s["item"]["metric"]: s["item"] for s in await stack.wait_received(dd_oid, "metrics", 3)
    }
    assert sum(len(s["points"]) for s in series.values()) == 6
    assert len(await stack.wait_received(dd_oid, "logs", 5)) >= 5
    # At least once: a timed-out request may be sent twice, each the same way.
    series_calls = await stack.datadog_requests(path="/api/v2/series")
    logs_calls = await stack.datadog_requests(path="/api/v2/logs")
    assert series_calls
    assert logs_calls
    for call in series_calls:
        assert (call["host"], call["headers"]["content-encoding"]) == (site.api_host, "zstd1")
        assert "dd-api-key" in call["headers"]
    for call in logs_calls:
        assert (call["host"], call["headers"]["content-encoding"]) == (site.logs_host, "gzip")


@pytest.mark.parametrize("site", KNOWN_SITES, ids=lambda site: site.name)
async def test_events_checks_incidents_and_traces_reach_the_org(
    stack: Stack, account_id: str, site: Site
) -> None:
    connection_id, dd_oid = await stack.connected(account_id, site.domain)

    answers = {
        "events": await stack.send(
            connection_id, "events", [payloads.event("a"), payloads.event("b")]
        ),
        "service_checks": await stack.send(
            connection_id, "service_checks", payloads.service_checks(4)
        ),
        "incidents": await stack.send(connection_id, "incidents", payloads.incident()),
    }
    traces = await stack.send(connection_id, "traces", payloads.traces(spans=3))

    assert {signal: a.status_code for signal, a in answers.items()} == dict.fromkeys(answers, 202)
    assert len(await stack.wait_received(dd_oid, "events", 2)) == 2
    assert len(await stack.wait_received(dd_oid, "service_checks", 4)) == 4
    assert len(await stack.wait_received(dd_oid, "incidents", 1)) == 1
    events = await stack.datadog_requests(path="/api/v1/events")
    assert [(e["host"], "dd-api-key" in e["headers"]) for e in events] == [
        (site.api_host, True)
    ] * 2
    [incident] = await stack.datadog_requests(path="/api/v2/incidents")
    assert incident["host"] == site.api_host
    assert incident["headers"]["authorization"].startswith("Bearer ")
    if site.has_otlp_intake:
        assert traces.status_code == 202, traces.text
        assert traces.json()["accepted"] == 3
        assert len(await stack.wait_received(dd_oid, "traces", 3)) == 3
        [trace_call] = await stack.datadog_requests(path="/v1/traces")
        assert trace_call["host"] == site.trace_host
    else:
        assert traces.status_code == 409
        assert "no agentless trace intake" in traces.json()["detail"]


async def test_1001_logs_become_two_requests(stack: Stack, account_id: str) -> None:
    connection_id, dd_oid = await stack.connected(account_id)

    answer = await stack.send(connection_id, "logs", payloads.logs(1001))

    assert answer.json()["accepted"] == 1001
    assert len(await stack.wait_received(dd_oid, "logs", 1001)) == 1001
    requests = await stack.datadog_requests(path="/api/v2/logs")
    assert sorted(r["status"] for r in requests) == [202, 202]


async def test_series_over_the_compressed_limit_is_split(stack: Stack, account_id: str) -> None:
    """Random values barely compress: 3 MB of series cannot fit 512,000 bytes on the wire."""
    connection_id, dd_oid = await stack.connected(account_id)
    body = payloads.metrics(series=300, points=600, random_values=True)

    answer = await stack.send(connection_id, "metrics", body)

    assert answer.status_code == 202, answer.text
    series = await stack.wait_received(dd_oid, "metrics", 300)
    assert sum(len(s["item"]["points"]) for s in series) == 300 * 600
    requests = await stack.datadog_requests(path="/api/v2/series")
    assert len(requests) >= 2
    assert all(r["status"] == 202 for r in requests)


async def test_413_from_datadog_is_split_and_delivered(stack: Stack, account_id: str) -> None:
    connection_id, dd_oid = await stack.connected(account_id)
    await stack.emu.post(
        "/_emulator/faults",
        json={
            "path": "/api/v2/logs",
            "status": 413,
            "count": 1,
            "body": {"errors": ["Payload too large"]},
        },
    )

    await stack.send(connection_id, "logs", payloads.logs(10))

    assert len(await stack.wait_received(dd_oid, "logs", 10)) == 10
    statuses = [r["status"] for r in await stack.datadog_requests(path="/api/v2/logs")]
    assert statuses == [413, 202, 202]
    view = (await stack.api.get(f"/internal/v1/connections/{connection_id}")).json()
    [logs] = [p for p in view["delivery"] if p["signal"] == "logs"]
    assert (logs["delivered_items"], logs["dead_items"], logs["pending_items"]) == (10, 0, 0)
    assert await backlog_once_drained(stack, connection_id) == 0, "split rows counted right"


async def test_single_oversized_item_goes_to_dead_letters(stack: Stack, account_id: str) -> None:
    connection_id, dd_oid = await stack.connected(account_id)
    huge = payloads.metrics(series=1, points=60_000, random_values=True)
    small = payloads.metrics(series=2, points=1)

    assert (await stack.send(connection_id, "metrics", huge)).status_code == 202
    assert (await stack.send(connection_id, "metrics", small)).status_code == 202

    assert len(await stack.wait_received(dd_oid, "metrics", 2)) == 2
    letters = await stack.wait_dead_letters(connection_id, 1)
    [letter] = letters
    assert (letter["kind"], letter["item_count"]) == ("too_large", 1)
    assert "size limit" in letter["reason"]


async def test_400_isolates_the_refused_item_and_replay_resends_it(
    stack: Stack, account_id: str
) -> None:
    connection_id, dd_oid = await stack.connected(account_id)
    await stack.emu.post(
        "/_emulator/faults",
        json={
            "path": "/api/v1/check_run",
            "status": 400,
            "count": 2,  # the batch of two, then its first half
            "body": {"errors": ["Invalid check name"]},
        },
    )

    await stack.send(connection_id, "service_checks", payloads.service_checks(2))

    [letter] = await stack.wait_dead_letters(connection_id, 1)
    assert (letter["kind"], letter["status"], letter["errors"]) == (
        "rejected",
        400,
        ["Invalid check name"],
    )
    replayed = await stack.api.post(
        f"/internal/v1/connections/{connection_id}/dead_letters/replay", json={}
    )
    assert replayed.json() == [{"signal": "service_checks", "items": 1}]
    assert len(await stack.wait_received(dd_oid, "service_checks", 2)) == 2
    assert await backlog_once_drained(stack, connection_id) == 0, "buried, replayed, counted"


async def backlog_once_drained(stack: Stack, connection_id: str) -> int:
    """The connection's `backlogs` count once its outbox is empty (polled): 0 when every
    insert and delete of its rows moved the count by their items."""
    db = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    key = uuid.UUID(connection_id)
    deadline = time.monotonic() + SETTLE_SECONDS
    try:
        while time.monotonic() < deadline:
            if not await db.fetchval("SELECT count(*) FROM outbox WHERE connection_id = $1", key):
                break
            await asyncio.sleep(0.1)
        counted = await db.fetchval(
            "SELECT pending_items FROM backlogs WHERE connection_id = $1", key
        )
    finally:
        await db.close()
    return int(counted)


async def test_incident_with_an_unclear_outcome_is_looked_up_not_recreated(
    stack: Stack, account_id: str
) -> None:
    """Datadog creates the incident but answers after the worker's 5 s timeout."""
    connection_id, dd_oid = await stack.connected(account_id)
    await stack.emu.post(
        "/_emulator/faults",
        json={"dd_oid": dd_oid, "path": "/api/v2/incidents", "delay_seconds": 6, "count": 1},
    )

    await stack.send(connection_id, "incidents", payloads.incident("Payments are down"))

    async def settled() -> bool:
        view = (await stack.api.get(f"/internal/v1/connections/{connection_id}")).json()
        return any(
            p["signal"] == "incidents" and p["delivered_items"] == 1 for p in view["delivery"]
        )

    deadline = time.monotonic() + 30
    while not await settled():
        assert time.monotonic() < deadline, "the incident was not settled"
        await asyncio.sleep(0.1)
    calls = await stack.datadog_requests(path="/api/v2/incidents")
    assert [c["method"] for c in calls] == ["POST", "GET"]
    assert len(await stack.received(dd_oid, "incidents")) == 1
