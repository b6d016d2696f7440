"""`kill -9` of the worker while Datadog holds its request: nothing accepted is lost.

The emulator delays the first series request; once its request log shows that request
arrived and is unanswered, the worker is SIGKILLed. The emulator then finishes the request
(Datadog may well have ingested what a dying client sent), so the partition's rows, still
in the outbox, are delivered a second time by the next worker once the 3-second lease lapses:
at least once, duplicates counted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.resilience.ledger import Ledger
from tests.support.isolated_stack import isolated_stack

SERIES = "/api/v2/series"
LEASE_SECONDS = 3
DELAY_SECONDS = 6
SENDS_PER_PHASE = 5


async def test_worker_killed_mid_send_loses_nothing(
    admin_url: str,
    tmp_path: Path,
    resilience_logs: Path,
    record_property: Callable[[str, Any], None],
) -> None:
    settings = {"DDBRIDGE_LEASE_SECONDS": str(LEASE_SECONDS)}
    async with isolated_stack(admin_url, tmp_path, resilience_logs, settings=settings) as iso:
        connection_id, dd_oid = await iso.stack.connected("acct-kill")
        ledger = Ledger(connection_id, dd_oid, "metrics", "kill")
        await iso.fault(path=SERIES, delay_seconds=DELAY_SECONDS, count=1)

        for _ in range(SENDS_PER_PHASE):
            await ledger.send(iso)
        in_flight = await iso.wait_for_request(SERIES, answered=False)
        [first_worker] = iso.workers
        iso.kill(first_worker)
        assert first_worker.process.returncode == -9
        # The request was still unanswered when the worker died.
        [still_open] = await iso.stack.datadog_requests(path=SERIES)
        assert still_open["status"] is None, still_open

        for _ in range(SENDS_PER_PHASE):  # accepted while no worker runs
            await ledger.send(iso)
        await iso.start_worker()
        for _ in range(SENDS_PER_PHASE):
            await ledger.send(iso)

        tally = await ledger.wait_delivered(iso, deadline_seconds=30)
        tally.report(record_property)
        assert ledger.statuses() == {202: 3 * SENDS_PER_PHASE}, ledger.answers
        assert not tally.lost, (
            f"{len(tally.lost)} accepted item(s) not delivered {tally.waited:.0f} s after the "
            f"new worker started\n{await iso.diagnostics()}"
        )
        assert not tally.unexpected
        # Only what was in flight when the worker died may arrive twice.
        assert tally.duplicates <= len(ledger.accepted) - 2 * SENDS_PER_PHASE * ledger.items
        assert in_flight["headers"]["content-encoding"] == "zstd1"
        assert await iso.wait_outbox_empty() == 0, await iso.diagnostics()
