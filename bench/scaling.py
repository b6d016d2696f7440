"""The figures behind docs/scaling.md: `python -m bench.scaling [--record]`.

What `bench.forward` does not measure and sizing needs:

1. Storage: with the worker stopped, `SENDS` sends of each shape are accepted (1,000-point
   series, 500-line logs): the outbox's bytes per item (table with TOAST, and indexes), the
   write-ahead log PostgreSQL writes per item accepted, and its CPU; then one worker drains
   them: WAL and CPU per item delivered (the deletes and lease updates).
2. Small sends: one-point sends as fast as accepted (8 in flight per load generator, two
   generators) over the 50 connections for `SMALL_SECONDS`: API CPU per send, worker CPU per
   Datadog request, how many sends one request carries (the linger batches them),
   PostgreSQL CPU per send. As fast as accepted, so that the processes' idle work (crons,
   the servers' background writers) weighs as little as possible per send.

Run it with no `DDBRIDGE_BENCH_*`/`DDBRIDGE_TEST_*` URLs, so PostgreSQL and Redis are embedded
ones started for it: the WAL position and the server's CPU are then ddbridge's alone (with
the machine's shared PostgreSQL they include every other client's, and the report says so).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from dataclasses import dataclass

import asyncpg
import psutil

from bench import measure, oauth, payloads, phases, procs, report
from bench.runner import run_on_stack
from bench.stack import Stack
from harness import processes
from harness.databases import asyncpg_dsn

CONNECTIONS = 50
SENDS = 400
SMALL_SECONDS = 20.0
DRAIN_TIMEOUT_SECONDS = 120.0
EMBEDDED_PGDATA = processes.REPO_ROOT / ".ddbridge/bench-postgres/pgdata"
MILLION = 1_000_000


def embedded_postgres_cpu() -> float | None:
    """CPU seconds of the embedded cluster (postmaster, live backends, exited ones), or None
    when the bench runs on another server."""
    if os.environ.get("DDBRIDGE_BENCH_DATABASE_URL") or os.environ.get(
        "DDBRIDGE_TEST_DATABASE_URL"
    ):
        return None
    pid = int((EMBEDDED_PGDATA / "postmaster.pid").read_text().split()[0])
    postmaster = psutil.Process(pid)
    total = procs.cpu_seconds(pid)
    for child in postmaster.children(recursive=True):
        total += procs.cpu_seconds(child.pid)
    return total


@dataclass
class Database:
    url: str

    async def value(self, query: str) -> int:
        connection = await asyncpg.connect(asyncpg_dsn(self.url))
        try:
            return int(await connection.fetchval(query))
        finally:
            await connection.close()

    async def wal(self) -> int:
        return await self.value("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")


async def storage(
    bench: phases.Bench, database: Database, signal: str, out: report.Printer
) -> None:
    items_per_send = bench.items_per_post[signal]
    target = SENDS * items_per_send
    base = await phases.delivered_now(bench, signal)
    await asyncio.to_thread(bench.stack.stop_worker)
    table_before = await database.value("SELECT pg_total_relation_size('outbox')")
    wal_before, cpu_before = await database.wal(), embedded_postgres_cpu()
    load = await phases.generate(phases.ddbridge_load(bench, signal, 120.0, max_items=target))
    wal_accepted, cpu_accepted = await database.wal(), embedded_postgres_cpu()
    rows = await database.value("SELECT count(*) FROM outbox")
    raw = await database.value("SELECT coalesce(sum(octet_length(items)), 0) FROM outbox")
    stored = await database.value("SELECT coalesce(sum(pg_column_size(items)), 0) FROM outbox")
    table = await database.value("SELECT pg_total_relation_size('outbox')") - table_before
    indexes = await database.value("SELECT pg_indexes_size('outbox')")
    await asyncio.to_thread(bench.stack.start_worker)
    drained = await phases.wait_delivered(bench, signal, base + load.items, DRAIN_TIMEOUT_SECONDS)
    wal_drained, cpu_drained = await database.wal(), embedded_postgres_cpu()
    items = load.items
    out(f"{signal}: {items:,} items in {rows:,} outbox rows ({items_per_send:,} per send); "
        f"drained: {'yes' if drained else 'NO'}")  # fmt: skip
    out(f"  outbox items: {raw / items:,.1f} B/item as sent, {stored / items:,.1f} B/item stored "
        f"(TOAST-compressed); table+TOAST+indexes grew {table / items:,.1f} B/item "
        f"(indexes now {indexes / MILLION:.1f} MB)")  # fmt: skip
    out(f"  WAL: accepting {(wal_accepted - wal_before) / items:,.1f} B/item, delivering "
        f"{(wal_drained - wal_accepted) / items:,.1f} B/item")  # fmt: skip
    if cpu_before is not None and cpu_accepted is not None and cpu_drained is not None:
        out(f"  PostgreSQL CPU: accepting {(cpu_accepted - cpu_before) / items * MILLION:.2f} s "
            f"per million items, delivering {(cpu_drained - cpu_accepted) / items * MILLION:.2f} s")  # fmt: skip


async def small_sends(bench: phases.Bench, out: report.Printer) -> None:
    stack = bench.stack
    paths = [f"/internal/v1/connections/{c.connection_id}/metrics" for c in bench.connections]
    configs = [
        {
            "base_url": stack.api_url,
            "paths": paths[i::2],
            "signal": "metrics",
            "items": 1,  # one series of one point: the smallest send
            "headers": {"Authorization": f"Bearer {stack.internal_token}"},
            "duration": SMALL_SECONDS,
            "concurrency": 8,
            "rate": None,
        }
        for i in range(2)
    ]
    requests_before = await _requests(bench)
    delivered_before = await phases.delivered_now(bench, "metrics")
    cpu_before, pg_before = bench.cpu(), embedded_postgres_cpu()
    load = await phases.generate(configs)
    await phases.wait_delivered(
        bench, "metrics", delivered_before + load.items, DRAIN_TIMEOUT_SECONDS
    )
    cpu, pg_after = cpu_before.until(bench.cpu()), embedded_postgres_cpu()
    sends = load.items
    requests = await _requests(bench) - requests_before
    out(f"one-point sends: {sends:,} accepted in {load.seconds:.0f} s ({sends / load.seconds:,.0f}/s, "
        f"{load.statuses}); {requests:,} Datadog requests ({sends / max(1, requests):.1f} sends per request)")  # fmt: skip
    out(f"  API CPU {cpu['api'] / sends * 1000:.2f} ms per send; worker CPU "
        f"{cpu['worker'] / max(1, requests) * 1000:.2f} ms per Datadog request "
        f"({cpu['worker'] / sends * 1000:.2f} ms per send)")  # fmt: skip
    if pg_before is not None and pg_after is not None:
        out(f"  PostgreSQL CPU {(pg_after - pg_before) / sends * 1000:.2f} ms per send")


async def _requests(bench: phases.Bench) -> int:
    response = await bench.emu.get("/_emulator/intake/counts")
    response.raise_for_status()
    return sum(
        counts["requests"]
        for dd_oid, signals in response.json()["counts"].items()
        if dd_oid in bench.poller.dd_oids
        for signal, counts in signals.items()
        if signal == "metrics"
    )


async def scaling(stack: Stack, out: report.Printer) -> None:
    async with oauth.clients(stack) as (emu, api):
        connected = await oauth.connect_orgs(emu, api, stack, CONNECTIONS)
        out(f"connected {len(connected)} orgs across {len({c.domain for c in connected})} sites")
        poller = measure.DeliveryPoller(emu, {c.dd_oid for c in connected}, interval=0.2)
        bench = phases.Bench(
            stack,
            emu,
            connected,
            poller,
            measure.RssSampler(lambda: {}),
            2,
            8,
            dict(payloads.DEFAULT_ITEMS),
        )
        polling = asyncio.ensure_future(poller.run())
        try:
            if embedded_postgres_cpu() is None:
                out("note: the machine's PostgreSQL: WAL and its CPU include every other client")
            database = Database(stack.env["DDBRIDGE_DATABASE_URL"])
            for signal in ("metrics", "logs"):
                await storage(bench, database, signal, out)
            await small_sends(bench, out)
        finally:
            polling.cancel()
            await asyncio.gather(polling, return_exceptions=True)
    out("machine: " + ", ".join(f"{what} {value}" for what, value in report.machine()))
    out(f"load average at the end: {', '.join(f'{v:.1f}' for v in os.getloadavg())} "
        f"({time.strftime('%H:%M')} UTC; the cores are shared with other sessions)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__)
    parser.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
    args = parser.parse_args()
    out = report.Printer()
    run_on_stack("ddbridge-scaling-", lambda stack: scaling(stack, out), out)
    if args.record:
        report.record(out, "sizing figures, `python -m bench.scaling`")


if __name__ == "__main__":
    main()
