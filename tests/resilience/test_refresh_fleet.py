"""Refreshing a fleet of connections: single-flight across the API and several workers, and a
client secret rotated in its mounted file without a restart."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.isolated_stack import isolated_stack
from tests.support.stack import Stack

CONNECTIONS = 50
WORKERS = 3


async def _connect_many(stack: Stack, count: int) -> list[str]:
    ids = []
    for number in range(count):
        connection_id, _ = await stack.connected(f"fleet-{number}")
        ids.append(connection_id)
    return ids


async def _refresh_calls(stack: Stack) -> list[dict[str, Any]]:
    calls = await stack.datadog_requests(host="api.datadoghq.com", path="/oauth2/v1/token")
    return [call for call in calls if "grant_type=refresh_token" in call["body"]]


async def test_api_and_three_workers_refresh_each_connection_exactly_once(
    admin_url: str, tmp_path: Path, resilience_logs: Path
) -> None:
    async with isolated_stack(admin_url, tmp_path, resilience_logs, workers=WORKERS) as isolated:
        stack = isolated.stack
        await stack.emulator_settings(rotate_refresh_tokens=True)
        ids = await _connect_many(stack, CONNECTIONS)
        await isolated.make_tokens_due(ids)

        reads, _ = await asyncio.gather(
            asyncio.gather(
                *(stack.api.get(f"/internal/v1/connections/{cid}/monitors") for cid in ids)
            ),
            isolated.ring_refreshes(ids, times=WORKERS),
        )

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rows = await isolated.fetch(
                "SELECT count(*) AS n FROM connections WHERE access_token_expires_at > now()"
                " + interval '30 minutes'"
            )
            if rows[0]["n"] == CONNECTIONS:
                break
            await asyncio.sleep(0.1)
        await isolated.wait_requests_answered()
        refreshes = await _refresh_calls(stack)
        print(f"{len(refreshes)} refresh calls for {CONNECTIONS} connections")
        assert [read.status_code for read in reads] == [200] * CONNECTIONS
        assert len(refreshes) == CONNECTIONS
        assert {call["status"] for call in refreshes} == {200}
        statuses = await isolated.fetch("SELECT DISTINCT status FROM connections")
        assert [row["status"] for row in statuses] == ["active"]


async def _wait_refresh_calls(stack: Stack, count: int) -> list[int]:
    """Poll until the emulator has answered `count` refresh calls; their statuses."""
    deadline = time.monotonic() + 20
    while True:
        statuses = [call["status"] for call in await _refresh_calls(stack)]
        if (len(statuses) >= count and None not in statuses) or time.monotonic() > deadline:
            return statuses
        await asyncio.sleep(0.1)


def _secret_file_text(variable: str, stack: Stack, secret: str) -> str:
    """What the mounted file holds for `variable`: the bare secret, or `CLIENTS` JSON."""
    if variable == "DDBRIDGE_CLIENT_SECRET_FILE":
        return secret + "\n"
    clients = {"datadoghq.com": {"client_id": stack.client_id, "client_secret": secret}}
    return json.dumps(clients)


@pytest.mark.parametrize("variable", ["DDBRIDGE_CLIENT_SECRET_FILE", "DDBRIDGE_CLIENTS_FILE"])
async def test_a_rotated_client_secret_file_is_used_without_a_restart(
    admin_url: str, tmp_path: Path, resilience_logs: Path, variable: str
) -> None:
    secret_file = tmp_path / "client-secret"
    unset = {"DDBRIDGE_CLIENT_SECRET": None} if variable.endswith("SECRET_FILE") else {}
    async with isolated_stack(
        admin_url, tmp_path, resilience_logs, settings={variable: str(secret_file), **unset}
    ) as isolated:
        stack = isolated.stack
        secret_file.write_text(_secret_file_text(variable, stack, stack.client_secret))
        [connection_id] = await _connect_many(stack, 1)
        # The partner rotates the secret at Datadog: the old one stops working at once.
        rotated = "rotated-" + stack.client_secret
        (
            await stack.emu.post(
                "/_emulator/clients",
                json={
                    "client_id": stack.client_id,
                    "client_secret": rotated,
                    "name": "ddbridge tests",
                    "domain": "datadoghq.com",
                    "redirect_uris": [f"{stack.api_url}/oauth/callback"],
                    "scopes": ["api_keys_write", "monitors_read"],
                    "published": True,
                },
            )
        ).raise_for_status()
        await isolated.make_tokens_due([connection_id])
        await isolated.ring_refreshes([connection_id])
        assert await _wait_refresh_calls(stack, 1) == [401]
        [row] = await isolated.fetch("SELECT status FROM connections")
        assert row["status"] == "active", "a refused client blames no connection"

        secret_file.write_text(_secret_file_text(variable, stack, rotated))

        assert await _wait_refresh_calls(stack, 2) == [401, 200]
        [row] = await isolated.fetch("SELECT status, refresh_failures FROM connections")
        assert (row["status"], row["refresh_failures"]) == ("active", 0)
