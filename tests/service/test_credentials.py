"""The credential door through the real API and worker: tokens stay alive, scopes are
checked before any request, a refused operation never takes a connection down, refresh
failures are told apart and walk their schedule, and no other module touches a secret."""

from __future__ import annotations

import ast
import asyncio
import itertools
import json
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
from arq.connections import RedisSettings, create_pool

from harness.databases import asyncpg_dsn
from service.jobs import REFRESH_CONNECTION
from service.signals import SPECS, Signal
from tests.support import payloads
from tests.support.stack import Stack
from tests.support.webhook_receiver import Received, Receiver

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
        # A request is logged on arrival; its status is set once the answer starts.
        answered = [c for c in calls if "grant_type=refresh_token" in c["body"] and c["status"]]
        return answered if len(answered) >= 2 else None

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


async def _expire_token(stack: Stack, connection_id: str) -> None:
    db = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    try:
        await db.execute(
            "UPDATE connections SET access_token_expires_at = now() WHERE id = $1::uuid",
            connection_id,
        )
    finally:
        await db.close()


async def _make_due(stack: Stack, connection_id: str) -> None:
    """Age the token so it is due, and ring the worker as the reconciler would."""
    await _expire_token(stack, connection_id)
    redis = await create_pool(
        RedisSettings.from_dsn(stack.redis_url), default_queue_name=stack.queue_name
    )
    try:
        await redis.enqueue_job(REFRESH_CONNECTION, connection_id)
    finally:
        await redis.aclose()


async def _fault(stack: Stack, **fault: Any) -> None:
    (await stack.emu.post("/_emulator/faults", json=fault)).raise_for_status()


async def _token_calls(stack: Stack, host: str = "api.datadoghq.com") -> list[dict[str, Any]]:
    return await stack.datadog_requests(host=host, path="/oauth2/v1/token")


INCIDENT = payloads.incident()


async def test_a_scope_the_org_did_not_grant_is_refused_before_any_request(
    stack: Stack, account_id: str
) -> None:
    await stack.register_client(scopes=["api_keys_write"])
    connection_id, dd_oid = await stack.connected(account_id)

    monitors = await stack.api.get(f"/internal/v1/connections/{connection_id}/monitors")
    incident = await stack.send(connection_id, "incidents", INCIDENT)
    metrics = await stack.send(connection_id, "metrics", payloads.metrics())

    assert monitors.status_code == 403, monitors.text
    assert (monitors.json()["error"], monitors.json()["scope"]) == (
        "missing_scope",
        "monitors_read",
    )
    assert incident.status_code == 403, incident.text
    assert (incident.json()["error"], incident.json()["scope"]) == (
        "missing_scope",
        "incident_write",
    )
    assert await stack.datadog_requests(path="/api/v1/monitor") == []
    assert metrics.status_code == 202
    assert len(await stack.wait_received(dd_oid, "metrics", 1)) == 1
    assert (await _connection(stack, connection_id))["status"] == "active"


async def test_an_operation_refused_after_a_refresh_fails_that_call_only(
    stack: Stack, account_id: str
) -> None:
    connection_id, dd_oid = await stack.connected(account_id)
    await _fault(stack, path="/api/v1/monitor", status=403, count=2, body={"errors": ["Forbidden"]})
    await _fault(
        stack, path="/api/v2/incidents", status=403, count=2, body={"errors": ["Forbidden"]}
    )

    refused = await stack.api.get(f"/internal/v1/connections/{connection_id}/monitors")
    sent = await stack.send(connection_id, "incidents", INCIDENT)
    [letter] = await stack.wait_dead_letters(connection_id, 1)
    metrics = await stack.send(connection_id, "metrics", payloads.metrics())

    assert refused.status_code == 403, refused.text
    assert refused.json()["error"] == "operation_refused"
    assert sent.status_code == 202
    assert (letter["signal"], letter["status"]) == ("incidents", 403)
    assert "after a token refresh" in letter["reason"]
    assert metrics.status_code == 202
    assert len(await stack.wait_received(dd_oid, "metrics", 1)) == 1
    current = await _connection(stack, connection_id)
    assert current["status"] == "active"
    assert [t["to_status"] for t in current["history"]] == ["pending", "active"]
    refreshes = [c for c in await _token_calls(stack) if "grant_type=refresh_token" in c["body"]]
    assert [c["status"] for c in refreshes] == [200, 200], "one refresh per refused call"
    again = await stack.api.get(f"/internal/v1/connections/{connection_id}/monitors")
    assert again.status_code == 200, again.text


async def test_refresh_retries_walk_the_schedule_then_recover(
    stack: Stack, account_id: str
) -> None:
    connection_id, _ = await stack.connected(account_id)
    await _fault(stack, path="/oauth2/v1/token", status=503, count=2)
    before = len(await _token_calls(stack))
    await _make_due(stack, connection_id)

    seen: list[float] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        calls = (await _token_calls(stack))[before:]
        while len(seen) < len(calls):
            seen.append(time.monotonic())
        if calls and calls[-1]["status"] == 200:
            break
        await asyncio.sleep(0.05)

    statuses = [c["status"] for c in (await _token_calls(stack))[before:]]
    gaps = [round(b - a, 1) for a, b in itertools.pairwise(seen)]
    print(f"refresh attempts {statuses}, seconds between them {gaps}")
    assert statuses == [503, 503, 200]
    # REFRESH_RETRY_DELAYS [5, 15, ...] with ±20% jitter: the gap grows.
    assert 3.9 <= gaps[0] <= 6.5, gaps
    assert 11.9 <= gaps[1] <= 18.5, gaps
    current = await _connection(stack, connection_id)
    assert current["status"] == "active"


async def test_reads_and_deliveries_wait_for_the_refresh_retry_time(
    stack: Stack, account_id: str
) -> None:
    """After a failed refresh, a monitors read and an incident's delivery make no token call
    of their own: the read answers 503 with `Retry-After`, the incident waits; the schedule's
    retry is the only next call, and then the incident is delivered."""
    connection_id, dd_oid = await stack.connected(account_id)
    await _fault(stack, path="/oauth2/v1/token", status=503, count=1)
    before = len(await _token_calls(stack))
    await _make_due(stack, connection_id)

    async def retry_scheduled() -> asyncpg.Record | None:
        row = await _row(stack, connection_id)
        return row if row["refresh_retry_at"] is not None else None

    row = await _eventually(retry_scheduled)
    read = await stack.api.get(f"/internal/v1/connections/{connection_id}/monitors")
    sent = await stack.send(connection_id, "incidents", INCIDENT)

    async def incidents_paused() -> bool | None:
        db = await asyncpg.connect(asyncpg_dsn(stack.database_url))
        try:
            paused = await db.fetchval(
                "SELECT paused_until FROM partitions WHERE connection_id = $1::uuid"
                " AND signal = 'incidents'",
                connection_id,
            )
        finally:
            await db.close()
        return True if paused is not None else None

    await _eventually(incidents_paused)
    during_wait = [c["status"] for c in (await _token_calls(stack))[before:]]
    waited = (row["refresh_retry_at"] - datetime.now(UTC)).total_seconds()

    assert waited > 0, "the checks above ran before the retry time"
    assert during_wait == [503], "no token call before the retry time"
    assert read.status_code == 503, read.text
    assert read.json()["error"] == "datadog_unavailable"
    assert 1 <= int(read.headers["Retry-After"]) <= 7
    assert sent.status_code == 202
    assert len(await stack.wait_received(dd_oid, "incidents", 1)) == 1
    assert [c["status"] for c in (await _token_calls(stack))[before:]] == [503, 200]
    assert (await _connection(stack, connection_id))["status"] == "active"


async def test_invalid_client_blames_no_connection_tells_the_operator_and_recovers(
    stack: Stack, account_id: str, webhook: Receiver
) -> None:
    site = "ap1.datadoghq.com"
    refused = 3
    ids = [(await stack.connected(f"{account_id}-{n}", site))[0] for n in range(refused)]
    await _fault(
        stack,
        host=f"api.{site}",
        path="/oauth2/v1/token",
        status=401,
        count=refused,
        body={"error": "invalid_client", "error_description": "Invalid client credentials"},
    )
    before = len(await _token_calls(stack, f"api.{site}"))
    for connection_id in ids:
        await _make_due(stack, connection_id)

    async def refreshed_after_refusals() -> list[int] | None:
        calls = (await _token_calls(stack, f"api.{site}"))[before:]
        statuses = [c["status"] for c in calls]
        return statuses if statuses.count(200) == refused else None

    statuses = await _eventually(refreshed_after_refusals)

    assert sorted(statuses) == [200] * refused + [401] * refused
    for connection_id in ids:
        current = await _connection(stack, connection_id)
        assert current["status"] == "active"
        assert [t["to_status"] for t in current["history"]] == ["pending", "active"]
    async with httpx.AsyncClient() as http:
        worker_metrics = (await http.get(stack.worker_metrics_url)).text
    assert re.search(
        rf'ddbridge_credential_failures_total\{{kind="invalid_client",site="{site}"\}} [1-9]',
        worker_metrics,
    )
    # The operator hears of it once (not once per connection), with the site and client id.
    db = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    try:
        recorded = await db.fetchval(
            "SELECT count(*) FROM webhook_events WHERE type = 'client.credentials_refused'"
            " AND payload->>'domain' = $1",
            site,
        )
    finally:
        await db.close()
    assert recorded == 1

    async def told() -> list[Received] | None:
        found = [r for r in list(webhook.received) if b"client.credentials_refused" in r.body]
        return found or None

    [event] = await _eventually(told)
    body = json.loads(event.body)
    assert {k: body[k] for k in ("type", "domain", "client_id", "error")} == {
        "type": "client.credentials_refused",
        "domain": site,
        "client_id": stack.client_id,
        "error": "invalid_client",
    }
    assert "connection_id" not in body
    assert stack.client_secret not in event.body.decode()


DOOR = "service/credentials.py"
CRYPTO = "service/crypto.py"
AUTH_HEADER_NAMES = {"dd-api-key", "dd-application-key", "authorization"}


def door_violations(name: str, source: str) -> list[str]:
    """Where `source` does what only the credential door may: opens or seals a secret with
    the key ring, uses the cipher itself, names an auth header or writes a Bearer value, or
    reaches into the door's private helpers."""
    found = []

    def flag(node: ast.AST, what: str) -> None:
        found.append(f"{name}:{getattr(node, 'lineno', '?')}: {what}: {ast.unparse(node)[:80]}")

    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("open", "seal")
            and "keyring" in ast.unparse(node.func.value).lower()
        ):
            flag(node, "opens or seals a secret")
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            if node.module.startswith("cryptography"):
                flag(node, "uses the cipher")
            if node.module == "service.credentials" and any(
                alias.name.startswith("_") for alias in node.names
            ):
                flag(node, "imports the door's private helpers")
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "credentials"
            and node.attr.startswith("_")
        ):
            flag(node, "uses the door's private helpers")
        elif _names_an_auth_header(node):
            flag(node, "builds an auth header")
        elif (
            isinstance(node, ast.JoinedStr)
            and node.values
            and isinstance(node.values[0], ast.Constant)
            and str(node.values[0].value).lower().startswith("bearer ")
        ):
            flag(node, "writes a Bearer value")
    return found


def _names_an_auth_header(node: ast.AST) -> bool:
    """A dict literal with an auth header's name as a key, or an assignment to one."""
    if isinstance(node, ast.Dict):
        keys = [key for key in node.keys if isinstance(key, ast.Constant)]
    elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
        keys = [node.slice] if isinstance(node.slice, ast.Constant) else []
    else:
        return False
    return any(str(key.value).lower() in AUTH_HEADER_NAMES for key in keys)


def test_the_door_check_finds_each_kind_of_trespass() -> None:
    trespass = """
from service.credentials import _open
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
def call(res, connection, headers):
    token = res.keyring.open(connection.access_token, context="x")
    sealed = res.keyring.seal(token, context="x")
    headers["DD-API-KEY"] = credentials._open(res.keyring, connection, "api_key")
    return {"Authorization": f"Bearer {token}"}
"""
    found = door_violations("trespass.py", trespass)
    assert len(found) == 8, "\n".join(found)


def test_no_module_outside_the_credential_door_opens_a_secret_or_builds_an_auth_header() -> None:
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for path in sorted([*root.glob("service/**/*.py"), *root.glob("worker/**/*.py")]):
        name = str(path.relative_to(root))
        if name not in (DOOR, CRYPTO):
            offenders += door_violations(name, path.read_text())
    assert offenders == []
    door = (root / DOOR).read_text()
    assert door_violations(DOOR, door), "the door itself is where this happens"
    assert {SPECS[signal].scope for signal in Signal} == {None, "incident_write"}


async def test_an_undecryptable_secret_shows_on_the_connection_and_in_a_metric(
    stack: Stack, account_id: str
) -> None:
    connection_id, _ = await stack.connected(account_id)
    db = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    try:
        # Sealed by a key the ring does not hold (as after dropping a key too early).
        await db.execute(
            "UPDATE connections SET api_key = overlay(api_key placing '\\xffffffffffffffff'::bytea"
            " from 2), access_token = overlay(access_token placing '\\xffffffffffffffff'::bytea"
            " from 2) WHERE id = $1::uuid",
            connection_id,
        )
    finally:
        await db.close()

    read = await stack.api.get(f"/internal/v1/connections/{connection_id}/monitors")
    sent = await stack.send(connection_id, "metrics", payloads.metrics())

    assert read.status_code == 503, read.text
    assert read.json()["error"] == "secret_unreadable"
    assert "DDBRIDGE_ENCRYPTION_KEYS" in read.json()["detail"]
    assert sent.status_code == 202, "accepted data waits for the key to be restored"

    async def noted() -> dict[str, Any] | None:
        current = await _connection(stack, connection_id)
        return current if "DDBRIDGE_ENCRYPTION_KEYS" in (current["status_reason"] or "") else None

    current = await _eventually(noted)
    assert current["status"] == "active"
    async with httpx.AsyncClient() as http:
        api_metrics = (await http.get(f"{stack.api_url}/metrics")).text
    assert 'ddbridge_credential_failures_total{kind="undecryptable",site="datadoghq.com"}' in (
        api_metrics
    )


async def _status_becomes(stack: Stack, connection_id: str, status: str) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        current = await _connection(stack, connection_id)
        return current if current["status"] == status else None

    return await _eventually(reached)


async def test_after_key_invalid_reconnecting_delivers_what_was_held(
    stack: Stack, account_id: str
) -> None:
    connection_id, dd_oid = await stack.connected(account_id)
    await stack.emu.post("/_emulator/api_keys/revoke", json={"dd_oid": dd_oid})
    assert (await stack.send(connection_id, "logs", payloads.logs(3))).status_code == 202
    await _status_becomes(stack, connection_id, "key_invalid")

    page = await stack.connect(account_id, {"dd_oid": dd_oid}, domain="datadoghq.com")

    assert page.status_code == 200, page.text
    assert len(await stack.wait_received(dd_oid, "logs", 3)) == 3
    current = await _connection(stack, connection_id)
    assert (current["status"], current["has_api_key"]) == ("active", True)


async def _webhook_events(webhook: Receiver, connection_id: str, count: int) -> list[Any]:
    """The connection's webhook events, polled until there are at least `count`."""

    async def arrived() -> list[Any] | None:
        events = [json.loads(r.body) for r in list(webhook.received)]
        mine = [e for e in events if e.get("connection_id") == connection_id]
        return mine if len(mine) >= count else None

    return await _eventually(arrived)


async def test_invalid_grant_then_reconnect_restores_the_same_connection_and_its_data(
    stack: Stack, account_id: str, webhook: Receiver
) -> None:
    connection_id, dd_oid = await stack.connected(account_id)
    await _fault(
        stack,
        path="/oauth2/v1/token",
        status=400,
        body={"error": "invalid_grant", "error_description": "Invalid refresh token"},
    )
    # The token expired: the incident's delivery needs a refresh, which finds the grant gone.
    await _expire_token(stack, connection_id)
    before = len(await _token_calls(stack))
    assert (await stack.send(connection_id, "incidents", INCIDENT)).status_code == 202
    await _status_becomes(stack, connection_id, "reauth_required")
    assert [c["status"] for c in (await _token_calls(stack))[before:]] == [400], "one call"
    told = (await _webhook_events(webhook, connection_id, 3))[2]
    assert (told["type"], told["from_status"], told["to_status"]) == (
        "connection.status_changed",
        "active",
        "reauth_required",
    )
    assert "invalid_grant" in told["reason"]

    page = await stack.connect(account_id, {"dd_oid": dd_oid}, domain="datadoghq.com")

    assert page.status_code == 200, page.text
    assert len(await stack.wait_received(dd_oid, "incidents", 1)) == 1
    [again] = await stack.connections(account_id)
    assert (again["id"], again["status"]) == (connection_id, "active")
    restored = (await _webhook_events(webhook, connection_id, 4))[3]
    assert (restored["from_status"], restored["to_status"]) == ("reauth_required", "active")


async def test_a_hung_token_endpoint_does_not_hold_up_other_connections(
    stack: Stack, account_id: str
) -> None:
    hung_site = "us5.datadoghq.com"
    hung = [(await stack.connected(f"{account_id}-{n}", hung_site))[0] for n in range(12)]
    healthy_id, healthy_oid = await stack.connected(account_id)
    await _fault(stack, host=f"api.{hung_site}", path="/oauth2/v1/token", delay_seconds=8, count=40)
    for connection_id in hung:
        await _make_due(stack, connection_id)

    async def token_calls_hanging() -> int | None:
        calls = await _token_calls(stack, host=f"api.{hung_site}")
        hanging = sum(call["status"] is None for call in calls)
        return hanging if hanging >= 4 else None

    await _eventually(token_calls_hanging)
    sent = await stack.send(healthy_id, "logs", payloads.logs(5))
    read = await stack.api.get(f"/internal/v1/connections/{healthy_id}/monitors")
    delivered = await stack.wait_received(healthy_oid, "logs", 5, deadline_seconds=5)
    still_hanging = sum(
        c["status"] is None for c in await _token_calls(stack, host=f"api.{hung_site}")
    )

    assert sent.status_code == 202
    assert read.status_code == 200, read.text
    assert len(delivered) == 5, "delivered while the other site's token calls hang"
    assert still_hanging >= 1
    for connection_id in hung:
        assert (await _connection(stack, connection_id))["status"] == "active"
