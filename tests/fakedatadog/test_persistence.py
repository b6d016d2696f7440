"""`fakedatadog --state-file`: orgs, grants and API keys outlive a restart, as at Datadog, so
the connections `ddbridge dev` made in an earlier run keep working."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import httpx

from harness import processes
from harness.processes import Child
from tests.fakedatadog.helpers import Emu

DOMAIN = "datadoghq.eu"
DEMO_CLIENT = "demo-client:demo-secret"


async def _start(state_file: Path, log_dir: Path, name: str) -> tuple[Child, str]:
    port = str(processes.free_port())
    child = processes.start(
        name,
        [
            "fakedatadog",
            "--port",
            port,
            "--state-file",
            str(state_file),
            "--demo-client",
            DEMO_CLIENT,
        ],
        {},
        log_dir,
    )
    url = f"http://127.0.0.1:{port}"
    await asyncio.to_thread(processes.wait_until_answers, child, f"{url}/_emulator/health")
    return child, url


async def _stop(child: Child) -> None:
    child.process.terminate()
    assert await asyncio.to_thread(child.process.wait, 20) == 0, child.output_tail()


async def test_orgs_grants_and_keys_survive_a_restart(tmp_path: Path) -> None:
    state_file = tmp_path / "emulator.state"
    first, url = await _start(state_file, tmp_path, "emulator-first")
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            emu = Emu(http)
            orgs_before = (await http.get("/_emulator/orgs")).json()["orgs"]
            client = await emu.client(DOMAIN)
            tokens = await emu.connect(await emu.org("Kept", DOMAIN), client)
            created = await emu.create_api_key(DOMAIN, tokens["access_token"])
            api_key = created.json()["data"]["attributes"]["key"]
            assert (await emu.validate(DOMAIN, api_key)).status_code == 200
    finally:
        await _stop(first)
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600

    second, url = await _start(state_file, tmp_path, "emulator-second")
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            emu = Emu(http)
            orgs_after = (await http.get("/_emulator/orgs")).json()["orgs"]
            assert (await emu.validate(DOMAIN, api_key)).status_code == 200
            refreshed = await emu.refresh(DOMAIN, client, tokens["refresh_token"])
            assert refreshed.status_code == 200, refreshed.text
            # Access tokens are not kept: a new one comes from the refresh.
            stale = await emu.create_api_key(DOMAIN, tokens["access_token"])
            assert stale.status_code in (401, 403)
            assert (await emu.validate(DOMAIN, "not-a-key")).status_code == 403
    finally:
        await _stop(second)
    assert len(orgs_after) == len(orgs_before) + 1, "the demo orgs were not seeded again"
    assert {org["dd_oid"] for org in orgs_before} < {org["dd_oid"] for org in orgs_after}
