"""Every connection transition reaches the partner's webhook, signed and in order."""

from __future__ import annotations

import asyncio
import json
import time

from service.webhooks import SIGNATURE_HEADER, signature
from tests.conftest import WEBHOOK_SECRET
from tests.support.stack import Stack
from tests.support.webhook_receiver import Receiver

DEADLINE_SECONDS = 30


async def _events_of(webhook: Receiver, connection_id: str, count: int) -> list[dict[str, object]]:
    """Poll until the receiver has `count` events of the connection (the worker's cron sends)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        events = [json.loads(r.body) for r in list(webhook.received)]
        mine = [e for e in events if e.get("connection_id") == connection_id]
        if len(mine) >= count or time.monotonic() > deadline:
            return mine
        await asyncio.sleep(0.1)


async def test_transitions_are_posted_signed_and_in_order(
    stack: Stack, account_id: str, webhook: Receiver
) -> None:
    connection_id, dd_oid = await stack.connected(account_id, "us3.datadoghq.com")
    await stack.api.delete(f"/internal/v1/connections/{connection_id}")

    events = await _events_of(webhook, connection_id, 3)

    assert [(e["from_status"], e["to_status"]) for e in events] == [
        (None, "pending"),
        ("pending", "active"),
        ("active", "disconnected"),
    ]
    assert {(e["account_id"], e["dd_org_id"], e["domain"]) for e in events} == {
        (account_id, dd_oid, "us3.datadoghq.com")
    }
    for request in webhook.received:
        header = request.headers[SIGNATURE_HEADER]
        timestamp = int(header.split(",")[0].removeprefix("t="))
        assert header == signature(WEBHOOK_SECRET, timestamp, request.body)


async def test_a_failing_webhook_is_retried_without_losing_order(
    stack: Stack, account_id: str, webhook: Receiver
) -> None:
    webhook.answer_status = 503
    try:
        connection_id, _ = await stack.connected(account_id)
        await stack.api.delete(f"/internal/v1/connections/{connection_id}")
        refused_before = webhook.refused
        deadline = time.monotonic() + DEADLINE_SECONDS
        while webhook.refused == refused_before:  # the worker tried, and was refused
            assert time.monotonic() < deadline, "the worker never tried the webhook"
            await asyncio.sleep(0.1)
    finally:
        webhook.answer_status = 200

    events = await _events_of(webhook, connection_id, 3)

    assert [e["to_status"] for e in events] == ["pending", "active", "disconnected"]


SLOW_RECEIVER_SECONDS = 0.4
"""Long enough that sending one cron tick's transitions outlasts the 5 s between ticks."""
SLOW_CONNECTIONS = 12


async def test_a_slow_receiver_gets_every_transition_once_in_creation_order(
    stack: Stack, account_id: str, webhook: Receiver
) -> None:
    """One worker, a receiver taking 0.4 s per event, and disconnects made while the sender
    is busy with the same connections' older transitions: each arrives once, in the order it
    happened, typed `connection.status_changed`."""
    webhook.delay_seconds = SLOW_RECEIVER_SECONDS
    try:
        ids = [
            (await stack.connected(f"{account_id}-{number}"))[0]
            for number in range(SLOW_CONNECTIONS)
        ]
        first = await _events_of(webhook, ids[0], 1)  # the sender is now busy with them
        assert first, "no transition reached the webhook"
        for connection_id in reversed(ids):  # the last connected waits longest for its turn
            deleted = await stack.api.delete(f"/internal/v1/connections/{connection_id}")
            assert deleted.status_code == 200, deleted.text
        created = [(cid, status) for cid in ids for status in ("pending", "active")]
        created += [(cid, "disconnected") for cid in reversed(ids)]

        deadline = time.monotonic() + len(created) * SLOW_RECEIVER_SECONDS + DEADLINE_SECONDS
        while True:
            events = [json.loads(r.body) for r in list(webhook.received)]
            mine = [e for e in events if e.get("connection_id") in ids]
            if len(mine) >= len(created) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
    finally:
        webhook.delay_seconds = 0

    assert [(e["connection_id"], e["to_status"]) for e in mine] == created
    event_ids = [e["event_id"] for e in mine]
    assert event_ids == sorted(set(event_ids)), "an event arrived twice or out of order"
    assert {e["type"] for e in mine} == {"connection.status_changed"}
