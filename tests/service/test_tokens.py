"""Tokens stay alive through the real worker; a lost grant and a disconnect are handled."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from arq.connections import RedisSettings, create_pool

from service.jobs import REFRESH_CONNECTION
from tests.support.stack import Stack, asyncpg_dsn

T = TypeVar("T")

DEADLINE_SECONDS = 30


async def _eventually(probe: Callable[[], Awaitable[T | None]]) -> T:
    """Poll `probe` until it returns a value (the worker runs on its own schedule)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        value = await probe()
        if value is not None:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition not met within {DEADLINE_SECONDS} s")


async def _connection(stack: Stack, connection_id: str) -> dict[str, Any]:
    response = await stack.api.get(f"/internal/v1/connections/{connection_id}")
    assert response.status_code == 200
    found: dict[str, Any] = response.json()
    return found


async def test_worker_refreshes_a_token_before_it_expires(stack: Stack, account_id: str) -> None:
    # The stack refreshes 30 s before expiry; a 31 s token is due one second after connecting.
    await stack.emulator_settings(access_token_ttl_seconds=31, rotate_refresh_tokens=True)
    org = await stack.create_org("us3.datadoghq.com")
    await stack.connect(account_id, org, domain="us3.datadoghq.com")
    [connection] = await stack.connections(account_id)

    async def two_refreshes() -> list[dict[str, Any]] | None:
        calls = await stack.datadog_requests(host="api.us3.datadoghq.com", path="/oauth2/v1/token")
        refreshes = [c for c in calls if "grant_type=refresh_token" in c["body"]]
        return refreshes if len(refreshes) >= 2 else None

    refreshes = await _eventually(two_refreshes)
    await stack.emulator_settings(access_token_ttl_seconds=3600)

    # Rotation invalidates each used refresh token, so a second success proves the newest
    # refresh token was stored with its access token.
    assert [call["status"] for call in refreshes[:2]] == [200, 200]
    refreshed = await _connection(stack, connection["id"])
    assert refreshed["status"] == "active"
    assert refreshed["access_token_expires_at"] > connection["access_token_expires_at"]


async def test_refused_refresh_requires_reauthorization_then_reconnect_restores(
    stack: Stack, account_id: str
) -> None:
    org = await stack.create_org("datadoghq.com")
    await stack.connect(account_id, org, domain="datadoghq.com")
    [connection] = await stack.connections(account_id)
    # The user revokes the integration in Datadog: every later refresh gets invalid_grant.
    await stack.emu.post(
        "/_emulator/faults",
        json={
            "host": "api.datadoghq.com",
            "path": "/oauth2/v1/token",
            "count": 1,
            "status": 400,
            "body": {"error": "invalid_grant", "error_description": "Invalid refresh token"},
        },
    )
    await _make_due(stack, connection["id"])

    async def reauth_required() -> dict[str, Any] | None:
        current = await _connection(stack, connection["id"])
        return current if current["status"] == "reauth_required" else None

    current = await _eventually(reauth_required)
    assert "invalid_grant" in current["status_reason"]
    assert [t["to_status"] for t in current["history"]] == ["pending", "active", "reauth_required"]

    await stack.connect(account_id, org, domain="datadoghq.com")
    restored = await _connection(stack, connection["id"])
    assert restored["status"] == "active"
    assert restored["history"][-1]["to_status"] == "active"


async def test_disconnect_revokes_at_datadog_and_erases_secrets(
    stack: Stack, account_id: str
) -> None:
    org = await stack.create_org("uk1.datadoghq.com")
    await stack.connect(account_id, org, domain="uk1.datadoghq.com")
    [connection] = await stack.connections(account_id)

    answer = await stack.api.delete(f"/internal/v1/connections/{connection['id']}")

    assert answer.status_code == 200
    assert answer.json()["status"] == "disconnected"
    assert answer.json()["has_api_key"] is False
    [revoke] = await stack.datadog_requests(path="/oauth2/v1/revoke")
    assert (revoke["host"], revoke["status"]) == ("api.uk1.datadoghq.com", 200)
    row = await _row(stack, connection["id"])
    assert (row["access_token"], row["refresh_token"], row["api_key"]) == (None, None, None)


async def test_disconnect_during_an_outage_changes_nothing(stack: Stack, account_id: str) -> None:
    org = await stack.create_org("datadoghq.com")
    await stack.connect(account_id, org, domain="datadoghq.com")
    [connection] = await stack.connections(account_id)
    await stack.emu.post(
        "/_emulator/faults",
        json={"host": "api.datadoghq.com", "path": "/oauth2/v1/revoke", "status": 503},
    )

    answer = await stack.api.delete(f"/internal/v1/connections/{connection['id']}")

    assert answer.status_code == 503
    assert answer.json()["error"] == "datadog_unavailable"
    assert (await _connection(stack, connection["id"]))["status"] == "active"
    row = await _row(stack, connection["id"])
    assert row["refresh_token"] is not None


async def _row(stack: Stack, connection_id: str) -> asyncpg.Record:
    db = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    try:
        row = await db.fetchrow("SELECT * FROM connections WHERE id = $1::uuid", connection_id)
    finally:
        await db.close()
    assert row is not None
    return row


async def _make_due(stack: Stack, connection_id: str) -> None:
    """Age the token so it is due, and ring the worker as the reconciler would."""
    db = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    try:
        await db.execute(
            "UPDATE connections SET access_token_expires_at = now() WHERE id = $1::uuid",
            connection_id,
        )
    finally:
        await db.close()
    redis = await create_pool(
        RedisSettings.from_dsn(stack.redis_url), default_queue_name=stack.queue_name
    )
    try:
        await redis.enqueue_job(REFRESH_CONNECTION, connection_id)
    finally:
        await redis.aclose()
