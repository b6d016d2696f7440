"""No credential the emulator issued appears in the database, ddbridge's logs, any response
ddbridge gave or any webhook it sent during the whole run (this test runs last and inspects
what the run left); no start ticket, OAuth code or `state` appears in a log or the database,
however the API is started (the containers' command, the Dockerfile's, bare uvicorn)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import yaml

from harness import processes
from harness.databases import asyncpg_dsn
from tests.support.stack import Recorder, Stack, query_of
from tests.support.webhook_receiver import Receiver

REPO = processes.REPO_ROOT


@dataclass(frozen=True, slots=True)
class FlowValues:
    """What travels in a flow's URLs: each lets whoever reads it act for the flow."""

    ticket: str
    state: str
    code: str

    def all(self) -> list[str]:
        return [self.ticket, self.state, self.code]


async def _connect_capturing(
    stack: Stack,
    api_url: str,
    account_id: str,
    domain: str = "datadoghq.com",
    recorder: Recorder | None = None,
) -> FlowValues:
    """Connect a new org through the API at `api_url`, keeping the ticket, state and code
    (and what ddbridge answered, in `recorder`)."""
    org = await stack.create_org(domain, name=f"Org {account_id}")
    await stack.consent("approve", org["dd_oid"])
    headers = {"Authorization": f"Bearer {stack.internal_token}"}
    hooks: dict[str, list[Any]] = {"response": [recorder.record] if recorder else []}
    async with (
        httpx.AsyncClient(base_url=api_url, headers=headers, event_hooks=hooks) as partner,
        stack.browser() as browser,
    ):
        created = await partner.post(
            "/internal/v1/authorizations", json={"account_id": account_id, "domain": domain}
        )
        assert created.status_code == 201, created.text
        start_url = created.json()["authorize_url"]
        authorize_url = await stack.confirm(browser, start_url)
        at_datadog = await browser.get(authorize_url)
        assert at_datadog.status_code == 302, at_datadog.text
        callback = at_datadog.headers["location"]
        assert callback.startswith(f"{api_url}/oauth/callback?"), callback
        done = await browser.get(callback)
        assert done.status_code == 200, done.text
    return FlowValues(
        ticket=start_url.rsplit("/", 1)[1],
        state=query_of(authorize_url)["state"],
        code=query_of(callback)["code"],
    )


@pytest.mark.last
async def test_no_issued_secret_is_stored_logged_or_returned(
    stack: Stack, recorder: Recorder, account_id: str, webhook: Receiver
) -> None:
    # Exercise every path that handles credentials once more, so this test stands alone too.
    flow = await _connect_capturing(stack, stack.api_url, account_id, "datadoghq.eu", recorder)
    [connection] = await stack.connections(account_id)
    await stack.api.get(f"/internal/v1/connections/{connection['id']}")
    await stack.api.delete(f"/internal/v1/connections/{connection['id']}")
    await stack.collect_secrets()
    secrets = {s for s in recorder.secrets if len(s) >= 16}
    assert len(secrets) >= 4, "a client secret, an access and a refresh token, an API key"

    database = await _dump(stack.database_url)
    logs = {child.name: child.output() for child in stack.children if child.name != "emulator"}
    assert logs["api"], "the API log is captured"

    for secret in secrets:
        assert secret not in database, "a secret is stored in plaintext"
        for name, text in logs.items():
            assert secret not in text, f"a secret is in the {name} log"
        for response in recorder.responses:
            assert secret not in response, "a secret was returned by ddbridge"
        for notification in webhook.received:
            assert secret.encode() not in notification.body, "a secret was in a webhook"
    # Tickets and states are answered by design (the link, the redirect); never kept or logged.
    for value in flow.all():
        assert value not in database, "a ticket, state or code is stored in plaintext"
        for name, text in logs.items():
            assert value not in text, f"a ticket, state or code is in the {name} log"


async def _dump(database_url: str) -> str:
    """Every row of every table, as text (bytea included, both raw and hex)."""
    db = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        tables = await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        parts = []
        for table in tables:
            for row in await db.fetch(f'SELECT * FROM "{table["tablename"]}"'):
                for value in row.values():
                    if isinstance(value, bytes):
                        parts.append(value.decode("latin-1"))
                        parts.append(value.hex())
                    else:
                        parts.append(str(value))
        return "\n".join(parts)
    finally:
        await db.close()


def _compose_api_command() -> list[str]:
    compose: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    command: list[str] = compose["services"]["api"]["command"]
    return command


def _dockerfile_command() -> list[str]:
    [cmd] = re.findall(r"^CMD (\[.*\])$", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    command: list[str] = json.loads(cmd)
    return command


STARTS = {
    "docker-compose api": _compose_api_command(),
    "Dockerfile CMD": _dockerfile_command(),
    "uvicorn service.main:app": ["uvicorn", "service.main:app", "--port", "8000"],
}


def _on_port(command: list[str], port: int) -> list[str]:
    """The command as written, listening on `port` instead of its own (8000 may be taken)."""
    at = command.index("--port") + 1
    return [*command[:at], str(port), *command[at + 1 :]]


@pytest.mark.parametrize("start", sorted(STARTS))
async def test_no_ticket_code_or_state_is_logged_however_the_api_is_started(
    stack: Stack, recorder: Recorder, account_id: str, log_dir: Path, start: str
) -> None:
    port = processes.free_port()
    api_url = f"http://127.0.0.1:{port}"
    registered = await stack.emu.post(
        "/_emulator/clients",
        json={
            "client_id": stack.client_id,
            "client_secret": stack.client_secret,
            "name": "ddbridge tests",
            "domain": "datadoghq.com",
            "redirect_uris": [f"{api_url}/oauth/callback"],
            "scopes": ["api_keys_write"],
            "published": True,
        },
    )
    registered.raise_for_status()
    env = {**stack.environment(), "DDBRIDGE_PUBLIC_URL": api_url}
    name = f"api-{start.split(maxsplit=1)[0].lower()}-{port}"
    child = processes.start_command(name, _on_port(STARTS[start], port), env, log_dir)
    try:
        processes.wait_until_answers(child, f"{api_url}/readyz")
        flow = await _connect_capturing(stack, api_url, account_id)
    finally:
        child.stop()

    await stack.collect_secrets()
    log = child.output()
    assert "/oauth/callback" in log, f"the request log is on and captured:\n{log}"
    for value in flow.all():
        assert value not in log, f"a ticket, state or code is in the log of {start}:\n{log}"
    for secret in (s for s in recorder.secrets if len(s) >= 16):
        assert secret not in log, f"a secret is in the log of {start}"
