"""SIGTERM, as Kubernetes sends it: the API drains and finishes what it took; a worker finishes
(or hands back) its request and gives its partition back at once, not after `LEASE_SECONDS`."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx

from tests.resilience.ledger import Ledger
from tests.support import payloads
from tests.support.isolated_stack import POLL_SECONDS, IsolatedStack, isolated_stack

SERIES = "/api/v2/series"
LEASE_SECONDS = 60
"""Long, so that a delivery after SIGTERM within a few seconds can only be a handed-back lease."""
SENDS = 5


async def _leases(iso: IsolatedStack) -> list[Any]:
    rows = await iso.fetch("SELECT lease_until FROM partitions WHERE lease_until IS NOT NULL")
    return [row["lease_until"] for row in rows]


async def test_api_drains_then_finishes_what_it_took(
    admin_url: str, tmp_path: Path, resilience_logs: Path
) -> None:
    settings = {"DDBRIDGE_SHUTDOWN_DRAIN_SECONDS": "3"}
    async with isolated_stack(admin_url, tmp_path, resilience_logs, settings=settings) as iso:
        connection_id, dd_oid = await iso.stack.connected("acct-drain")
        path = f"/internal/v1/connections/{connection_id}/logs"
        body = httpx.Request("POST", "/", json=payloads.logs(4)).content
        halfway = asyncio.Event()
        finish = asyncio.Event()

        async def slowly() -> AsyncIterator[bytes]:
            yield body[:10]
            halfway.set()
            await finish.wait()
            yield body[10:]

        taken = asyncio.create_task(
            iso.stack.api.post(path, content=slowly(), headers={"Content-Type": "application/json"})
        )
        await halfway.wait()
        # A full round trip on another connection after the send's head and first bytes were
        # written: the API's loop has read that head and started the send's handler.
        assert (await iso.stack.api.get("/readyz")).status_code == 200
        iso.api.process.send_signal(signal.SIGTERM)

        deadline = time.monotonic() + 10
        while (ready := await iso.stack.api.get("/readyz")).status_code == 200:
            assert time.monotonic() < deadline, "readiness stayed true after SIGTERM"
            await asyncio.sleep(POLL_SECONDS)
        assert ready.status_code == 503
        assert ready.json()["status"] == "draining"
        refused = await iso.stack.api.post(path, json=payloads.logs(2))
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == "shutting_down"
        assert refused.headers["retry-after"] == "1"
        assert (await iso.stack.api.get("/healthz")).status_code == 200
        assert iso.api.alive()

        finish.set()  # the send taken before SIGTERM completes
        answer = await taken
        assert answer.status_code == 202, answer.text
        assert await iso.wait_exit(iso.api, 20) == 0, iso.api.output_tail()

        received = await iso.stack.wait_received(dd_oid, "logs", 4)
        assert len(received) == 4, "only the send taken before SIGTERM was stored"


async def _sigterm_worker_mid_request(
    iso: IsolatedStack, record_property: Callable[[str, Any], None], tag: str
) -> Ledger:
    """The only worker holds a delayed series request when it gets SIGTERM. Once it has
    exited, no lease is held (a 60-second lease taken seconds ago: it was given back); then a
    second worker starts and everything accepted arrives, well before a lease could lapse."""
    connection_id, dd_oid = await iso.stack.connected(f"acct-{tag}")
    ledger = Ledger(connection_id, dd_oid, "metrics", tag)
    for _ in range(SENDS):
        await ledger.send(iso)
    await iso.wait_for_request(SERIES, answered=False)
    [first] = iso.workers
    assert len(await _leases(iso)) == 1, "the worker holds the partition"
    assert await iso.terminate(first, 30) == 0, first.output_tail()
    assert await _leases(iso) == [], f"the lease outlived its worker\n{await iso.diagnostics()}"

    started = time.monotonic()
    await iso.start_worker()
    waiting_from = time.monotonic()
    tally = await ledger.wait_delivered(iso, deadline_seconds=LEASE_SECONDS / 2)
    # Until every item had arrived (not until Datadog answered the held request as well).
    delivered_after = waiting_from - started + tally.waited
    record_property("resilience", f"{tag}: delivered {delivered_after:.1f} s after the restart")
    tally.report(record_property)
    assert ledger.statuses() == {202: SENDS}, ledger.answers
    assert not tally.lost, f"{len(tally.lost)} lost\n{await iso.diagnostics()}"
    assert not tally.unexpected
    assert delivered_after < LEASE_SECONDS / 6, "handed back, not lapsed"
    return ledger


async def test_worker_finishes_its_request_on_sigterm(
    admin_url: str,
    tmp_path: Path,
    resilience_logs: Path,
    record_property: Callable[[str, Any], None],
) -> None:
    """Datadog answers within the worker's shutdown time: the request completes, nothing is
    sent twice, and the partition is free the moment the worker is gone."""
    settings = {"DDBRIDGE_LEASE_SECONDS": str(LEASE_SECONDS)}
    async with isolated_stack(admin_url, tmp_path, resilience_logs, settings=settings) as iso:
        await iso.fault(path=SERIES, delay_seconds=3, count=1)
        ledger = await _sigterm_worker_mid_request(iso, record_property, "finish")
        [request] = await iso.stack.datadog_requests(path=SERIES)
        assert request["status"] == 202, "the request in flight at SIGTERM was finished"
        tally = await ledger.wait_delivered(iso, deadline_seconds=5)
        assert tally.duplicates == 0, tally.summary()
        assert await iso.wait_outbox_empty() == 0


async def test_worker_hands_its_partition_back_on_sigterm(
    admin_url: str,
    tmp_path: Path,
    resilience_logs: Path,
    record_property: Callable[[str, Any], None],
) -> None:
    """Datadog holds the request past the worker's shutdown time: the worker cancels it, gives
    the partition back at once, and the other worker sends the rows again, long before the
    lease would have lapsed (at least once: what was in flight may arrive twice)."""
    settings = {
        "DDBRIDGE_LEASE_SECONDS": str(LEASE_SECONDS),
        "DDBRIDGE_WORKER_SHUTDOWN_SECONDS": "1",
    }
    async with isolated_stack(admin_url, tmp_path, resilience_logs, settings=settings) as iso:
        await iso.fault(path=SERIES, delay_seconds=8, count=1)
        ledger = await _sigterm_worker_mid_request(iso, record_property, "handback")
        tally = await ledger.wait_delivered(iso, deadline_seconds=5)
        assert tally.duplicates <= SENDS * ledger.items, tally.summary()
        assert await iso.wait_outbox_empty() == 0
