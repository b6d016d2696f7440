"""The operator's command line against the same database the stack uses."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
from collections.abc import Callable

import asyncpg

from harness.databases import asyncpg_dsn
from harness.processes import REPO_ROOT
from service.crypto import key_id
from tests.support import payloads
from tests.support.stack import Stack


async def ddbridge(stack: Stack, *args: str, **env: str) -> str:
    """Run `ddbridge ARGS` as an operator would; fail on a non-zero exit."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service",
        *args,
        cwd=REPO_ROOT,
        env={**os.environ, "DDBRIDGE_DATABASE_URL": stack.database_url, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_connections_list_and_show(stack: Stack, account_id: str) -> None:
    connection_id, dd_oid = await stack.connected(account_id, "us3.datadoghq.com")

    listed = [
        json.loads(line)
        for line in (
            await ddbridge(stack, "connections", "list", "--account-id", account_id)
        ).splitlines()
    ]
    shown = json.loads(await ddbridge(stack, "connections", "show", connection_id))

    assert [(c["id"], c["dd_org_id"], c["status"]) for c in listed] == [
        (connection_id, dd_oid, "active")
    ]
    assert [t["to_status"] for t in shown["history"]] == ["pending", "active"]
    assert 'access_token"' not in json.dumps(shown)


async def test_deadletters_list_and_replay(stack: Stack, account_id: str) -> None:
    connection_id, dd_oid = await stack.connected(account_id)
    await stack.emu.post(
        "/_emulator/faults",
        json={
            "dd_oid": dd_oid,
            "path": "/api/v1/events",
            "status": 400,
            "body": {"errors": ["bad"]},
        },
    )
    await stack.send(connection_id, "events", payloads.event())
    [letter] = await stack.wait_dead_letters(connection_id, 1)

    listed = [
        json.loads(line)
        for line in (
            await ddbridge(stack, "deadletters", "list", "--connection", connection_id)
        ).splitlines()
    ]
    replayed = await ddbridge(stack, "deadletters", "replay", connection_id, str(letter["id"]))

    assert [(d["id"], d["kind"], d["errors"]) for d in listed] == [
        (letter["id"], "rejected", ["bad"])
    ]
    assert replayed.strip() == "replayed 1 events item(s)"
    # The CLI does not ring Redis: the worker's reconciler finds the replayed row.
    assert len(await stack.wait_received(dd_oid, "events", 1)) == 1


async def test_keys_rotate_reseals_every_secret_and_delivery_goes_on(
    stack: Stack, account_id: str
) -> None:
    """The stack's ring is (K1, K2): after rotating to (K2, K1) it still opens everything."""
    connection_id, dd_oid = await stack.connected(account_id)
    first, second = stack.encryption_keys
    rotated_ring = {"DDBRIDGE_ENCRYPTION_KEYS": f"{second},{first}"}

    said = await ddbridge(stack, "keys", "rotate", **rotated_ring)
    again = await ddbridge(stack, "keys", "rotate", **rotated_ring)
    status = await ddbridge(stack, "keys", "status", **rotated_ring)

    assert int(said.split()[1]) >= 3, said
    assert again.strip() == "re-sealed 0 secret(s) under the first key"
    [sealing, opening, *_] = status.splitlines()
    assert sealing.split()[:2] == [key_id(_raw(second)).hex(), "sealing"]
    assert int(sealing.split()[2]) >= 3
    assert opening.split() == [key_id(_raw(first)).hex(), "opening", "0", "secret(s)"]
    db = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    try:
        row = await db.fetchrow(
            "SELECT access_token, refresh_token, api_key FROM connections WHERE id = $1::uuid",
            connection_id,
        )
    finally:
        await db.close()
    assert row is not None
    assert {bytes(sealed)[1:9] for sealed in row.values()} == {key_id(_raw(second))}
    await stack.send(connection_id, "logs", payloads.logs(2))
    assert len(await stack.wait_received(dd_oid, "logs", 2)) == 2


def _raw(key: str) -> bytes:
    return base64.urlsafe_b64decode(key)


ROTATION_CONNECTIONS = 4
LOGS_PER_SEND = 5


async def _until(condition: Callable[[], bool], deadline_seconds: float = 30) -> None:
    deadline = time.monotonic() + deadline_seconds
    while not condition():
        assert time.monotonic() < deadline, "the sends stalled"
        await asyncio.sleep(0.05)


async def test_keys_rotate_while_deliveries_run_fails_nothing(
    stack: Stack, account_id: str
) -> None:
    """Sends, deliveries and token refreshes go on while `keys rotate` re-seals: every send is
    accepted, every item delivered, nothing dead-lettered, and then `keys status` shows every
    secret under the new key.

    The stack's processes run with the ring (K1, K2), as after the restart that puts a new key
    first; a rotation to (K2, K1) first leaves every secret under K2, the key being retired.
    """
    connected = [await stack.connected(f"{account_id}-{n}") for n in range(ROTATION_CONNECTIONS)]
    first, second = stack.encryption_keys
    await ddbridge(stack, "keys", "rotate", DDBRIDGE_ENCRYPTION_KEYS=f"{second},{first}")
    ring = {"DDBRIDGE_ENCRYPTION_KEYS": f"{first},{second}"}
    answers: list[int] = []
    stop = asyncio.Event()

    async def keep_sending(connection_id: str) -> int:
        sends = 0
        while not stop.is_set():
            logs = await stack.send(connection_id, "logs", payloads.logs(LOGS_PER_SEND))
            incident = await stack.send(connection_id, "incidents", payloads.incident(f"i{sends}"))
            answers.extend([logs.status_code, incident.status_code])
            sends += 1
        return sends

    senders = [asyncio.create_task(keep_sending(cid)) for cid, _ in connected]
    try:
        await _until(lambda: len(answers) >= 4 * ROTATION_CONNECTIONS)
        db = await asyncpg.connect(asyncpg_dsn(stack.database_url))
        try:  # every token due: the worker refreshes (and re-seals) them during the rotation
            await db.execute(
                "UPDATE connections SET access_token_expires_at = now() WHERE id = ANY($1::uuid[])",
                [cid for cid, _ in connected],
            )
        finally:
            await db.close()
        before_rotation = len(answers)
        started = time.time()
        said = await ddbridge(stack, "keys", "rotate", **ring)
        ended = time.time()
        ended_at = len(answers)
        during_rotation = ended_at - before_rotation
        await _until(lambda: len(answers) >= ended_at + 4 * ROTATION_CONNECTIONS)
    finally:
        stop.set()
        sends = await asyncio.gather(*senders)

    assert set(answers) == {202}, answers
    assert during_rotation > 0, "sends were accepted while the rotation ran"
    delivered_during = [
        request
        for request in await stack.datadog_requests(path="/api/v2/logs")
        if started <= request["at"] <= ended
    ]
    assert delivered_during, "deliveries ran while the rotation ran"
    for (connection_id, dd_oid), count in zip(connected, sends, strict=True):
        logs = await stack.wait_received(dd_oid, "logs", count * LOGS_PER_SEND)
        incidents = await stack.wait_received(dd_oid, "incidents", count)
        assert (len(logs), len(incidents)) == (count * LOGS_PER_SEND, count)
        letters = await stack.api.get(f"/internal/v1/connections/{connection_id}/dead_letters")
        assert letters.json() == []
    # The worker re-sealed some tokens itself by refreshing them; the API keys only rotate.
    assert int(said.split()[1]) >= ROTATION_CONNECTIONS, said
    db = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    try:
        refreshed = await db.fetchval(
            "SELECT count(*) FROM connections WHERE id = ANY($1::uuid[])"
            " AND access_token_expires_at > now() + interval '30 minutes'",
            [cid for cid, _ in connected],
        )
    finally:
        await db.close()
    assert refreshed == ROTATION_CONNECTIONS, "every due token was refreshed meanwhile"
    status = await ddbridge(stack, "keys", "status", **ring)
    [sealing, opening, *_] = status.splitlines()
    assert sealing.split()[:2] == [key_id(_raw(first)).hex(), "sealing"]
    assert opening.split() == [key_id(_raw(second)).hex(), "opening", "0", "secret(s)"]


async def test_replay_of_an_id_outside_the_database_is_refused_by_name(
    stack: Stack, account_id: str
) -> None:
    connection_id, _ = await stack.connected(account_id)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service",
        "deadletters",
        "replay",
        connection_id,
        "1",
        str(2**63),
        cwd=REPO_ROOT,
        env={**os.environ, "DDBRIDGE_DATABASE_URL": stack.database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()

    said = " ".join(err.decode().replace("│", " ").split())  # typer draws a box around it
    assert process.returncode == 2, said
    assert (
        "Invalid value for ids: 1: Input should be less than or equal to 9223372036854775807"
        in said
    )
    assert "Traceback" not in said
