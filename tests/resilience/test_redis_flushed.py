"""Redis `FLUSHALL` mid-run: every queued doorbell, in-progress marker and result is gone, and
nothing accepted is lost, because PostgreSQL is the system of record and the worker's
reconciler (every 5 s) re-rings every partition with pending rows.

The stack runs on an embedded Redis of its own, so flushing it touches no other test session.
Sends go on continuously through the first flush; a second flush right after the last send
drops the doorbells those last sends rang (deferred by a 1-second linger, so they are still
queued), leaving the reconciler as the only way their rows get delivered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.resilience.ledger import Ledger, send_until, wait_until
from tests.support.isolated_stack import isolated_stack

SENDS_AROUND_FLUSH = 40


async def test_redis_flushall_mid_run_loses_nothing(
    admin_url: str,
    tmp_path: Path,
    resilience_logs: Path,
    record_property: Callable[[str, Any], None],
) -> None:
    settings = {"DDBRIDGE_LEASE_SECONDS": "3", "DDBRIDGE_LINGER_SECONDS": "1"}
    async with isolated_stack(admin_url, tmp_path, resilience_logs, settings=settings) as iso:
        connection_id, dd_oid = await iso.stack.connected("acct-flush")
        ledgers = [
            Ledger(connection_id, dd_oid, "metrics", "flush"),
            Ledger(connection_id, dd_oid, "logs", "flush"),
        ]
        metrics = ledgers[0]
        stop = asyncio.Event()
        sender = asyncio.create_task(send_until(iso, ledgers, stop))
        try:
            await wait_until(lambda: len(metrics.answers) >= SENDS_AROUND_FLUSH, "sends flow")
            await iso.flush_redis()
            flushed_at = len(metrics.answers)
            await wait_until(
                lambda: len(metrics.answers) >= flushed_at + SENDS_AROUND_FLUSH,
                "sends go on after the flush",
            )
        finally:
            stop.set()
            await sender
        await iso.flush_redis()
        assert not [k for k in await iso.redis_keys() if k.startswith("arq:job:deliver")]

        tallies = [await ledger.wait_delivered(iso, deadline_seconds=30) for ledger in ledgers]
        for tally in tallies:
            tally.report(record_property)
        for ledger, tally in zip(ledgers, tallies, strict=True):
            assert set(ledger.statuses()) == {202}, ledger.statuses()
            assert not tally.lost, (
                f"{len(tally.lost)} accepted {ledger.signal} item(s) not delivered "
                f"{tally.waited:.0f} s after the flush\n{await iso.diagnostics()}"
            )
            assert not tally.unexpected
        assert await iso.wait_outbox_empty() == 0, await iso.diagnostics()
