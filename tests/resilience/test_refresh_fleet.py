"""Refreshing a fleet of connections: single-flight across the API and several workers, a
client secret rotated in its mounted file without a restart, and a mounted file that cannot be
used handled as the operator's problem."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.isolated_stack import IsolatedStack, isolated_stack
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


async def _refreshed(isolated: IsolatedStack, count: int, *, within_seconds: float) -> int:
    """Poll until `count` connections hold a fresh token (or the time is up); how many do."""
    deadline = time.monotonic() + within_seconds
    while True:
        rows = await isolated.fetch(
            "SELECT count(*) AS n FROM connections"
            " WHERE access_token_expires_at > now() + interval '30 minutes'"
        )
        fresh = int(rows[0]["n"])
        if fresh == count or time.monotonic() >= deadline:
            return fresh
        await asyncio.sleep(0.1)


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

        await _refreshed(isolated, CONNECTIONS, within_seconds=30)
        await isolated.wait_requests_answered()
        refreshes = await _refresh_calls(stack)
        print(f"{len(refreshes)} refresh calls for {CONNECTIONS} connections")
        assert [read.status_code for read in reads] == [200] * CONNECTIONS
        assert len(refreshes) == CONNECTIONS
        assert {call["status"] for call in refreshes} == {200}
        statuses = await isolated.fetch("SELECT DISTINCT status FROM connections")
        assert [row["status"] for row in statuses] == ["active"]


async def test_three_workers_together_keep_to_the_per_site_token_call_cap(
    admin_url: str, tmp_path: Path, resilience_logs: Path
) -> None:
    """Every connection due at once, three workers each rung for all of them: Datadog never
    sees more than `REFRESH_RATE_PER_SITE` token calls in a second of arrival, and every
    connection is refreshed, once."""
    rate, count = 4, 20
    settings = {"DDBRIDGE_REFRESH_RATE_PER_SITE": str(rate)}
    async with isolated_stack(
        admin_url, tmp_path, resilience_logs, settings=settings, workers=WORKERS
    ) as isolated:
        stack = isolated.stack
        ids = await _connect_many(stack, count)
        await isolated.make_tokens_due(ids)
        await isolated.ring_refreshes(ids, times=WORKERS)

        refreshed = await _refreshed(isolated, count, within_seconds=60)
        await isolated.wait_requests_answered()
        refreshes = await _refresh_calls(stack)

    per_second = Counter(int(call["at"]) for call in refreshes)
    print(f"{len(refreshes)} refresh calls; per second of arrival: {sorted(per_second.items())}")
    assert refreshed == count, "every connection refreshed"
    assert len(refreshes) == count
    assert max(per_second.values()) <= rate
    assert len(per_second) >= count // rate, "the calls were spread over the seconds the cap needs"


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


async def _refresh_failures(isolated: IsolatedStack) -> int:
    [row] = await isolated.fetch("SELECT status, refresh_failures FROM connections")
    assert row["status"] == "active", "an unusable client file blames no connection"
    failures: int = row["refresh_failures"]
    return failures


async def test_an_unusable_client_secret_file_is_logged_and_counted_then_used_once_fixed(
    admin_url: str, tmp_path: Path, resilience_logs: Path
) -> None:
    """A `CLIENTS_FILE` caught mid-rotation (not JSON, the wrong shape, gone): each refresh
    attempt makes no token call, logs a line naming the file and the problem (never the
    secret) and counts in the metric; the job does not crash, the connection stays `active`,
    and the attempt after the file is fixed succeeds."""
    clients_file = tmp_path / "clients.json"
    settings = {"DDBRIDGE_CLIENTS_FILE": str(clients_file), "DDBRIDGE_REFRESH_RETRY_DELAYS": "1"}
    async with isolated_stack(admin_url, tmp_path, resilience_logs, settings=settings) as isolated:
        stack = isolated.stack
        good = _secret_file_text("DDBRIDGE_CLIENTS_FILE", stack, stack.client_secret)
        clients_file.write_text(good)
        [connection_id] = await _connect_many(stack, 1)
        secret, client_id = stack.client_secret, stack.client_id
        broken = [
            (good[:-2] + ",}}", "is not JSON (Expecting property name enclosed in double quotes"),
            (
                json.dumps({"datadoghq.com": {"client_id": client_id, "secret": secret}}),
                "does not hold clients per site: datadoghq.com.client_secret: Field required",
            ),
            (None, "cannot read"),
        ]
        worker_log = resilience_logs / "worker-1.log"
        await isolated.make_tokens_due([connection_id])
        for number, (text, said) in enumerate(broken):
            if text is None:
                clients_file.unlink()
            else:
                clients_file.write_text(text)
            if number == 0:
                await isolated.ring_refreshes([connection_id])
            deadline = time.monotonic() + 20
            while said not in worker_log.read_text():  # retried each second (the schedule)
                assert time.monotonic() < deadline, f"no attempt logged {said!r}"
                await asyncio.sleep(0.1)
        failures = await _refresh_failures(isolated)
        calls_while_broken = len(await _refresh_calls(stack))
        clients_file.write_text(good)
        statuses = await _wait_refresh_calls(stack, 1)
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(stack.worker_metrics_url)).text
        log = worker_log.read_text()
        assert await _refresh_failures(isolated) == 0

    assert failures >= len(broken)
    assert calls_while_broken == 0
    assert statuses == [200]
    assert log.count("no OAuth client for datadoghq.com: ") >= failures
    assert secret not in log
    assert "Traceback" not in log
    assert re.search(
        r'ddbridge_credential_failures_total\{kind="client_secret_unreadable",'
        r'site="datadoghq.com"\} ([3-9]|\d\d)',
        metrics,
    )
