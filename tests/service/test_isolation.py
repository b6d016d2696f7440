"""One connection's trouble stays its own: a revoked key and a rate limit do not hold others.

The throughput share a healthy connection keeps is a figure, measured by `bench/` (targets
live in benchmarks); this test shows the behaviour: who waits, who is held, who flows.
"""

from __future__ import annotations

import time

from tests.support import payloads
from tests.support.stack import Stack


async def test_revoked_key_and_rate_limit_do_not_hold_a_healthy_connection(
    stack: Stack, account_id: str
) -> None:
    revoked, revoked_oid = await stack.connected(account_id + "-revoked", "datadoghq.com")
    limited, limited_oid = await stack.connected(account_id + "-limited", "datadoghq.eu")
    healthy, healthy_oid = await stack.connected(account_id + "-healthy", "datadoghq.com")
    await stack.emu.post("/_emulator/api_keys/revoke", json={"dd_oid": revoked_oid})
    reset_seconds = 3
    await stack.emu.post(
        "/_emulator/faults",
        json={
            "dd_oid": limited_oid,
            "path": "/api/v2/logs",
            "status": 429,
            "count": 1,
            "headers": {
                "X-RateLimit-Limit": "100",
                "X-RateLimit-Period": "10",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(reset_seconds),
                "X-RateLimit-Name": "logs",
            },
            "body": {"errors": ["Too many requests"]},
        },
    )
    started = time.time()

    for connection in (revoked, limited):
        assert (await stack.send(connection, "logs", payloads.logs(100))).status_code == 202
    for _ in range(10):
        assert (await stack.send(healthy, "logs", payloads.logs(100))).status_code == 202

    healthy_items = await stack.wait_received(healthy_oid, "logs", 1000)
    assert len(healthy_items) == 1000
    healthy_done = max(item["received_at"] for item in healthy_items)
    limited_items = await stack.wait_received(limited_oid, "logs", 100)
    assert len(limited_items) == 100
    limited_done = min(item["received_at"] for item in limited_items)

    assert limited_done - started >= reset_seconds, "the 429 partition waited X-RateLimit-Reset"
    assert healthy_done < limited_done, "the healthy connection did not wait for it"
    view = (await stack.api.get(f"/internal/v1/connections/{revoked}")).json()
    assert view["status"] == "key_invalid"
    assert "confirmed by /api/v1/validate" in view["status_reason"]
    [logs] = [p for p in view["delivery"] if p["signal"] == "logs"]
    assert logs["pending_items"] == 100, "its data is held, not dropped"
    assert await stack.received(revoked_oid, "logs") == []
    refused = await stack.send(revoked, "logs", payloads.logs(1))
    assert (refused.status_code, refused.json()["status"]) == (409, "key_invalid")
