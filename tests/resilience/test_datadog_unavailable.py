"""Datadog answering 503 and timing out: the partition backs off on its schedule, then
everything is delivered once the faults clear.

Compressed from "a minute" to about 12 seconds of faults to keep the suite fast: series
requests get 503 three times, logs requests are held 2 s (twice the worker's 1-second HTTP
timeout) three times; the worker's schedule waits about 1, 2 and 5 s between attempts
(`RETRY_DELAYS`, with +/-20% jitter), so the fourth attempt, about 8 s (series) or 11 s (logs)
after the first, succeeds. A timed-out logs request is still ingested by the emulator when its
delay ends (as Datadog may ingest what a client gave up on), so those lines arrive twice:
counted as duplicates, never as losses.

Attempt times are taken from the emulator's request log, polled every 50 ms by the test.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.resilience.ledger import Ledger, wait_until
from tests.support.isolated_stack import POLL_SECONDS, IsolatedStack, isolated_stack

SERIES = "/api/v2/series"
LOGS = "/api/v2/logs"
FAILING_ATTEMPTS = 3
TIMEOUT_SECONDS = 1.0
HOLD_SECONDS = 2.0
SCHEDULE = [1.0, 2.0, 5.0]  # service.delivery.drain.RETRY_DELAYS, first three
JITTER_LOW = 0.8
JITTER_HIGH = 1.2
ARQ_POLL = 0.5
POLL_SLACK = 0.15


@dataclass
class AttemptLog:
    """When each request to each path first showed in the emulator's request log (monotonic
    seconds), polled by a background task from before the first send."""

    paths: list[str]
    seen: dict[str, list[float]] = field(default_factory=dict)

    async def follow(self, iso: IsolatedStack, stop: asyncio.Event) -> None:
        for path in self.paths:
            self.seen[path] = []
        while not stop.is_set():
            await self.poll(iso)
            await asyncio.sleep(POLL_SECONDS)

    async def poll(self, iso: IsolatedStack) -> None:
        for path in self.paths:
            arrived = len(await iso.stack.datadog_requests(path=path))
            now = time.monotonic()
            self.seen[path].extend([now] * (arrived - len(self.seen[path])))

    def count(self, path: str) -> int:
        return len(self.seen.get(path, []))

    def gaps(self, path: str, attempts: int) -> list[float]:
        times = self.seen[path][:attempts]
        return [round(b - a, 2) for a, b in itertools.pairwise(times)]


async def test_503s_and_timeouts_back_off_then_deliver_everything(
    admin_url: str,
    tmp_path: Path,
    resilience_logs: Path,
    record_property: Callable[[str, Any], None],
) -> None:
    settings = {
        "DDBRIDGE_DATADOG_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
        "DDBRIDGE_LEASE_SECONDS": "3",
    }
    async with isolated_stack(admin_url, tmp_path, resilience_logs, settings=settings) as iso:
        connection_id, dd_oid = await iso.stack.connected("acct-unavailable")
        metrics = Ledger(connection_id, dd_oid, "metrics", "unavailable")
        logs = Ledger(connection_id, dd_oid, "logs", "unavailable")
        await iso.fault(path=SERIES, status=503, count=FAILING_ATTEMPTS)
        await iso.fault(path=LOGS, delay_seconds=HOLD_SECONDS, count=FAILING_ATTEMPTS)

        attempts = AttemptLog([SERIES, LOGS])
        stop = asyncio.Event()
        follower = asyncio.create_task(attempts.follow(iso, stop))
        try:
            for _ in range(5):
                await metrics.send(iso)
                await logs.send(iso)
            await wait_until(
                lambda: attempts.count(SERIES) >= 2 and attempts.count(LOGS) >= 2,
                "both partitions retried once",
            )
            for _ in range(5):  # accepted while the partitions back off
                await metrics.send(iso)
                await logs.send(iso)
            tallies = [await ledger.wait_delivered(iso, 30) for ledger in (metrics, logs)]
            left = await iso.wait_outbox_empty(deadline_seconds=30)
        finally:
            stop.set()
            await follower
        await attempts.poll(iso)
        for tally in tallies:
            tally.report(record_property)
        requests = {path: await iso.stack.datadog_requests(path=path) for path in attempts.paths}
        gaps = {path: attempts.gaps(path, FAILING_ATTEMPTS + 1) for path in attempts.paths}
        print(f"seconds between attempts: {gaps}")
        record_property("resilience", f"seconds between attempts: {gaps}")
        diagnostics = await iso.diagnostics()

        for ledger, tally in zip((metrics, logs), tallies, strict=True):
            assert set(ledger.statuses()) == {202}, ledger.statuses()
            assert not tally.lost, (
                f"{len(tally.lost)} accepted {ledger.signal} item(s) not delivered\n{diagnostics}"
            )
            assert not tally.unexpected
        assert left == 0, f"{left} outbox row(s) never delivered\n{diagnostics}"
        assert [r["status"] for r in requests[SERIES][:4]] == [503, 503, 503, 202]
        assert len(requests[LOGS]) >= FAILING_ATTEMPTS + 1
        # Backoff on the schedule: each wait at least its step less jitter, at most its step
        # plus jitter and arq's half-second poll; a timed-out attempt also spent the timeout.
        for path, spent in ((SERIES, 0.0), (LOGS, TIMEOUT_SECONDS)):
            for step, gap in enumerate(gaps[path]):
                floor = spent + JITTER_LOW * SCHEDULE[step] - POLL_SLACK
                ceiling = spent + JITTER_HIGH * SCHEDULE[step] + ARQ_POLL + POLL_SLACK
                assert gap >= floor, f"{path} retry {step + 1} after {gap} s, before {floor} s"
                assert gap <= ceiling, (
                    f"{path} retry {step + 1} came {gap} s after the previous attempt, "
                    f"{gap - ceiling:.1f} s late for a {SCHEDULE[step]} s backoff (at most "
                    f"{ceiling:.1f} s)"
                )
        partitions = await iso.fetch(
            "SELECT signal, retried_requests, failures FROM partitions ORDER BY signal"
        )
        assert [tuple(row) for row in partitions] == [
            ("logs", FAILING_ATTEMPTS, 0),
            ("metrics", FAILING_ATTEMPTS, 0),
        ]
        # Only lines of the held requests may arrive twice (each held request was ingested).
        assert tallies[0].duplicates == 0
        assert tallies[1].duplicates <= FAILING_ATTEMPTS * len(logs.accepted)
