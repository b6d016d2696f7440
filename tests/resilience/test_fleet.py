"""A fleet on one database: two API processes and three workers, under load, restarted one by
one with SIGTERM (a rolling restart, as Kubernetes does it).

The partner's side is a load balancer: each send goes to the next API in turn with an
`Idempotency-Key`; an API that refuses it (503 while draining) or cannot be reached gets the
same send handed to the other, as a balancer retries a refused request. Checked: every send is
accepted in the end, every accepted item arrives, duplicates (at least once) are counted and
stay under 0.1 %, and the emulator never saw two requests of one org to one intake path in
flight at once (no partition drained by two workers together).
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.processes import Child
from tests.resilience.ledger import Answer, Ledger, SignalName, Tally, wait_until
from tests.support.isolated_stack import POLL_SECONDS, IsolatedStack, isolated_stack

WORKERS = 3
CONNECTIONS: list[SignalName] = ["metrics", "logs", "metrics", "logs"]
INTAKE_PATHS = {"metrics": "/api/v2/series", "logs": "/api/v2/logs"}
SENDS_BETWEEN_RESTARTS = 40
"""Sends answered after each replacement is ready, before the next process is stopped."""
HANDOVER_SECONDS = 30
MAX_DUPLICATE_SHARE = 0.001


@dataclass
class Balancer:
    """Round robin over the API processes; a refused or unreachable send goes to the next."""

    clients: list[httpx.AsyncClient]
    handed_over: int = 0
    _turn: itertools.count[int] = field(default_factory=itertools.count)

    async def post(self, path: str, body: Any, key: str) -> httpx.Response | None:
        """The first answer other than 503 (None if none came within `HANDOVER_SECONDS`)."""
        deadline = time.monotonic() + HANDOVER_SECONDS
        tried = 0
        while time.monotonic() < deadline:
            client = self.clients[next(self._turn) % len(self.clients)]
            try:
                response = await client.post(path, json=body, headers={"Idempotency-Key": key})
                if response.status_code != 503:
                    return response
            except httpx.TransportError:
                pass
            self.handed_over += 1
            tried += 1
            if tried % len(self.clients) == 0:  # every API refused: wait before the next round
                await asyncio.sleep(POLL_SECONDS)
        return None


@asynccontextmanager
async def balancer(iso: IsolatedStack, urls: list[str]) -> AsyncIterator[Balancer]:
    headers = {"Authorization": f"Bearer {iso.stack.internal_token}"}
    clients = [httpx.AsyncClient(base_url=url, headers=headers, timeout=15) for url in urls]
    try:
        yield Balancer(clients)
    finally:
        for client in clients:
            await client.aclose()


async def send_through(balancer: Balancer, ledger: Ledger) -> None:
    """The ledger's next send, through the balancer, recorded with its final answer."""
    number = len(ledger.keys_of)
    body, keys = ledger.body(number)
    ledger.keys_of[number] = keys
    started = time.monotonic()
    path = f"/internal/v1/connections/{ledger.connection_id}/{ledger.signal}"
    response = await balancer.post(path, body, key=f"{ledger.tag}-{number}-{uuid.uuid4().hex}")
    status, text = (
        (None, "no answer") if response is None else (response.status_code, response.text)
    )
    ledger.answers.append(Answer(number, status, text, time.monotonic() - started, started))


async def load(balancer: Balancer, ledgers: list[Ledger], stop: asyncio.Event) -> None:
    """One sender per connection, each waiting for its answer, until `stop`."""

    async def sender(ledger: Ledger) -> None:
        while not stop.is_set():
            await send_through(balancer, ledger)

    await asyncio.gather(*(sender(ledger) for ledger in ledgers))


def answered(ledgers: list[Ledger]) -> int:
    return sum(len(ledger.answers) for ledger in ledgers)


async def answers_reach(ledgers: list[Ledger], total: int, what: str) -> None:
    await wait_until(lambda: answered(ledgers) >= total, what, deadline_seconds=60)


@pytest.mark.timeout(600)
async def test_rolling_restart_of_a_fleet_loses_nothing(
    admin_url: str,
    tmp_path: Path,
    resilience_logs: Path,
    record_property: Callable[[str, Any], None],
) -> None:
    settings = {"DDBRIDGE_SHUTDOWN_DRAIN_SECONDS": "1"}
    async with isolated_stack(
        admin_url, tmp_path, resilience_logs, settings=settings, workers=WORKERS
    ) as iso:
        second = await iso.start_api()
        urls = [iso.stack.api_url, f"http://127.0.0.1:{_port(second)}"]
        ledgers = []
        for number, signal_name in enumerate(CONNECTIONS):
            connection_id, dd_oid = await iso.stack.connected(f"acct-fleet-{number}")
            ledgers.append(Ledger(connection_id, dd_oid, signal_name, f"fleet{number}"))

        async with balancer(iso, urls) as lb:
            stop = asyncio.Event()
            sending = asyncio.create_task(load(lb, ledgers, stop))
            await answers_reach(ledgers, SENDS_BETWEEN_RESTARTS, "load under way")

            apis = [iso.api, second]
            restarts = []
            for role, index in [("api", 0), ("api", 1), *(("worker", n) for n in range(WORKERS))]:
                fleet = apis if role == "api" else iso.workers
                old = fleet[index]
                began = time.monotonic()
                status = await iso.terminate(old)
                assert status == 0, f"{old.name} exited {status}:\n{old.output_tail()}"
                restarts.append(f"{old.name} stopped in {time.monotonic() - began:.1f} s")
                if role == "api":
                    fleet[index] = await iso.start_api(port=_port(old))
                else:
                    await iso.start_worker()
                    fleet[index] = fleet.pop()
                await answers_reach(
                    ledgers,
                    answered(ledgers) + SENDS_BETWEEN_RESTARTS,
                    f"sends flowing after {old.name} restarted",
                )
            stop.set()
            await sending

        tallies: list[Tally] = []
        for ledger in ledgers:
            tallies.append(await ledger.wait_delivered(iso, deadline_seconds=60))
        record_property("resilience", "; ".join(restarts))
        record_property("resilience", f"sends handed to the other API: {lb.handed_over}")
        for tally in tallies:
            tally.report(record_property)

        accepted = sum(len(tally.ledger.accepted) for tally in tallies)
        duplicates = sum(tally.duplicates for tally in tallies)
        record_property(
            "resilience",
            f"fleet: {accepted} items accepted, {duplicates} duplicates "
            f"({100 * duplicates / accepted:.3f} %)",
        )
        for tally in tallies:
            assert set(tally.ledger.statuses()) == {202}, tally.summary()
            assert not tally.lost, f"{tally.summary()}\n{await iso.diagnostics()}"
            assert not tally.unexpected
        assert duplicates < MAX_DUPLICATE_SHARE * accepted
        peaks = (await iso.stack.emu.get("/_emulator/intake/concurrency")).json()["peaks"]
        for ledger in ledgers:
            path = INTAKE_PATHS[ledger.signal]
            assert peaks[ledger.dd_oid][path] == 1, f"{ledger.tag}: {peaks[ledger.dd_oid]}"
        assert await iso.wait_outbox_empty() == 0, await iso.diagnostics()


def _port(child: Child) -> str:
    """The port an API process was started with (its command line's `--port`)."""
    args: list[str] = child.process.args  # type: ignore[assignment]
    return args[args.index("--port") + 1]
