"""The running stack as tests drive it: the partner's internal API calls, a browser with its
own cookie jar, and the emulator's control plane, all over real HTTP."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from harness.processes import Child, free_port
from service.sites import KNOWN_SITES

PARTNER_SIGNIN_URL = "https://partner.example/datadog/sign-in"
"""Where the stack's `/oauth/onboarding` hands customers (production mode needs one)."""
CLIENT_SCOPES = ["api_keys_write", "monitors_read", "incident_write", "incident_read"]


def port_of(url: str) -> str:
    """The port of an `http://127.0.0.1:PORT/...` URL."""
    return str(urlsplit(url).port)


def query_of(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


@dataclass
class Recorder:
    """What the whole run exposed: every response ddbridge sent, and every secret issued."""

    responses: list[str] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)

    async def record(self, response: httpx.Response) -> None:
        """Keep what ddbridge answered: status, headers and body (not the request's URL)."""
        await response.aread()
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        self.responses.append(f"{response.status_code}\n{headers}\n{response.text}")


@dataclass
class Stack:
    api_url: str
    emulator_url: str
    database_url: str
    redis_url: str
    internal_token: str
    client_id: str
    client_secret: str
    queue_name: str
    encryption_keys: list[str]
    """The ring: the first seals; the second also opens (what a rotation leaves behind)."""
    worker_metrics_url: str
    log_dir: Path
    children: list[Child] = field(default_factory=list)
    _api: httpx.AsyncClient | None = None
    _emu: httpx.AsyncClient | None = None
    _recorder: Recorder | None = None

    @classmethod
    def allocate(
        cls,
        *,
        database_url: str,
        redis_url: str,
        queue_name: str,
        encryption_keys: list[str],
        log_dir: Path,
    ) -> Stack:
        """A stack description with free ports and fresh credentials (nothing started)."""
        return cls(
            api_url=f"http://127.0.0.1:{free_port()}",
            emulator_url=f"http://127.0.0.1:{free_port()}",
            database_url=database_url,
            redis_url=redis_url,
            internal_token=secrets.token_urlsafe(32),
            client_id=f"test-client-{secrets.token_hex(4)}",
            client_secret=secrets.token_urlsafe(32),
            queue_name=queue_name,
            encryption_keys=encryption_keys,
            worker_metrics_url=f"http://127.0.0.1:{free_port()}/metrics",
            log_dir=log_dir,
        )

    def environment(self) -> dict[str, str]:
        """The `DDBRIDGE_*` settings its API and worker processes run with."""
        return {
            "DDBRIDGE_DATABASE_URL": self.database_url,
            "DDBRIDGE_REDIS_URL": self.redis_url,
            "DDBRIDGE_PUBLIC_URL": self.api_url,
            "DDBRIDGE_SIGNIN_URL": PARTNER_SIGNIN_URL,
            "DDBRIDGE_INTERNAL_TOKENS": self.internal_token,
            "DDBRIDGE_ENCRYPTION_KEYS": ",".join(self.encryption_keys),
            "DDBRIDGE_CLIENT_ID": self.client_id,
            "DDBRIDGE_CLIENT_SECRET": self.client_secret,
            "DDBRIDGE_DATADOG_URL_TEMPLATE": f"{self.emulator_url}/{{host}}",
            "DDBRIDGE_QUEUE_NAME": self.queue_name,
            "DDBRIDGE_WORKER_METRICS_PORT": port_of(self.worker_metrics_url),
        }

    @asynccontextmanager
    async def clients(self, recorder: Recorder) -> AsyncIterator[Stack]:
        """A copy of the stack with open clients; every ddbridge response is recorded."""
        hooks: dict[str, list[Any]] = {"response": [recorder.record]}
        async with (
            httpx.AsyncClient(
                base_url=self.api_url,
                headers={"Authorization": f"Bearer {self.internal_token}"},
                event_hooks=hooks,
                timeout=30,
            ) as api,
            httpx.AsyncClient(base_url=self.emulator_url, timeout=30) as emu,
        ):
            yield replace(self, _api=api, _emu=emu, _recorder=recorder)

    @property
    def api(self) -> httpx.AsyncClient:
        """The partner backend: the internal API with a valid bearer token."""
        assert self._api is not None
        return self._api

    @property
    def emu(self) -> httpx.AsyncClient:
        """The emulator's control plane."""
        assert self._emu is not None
        return self._emu

    @asynccontextmanager
    async def browser(self) -> AsyncIterator[httpx.AsyncClient]:
        """A browser: its own cookie jar, redirects followed by hand, ddbridge's answers
        recorded."""
        recorder = self._recorder
        assert recorder is not None

        async def record_ddbridge(response: httpx.Response) -> None:
            if str(response.url).startswith(self.api_url):
                await recorder.record(response)

        hooks: dict[str, list[Any]] = {"response": [record_ddbridge]}
        async with httpx.AsyncClient(event_hooks=hooks, timeout=30) as browser:
            yield browser

    # The emulator.

    @contextmanager
    def no_new_traceback(self) -> Iterator[None]:
        """Fail if the API or the worker logs a traceback while the block runs."""
        logs = [child for child in self.children if child.name in ("api", "worker")]
        before = {child.name: len(child.output()) for child in logs}
        yield
        for child in logs:
            added = child.output()[before[child.name] :]
            assert "Traceback" not in added, f"{child.name} logged a traceback:\n{added}"

    async def reset_emulator(self) -> None:
        (await self.emu.post("/_emulator/reset")).raise_for_status()

    async def register_client(
        self, *, scopes: list[str], published: bool = True, sandbox_org: str | None = None
    ) -> None:
        """Register our OAuth client, with our redirect URI, on every known site."""
        for site in KNOWN_SITES:
            response = await self.emu.post(
                "/_emulator/clients",
                json={
                    "client_id": self.client_id,
                    "client_secret": self.client_secret,
                    "name": "ddbridge tests",
                    "domain": site.domain,
                    "redirect_uris": [f"{self.api_url}/oauth/callback"],
                    "scopes": scopes,
                    "published": published,
                    "sandbox_org": sandbox_org,
                },
            )
            response.raise_for_status()

    async def create_org(
        self, domain: str = "datadoghq.com", *, name: str = "Org", subdomain: str | None = None
    ) -> dict[str, Any]:
        response = await self.emu.post(
            "/_emulator/orgs", json={"name": name, "domain": domain, "subdomain": subdomain}
        )
        response.raise_for_status()
        org: dict[str, Any] = response.json()
        return org

    async def consent(self, mode: str, dd_oid: str | None = None) -> None:
        response = await self.emu.post("/_emulator/consent", json={"mode": mode, "dd_oid": dd_oid})
        response.raise_for_status()

    async def emulator_settings(self, **values: Any) -> None:
        (await self.emu.post("/_emulator/settings", json=values)).raise_for_status()

    async def datadog_requests(self, **filters: str) -> list[dict[str, Any]]:
        """What reached 'Datadog' (every host the emulator stands in for), in order."""
        response = await self.emu.get("/_emulator/requests", params=filters)
        requests: list[dict[str, Any]] = response.json()["requests"]
        return requests

    async def collect_secrets(self) -> None:
        assert self._recorder is not None
        response = await self.emu.get("/_emulator/secrets")
        self._recorder.secrets.update(response.json()["secrets"])

    # The flow as partner, browser and Datadog play it.

    async def authorization(self, account_id: str, **fields: str) -> httpx.Response:
        return await self.api.post(
            "/internal/v1/authorizations", json={"account_id": account_id, **fields}
        )

    async def start(self, browser: httpx.AsyncClient, account_id: str, **fields: str) -> str:
        """Create an authorization, open its link and confirm; return Datadog's authorize URL."""
        created = await self.authorization(account_id, **fields)
        assert created.status_code == 201, created.text
        return await self.confirm(browser, created.json()["authorize_url"])

    async def confirm(self, browser: httpx.AsyncClient, start_url: str) -> str:
        """Open a start link and press its button, as a person would; return where it leads."""
        shown = await browser.get(start_url)
        assert shown.status_code == 200, shown.text
        assert f'<form method="post" action="{urlsplit(start_url).path}">' in shown.text
        started = await browser.post(start_url)
        assert started.status_code == 303, started.text
        location: str = started.headers["location"]
        return location

    async def authorize_at_datadog(self, browser: httpx.AsyncClient, authorize_url: str) -> str:
        """The browser at Datadog (consent set to approve or deny); return the callback URL."""
        answered = await browser.get(authorize_url)
        assert answered.status_code == 302, answered.text
        location: str = answered.headers["location"]
        assert location.startswith(f"{self.api_url}/oauth/callback"), location
        return location

    async def connect(self, account_id: str, org: dict[str, Any], **fields: str) -> httpx.Response:
        """The whole flow for `org`, approved at Datadog; return ddbridge's final answer."""
        await self.consent("approve", org["dd_oid"])
        async with self.browser() as browser:
            authorize_url = await self.start(browser, account_id, **fields)
            callback = await self.authorize_at_datadog(browser, authorize_url)
            return await browser.get(callback)

    async def connections(self, account_id: str) -> list[dict[str, Any]]:
        response = await self.api.get("/internal/v1/connections", params={"account_id": account_id})
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()
        return found

    # Telemetry.

    async def connected(self, account_id: str, domain: str = "datadoghq.com") -> tuple[str, str]:
        """Connect a new org on `domain`; return (connection id, dd_oid)."""
        org = await self.create_org(domain, name=f"Org {account_id}")
        page = await self.connect(account_id, org, domain=domain)
        assert page.status_code == 200, page.text
        [connection] = await self.connections(account_id)
        return connection["id"], org["dd_oid"]

    async def send(
        self, connection_id: str, signal: str, body: Any, **headers: str
    ) -> httpx.Response:
        return await self.api.post(
            f"/internal/v1/connections/{connection_id}/{signal}", json=body, headers=headers
        )

    async def received(self, dd_oid: str, signal: str) -> list[dict[str, Any]]:
        """Items of `signal` the emulator accepted for the org, in arrival order."""
        response = await self.emu.get(
            "/_emulator/intake", params={"dd_oid": dd_oid, "signal": signal}
        )
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def wait_received(
        self, dd_oid: str, signal: str, count: int, deadline_seconds: float = 30
    ) -> list[dict[str, Any]]:
        """Poll until the emulator holds at least `count` items (delivery is asynchronous)."""
        deadline = time.monotonic() + deadline_seconds
        while True:
            items = await self.received(dd_oid, signal)
            if len(items) >= count or time.monotonic() > deadline:
                return items
            await asyncio.sleep(0.05)

    async def wait_delivered(
        self, connection_id: str, signal: str, count: int, deadline_seconds: float = 30
    ) -> dict[str, Any]:
        """Poll the connection's view until `signal` counts at least `count` delivered items;
        return that partition's view. The worker counts an item after Datadog's answer, so
        the emulator may hold it a moment before the count moves."""
        deadline = time.monotonic() + deadline_seconds
        while True:
            view = (await self.api.get(f"/internal/v1/connections/{connection_id}")).json()
            partitions = [p for p in view["delivery"] if p["signal"] == signal]
            delivered = partitions[0]["delivered_items"] if partitions else 0
            if delivered >= count or time.monotonic() > deadline:
                return partitions[0] if partitions else {"signal": signal, "delivered_items": 0}
            await asyncio.sleep(0.05)

    async def wait_dead_letters(
        self, connection_id: str, count: int, deadline_seconds: float = 30
    ) -> list[dict[str, Any]]:
        """Poll the connection's dead letters until there are at least `count`."""
        deadline = time.monotonic() + deadline_seconds
        while True:
            response = await self.api.get(f"/internal/v1/connections/{connection_id}/dead_letters")
            letters: list[dict[str, Any]] = response.json()
            if len(letters) >= count or time.monotonic() > deadline:
                return letters
            await asyncio.sleep(0.05)
