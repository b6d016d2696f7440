"""PostgreSQL stopped and restarted while the API is under load.

The stack runs on an `EmbeddedPostgres` the test owns. Sends go on back to back throughout.
While the database is down every send must be answered 503 `database_unavailable` (not 500,
not a hang: each answer within a few seconds); once it is back, sends get 202 again. In the
end every item answered 202 (before, during or after the outage) is delivered, and nothing
of a send answered 503 is anywhere: not received by Datadog, not in the outbox, not in the
dead letters.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from service.embedded import EmbeddedPostgres
from tests.resilience.ledger import Answer, Ledger, send_until, wait_until
from tests.support.isolated_stack import isolated_stack

SENDS_BEFORE = 20
SENDS_DURING = 20
SENDS_AFTER = 20
OUTAGE_SECONDS = 2.0  # at least this long, and at least SENDS_DURING sends
MAX_ANSWER_SECONDS = 6.0  # the API's pool and connect timeouts are 5 s


async def test_postgres_restart_under_load_keeps_every_202(
    tmp_path: Path,
    resilience_logs: Path,
    record_property: Callable[[str, Any], None],
) -> None:
    postgres = EmbeddedPostgres(tmp_path / "postgres")
    await asyncio.to_thread(postgres.start)
    try:
        await _outage(postgres, tmp_path, resilience_logs, record_property)
    finally:
        await asyncio.to_thread(postgres.stop)


async def _outage(
    postgres: EmbeddedPostgres,
    tmp_path: Path,
    resilience_logs: Path,
    record_property: Callable[[str, Any], None],
) -> None:
    settings = {"DDBRIDGE_LEASE_SECONDS": "3"}
    async with isolated_stack(postgres.url(), tmp_path, resilience_logs, settings=settings) as iso:
        connection_id, dd_oid = await iso.stack.connected("acct-outage")
        ledger = Ledger(connection_id, dd_oid, "metrics", "outage")
        stop = asyncio.Event()
        sender = asyncio.create_task(send_until(iso, [ledger], stop))
        try:
            await wait_until(lambda: len(ledger.answers) >= SENDS_BEFORE, "sends flow")
            await asyncio.to_thread(postgres.stop)
            down_at, down_index = time.monotonic(), len(ledger.answers)
            await wait_until(
                lambda: (
                    _started_after(ledger.answers, down_at) >= SENDS_DURING
                    and time.monotonic() - down_at >= OUTAGE_SECONDS
                ),
                "sends are answered while PostgreSQL is down",
            )
            up_begins = time.monotonic()
            await asyncio.to_thread(postgres.start)
            up_at = time.monotonic()
            await wait_until(
                lambda: (
                    sum(a.status == 202 for a in ledger.answers if a.started > up_at) >= SENDS_AFTER
                ),
                "sends are accepted again after PostgreSQL is back",
                deadline_seconds=30,
            )
        finally:
            stop.set()
            await sender

        tally = await ledger.wait_delivered(iso, deadline_seconds=30)
        tally.report(record_property)
        left = await iso.wait_outbox_empty()
        diagnostics = await iso.diagnostics()
        during = [
            a for a in ledger.answers if a.started > down_at and a.started + a.seconds < up_begins
        ]
        refused = ledger.keys_answered(503)
        stored = await _stored_keys(iso)
        slowest = max(ledger.answers, key=lambda a: a.seconds)
        outage_line = (
            f"outage: {len(during)} sends while down, statuses "
            f"{sorted({a.status for a in during}, key=str)}; slowest answer {slowest.seconds:.2f} s "
            f"({slowest.status}); sends before the stop {down_index}"
        )
        statuses = ledger.statuses()
        outage_line += f"; all answers {dict(sorted(statuses.items(), key=str))}"
        print(outage_line)
        record_property("resilience", outage_line)

        # Every problem at once, so one run shows the whole picture.
        problems = []
        others = [a for a in ledger.answers if a.status not in (202, 503)]
        if others:
            problems.append(
                f"{len(others)} answer(s) neither 202 nor 503 (status None: connection closed "
                f"without an answer): {_brief(others)}"
            )
        if not during or any(a.status != 503 for a in during):
            problems.append(f"while PostgreSQL was down: {_brief(during)}")
        wrong_body = [
            a for a in ledger.answers if a.status == 503 and "database_unavailable" not in a.body
        ]
        if wrong_body:
            problems.append(f"503 without database_unavailable: {_brief(wrong_body)}")
        if slowest.seconds > MAX_ANSWER_SECONDS:
            problems.append(f"an answer took {slowest.seconds:.1f} s: {_brief([slowest])}")
        if tally.lost:
            problems.append(f"{len(tally.lost)} accepted item(s) not delivered")
        if left:
            problems.append(f"{left} outbox row(s) never delivered")
        if tally.unexpected:
            problems.append(f"items of sends not answered 202 reached Datadog: {tally.unexpected}")
        if refused & stored:
            problems.append(f"items of sends answered 503 are stored: {refused & stored}")
        assert not problems, "\n".join([*problems, diagnostics])


def _brief(answers: list[Answer]) -> str:
    shown = [f"#{a.number} {a.status} {a.body[:60]!r} in {a.seconds:.2f} s" for a in answers[:6]]
    return "; ".join(shown) + (f" (and {len(answers) - 6} more)" if len(answers) > 6 else "")


def _started_after(answers: list[Answer], moment: float) -> int:
    return sum(answer.started > moment for answer in answers)


async def _stored_keys(iso: Any) -> set[str]:
    """Keys of every metric point still in the outbox or in the dead letters."""
    keys: set[str] = set()
    for table in ("outbox", "dead_letters"):
        for row in await iso.fetch(f"SELECT items FROM {table} WHERE signal = 'metrics'"):
            for series in json.loads(b"[" + row["items"] + b"]"):
                keys.update(f"{series['metric']}|{point['value']}" for point in series["points"])
    return keys
