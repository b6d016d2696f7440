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
        mine = [e for e in events if e["connection_id"] == connection_id]
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
