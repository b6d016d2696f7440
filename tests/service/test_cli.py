"""The operator's command line against the same database the stack uses."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from tests.support import payloads
from tests.support.processes import REPO_ROOT
from tests.support.stack import Stack


async def ddbridge(stack: Stack, *args: str) -> str:
    """Run `ddbridge ARGS` as an operator would; fail on a non-zero exit."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service",
        *args,
        cwd=REPO_ROOT,
        env={**os.environ, "DDBRIDGE_DATABASE_URL": stack.database_url},
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
