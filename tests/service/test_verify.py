"""`verify` answers Datadog's review questions for one connection: pass on a healthy one, and
the failing check named on a revoked key and on a missing scope (API and command line)."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from harness.processes import REPO_ROOT
from tests.support.stack import Stack


async def _verify(stack: Stack, connection_id: str) -> dict[str, Any]:
    answer = await stack.api.post(f"/internal/v1/connections/{connection_id}/verify")
    assert answer.status_code == 200, answer.text
    report: dict[str, Any] = answer.json()
    return report


def _results(report: dict[str, Any]) -> dict[str, bool | None]:
    return {check["name"]: check["passed"] for check in report["checks"]}


async def test_a_healthy_connection_passes_every_check(stack: Stack, account_id: str) -> None:
    connection_id, _ = await stack.connected(account_id)

    report = await _verify(stack, connection_id)

    assert report["passed"] is True
    assert _results(report) == {
        "token refreshes": True,
        "API key validates": True,
        "scope api_keys_write": None,
        "scope monitors_read": True,
        "scope incident_write": None,
        "scope incident_read": True,
    }
    calls = {(c["path"], c["status"]) for c in await stack.datadog_requests()}
    assert ("/api/v1/monitor", 200) in calls
    assert ("/api/v2/incidents", 200) in calls
    assert not any(
        c["method"] == "POST" and c["path"] == "/api/v2/incidents"
        for c in await stack.datadog_requests()
    ), "verify creates nothing"


async def test_a_revoked_key_fails_its_check(stack: Stack, account_id: str) -> None:
    connection_id, dd_oid = await stack.connected(account_id)
    await stack.emu.post("/_emulator/api_keys/revoke", json={"dd_oid": dd_oid})

    report = await _verify(stack, connection_id)

    assert report["passed"] is False
    failed = [check for check in report["checks"] if check["passed"] is False]
    assert [check["name"] for check in failed] == ["API key validates"]
    assert "invalid" in failed[0]["detail"]


async def test_a_missing_scope_fails_its_check(stack: Stack, account_id: str) -> None:
    await stack.register_client(scopes=["api_keys_write", "incident_write"])
    connection_id, _ = await stack.connected(account_id)

    report = await _verify(stack, connection_id)

    results = _results(report)
    assert (results["scope monitors_read"], results["scope incident_read"]) == (False, False)
    assert results["token refreshes"] is True
    detail = {c["name"]: c["detail"] for c in report["checks"]}["scope monitors_read"]
    assert detail == "not granted: reading monitors will not work"
    assert await stack.datadog_requests(path="/api/v1/monitor") == []


async def test_verify_on_the_command_line(stack: Stack, account_id: str) -> None:
    connection_id, dd_oid = await stack.connected(account_id)
    await stack.emu.post("/_emulator/api_keys/revoke", json={"dd_oid": dd_oid})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service",
        "verify",
        connection_id,
        cwd=REPO_ROOT,
        env={**os.environ, **stack.environment()},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()

    assert process.returncode == 1, err.decode()
    lines = out.decode().splitlines()
    assert any(line.startswith("FAIL  API key validates") for line in lines), lines
    assert any(line.startswith("pass  token refreshes") for line in lines), lines
