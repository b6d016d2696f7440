"""Refreshing a fleet's tokens: the per-site rate cap as Datadog sees it, full speed, and a
fleet whose tokens expire over the next hour.

    python -m bench.refresh [--connections 10000] [--sites 2] [--rate 20] [--compress 6]
                            [--runs capped,full,hour]

Connections are written straight into PostgreSQL with tokens the emulator minted
(`/_emulator/grants`), as if each org had onboarded. Then a worker starts: its reconciler (at
start-up, then each minute) rings the due refreshes, at most `--rate` a second per site, and
the worker refreshes them. Three runs on one stack:

1. capped: every token due now, `--rate` per second per site for 30 s worth of connections;
2. full speed: `--connections` due now with the cap far above what the worker can do;
   refreshes per second and worker CPU seconds per 1,000 refreshes;
3. an hour: `--connections` whose tokens expire spread evenly over the next hour, the first
   30 s from now, capped at `--rate`. Time is compressed `--compress` times: the hour lasts
   3600/compress seconds and the refresh margin (`DDBRIDGE_REFRESH_MARGIN_SECONDS`, 600 s) is
   divided alike; the reconciler's minute and the emulator's one-hour token lifetime are not,
   so keep the compressed margin above a minute. Whether each token was refreshed before it
   expired is read from PostgreSQL: a new token's expiry minus the emulator's one-hour token
   lifetime is when it was stored, after its call arrived.

In every run the emulator's request log gives the most token calls any site saw in any second
of arrival, the figure the cap is about.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from bench import oauth, report
from bench.procs import cpu_seconds
from bench.report import Printer
from bench.runner import run_on_stack
from bench.stack import Stack
from harness.databases import asyncpg_dsn
from service.crypto import KeyRing
from service.sites import KNOWN_SITES

SCOPES = ["api_keys_write", "monitors_read"]
FULL_SPEED_RATE = 100_000
MINT_CHUNK = 1_000
PRODUCTION_MARGIN_SECONDS = 600
HOUR_SECONDS = 3600
TOKEN_LIFETIME = timedelta(hours=1)
"""How long the emulator's tokens last (its default): a refreshed token's expiry minus this is
when ddbridge stored it."""
FIRST_EXPIRY_SECONDS = 30
"""How soon the first token of the hour run expires (a worker takes a few seconds to start)."""


@dataclass(frozen=True, slots=True)
class Minted:
    """One connection written to PostgreSQL and when its first token expires."""

    connection_id: uuid.UUID
    domain: str
    expires_at: datetime


async def _fleet(
    stack: Stack,
    emu: httpx.AsyncClient,
    domains: list[str],
    count: int,
    label: str,
    expiry: Callable[[datetime, int], datetime],
) -> list[Minted]:
    """`count` connections spread over `domains` (account ids `bench-<label>-...`), written to
    PostgreSQL; the i-th token expires at `expiry(now, i)`, `now` taken once all are minted."""
    keyring = KeyRing(stack.env["DDBRIDGE_ENCRYPTION_KEYS"].split(","))
    grants = []
    for index, domain in enumerate(domains):
        share = count // len(domains) + (index < count % len(domains))
        for start in range(0, share, MINT_CHUNK):
            answer = await emu.post(
                "/_emulator/grants",
                json={
                    "client_id": stack.client_id,
                    "domain": domain,
                    "count": min(MINT_CHUNK, share - start),
                },
            )
            answer.raise_for_status()
            grants += [(domain, grant) for grant in answer.json()["grants"]]
    now = datetime.now(UTC)
    rows, minted = [], []
    for number, (domain, grant) in enumerate(grants):
        cid = uuid.uuid4()

        def seal(column: str, value: str, cid: uuid.UUID = cid) -> bytes:
            return keyring.seal(value, context=f"connection:{cid}:{column}")

        expires_at = expiry(now, number)
        minted.append(Minted(cid, domain, expires_at))
        rows.append(
            (
                cid,
                f"bench-{label}-{cid.hex[:8]}",
                domain,
                grant["dd_oid"],
                "Fleet org",
                "active",
                SCOPES,
                seal("access_token", grant["access_token"]),
                seal("refresh_token", grant["refresh_token"]),
                expires_at,
            )
        )
    db = await asyncpg.connect(asyncpg_dsn(stack.env["DDBRIDGE_DATABASE_URL"]))
    try:
        await db.copy_records_to_table(
            "connections",
            records=rows,
            columns=[
                "id",
                "account_id",
                "domain",
                "dd_org_id",
                "dd_org_name",
                "status",
                "scopes",
                "access_token",
                "refresh_token",
                "access_token_expires_at",
            ],
        )
    finally:
        await db.close()
    return minted


async def _refreshed(stack: Stack, label: str) -> int:
    """Connections of the run whose token was refreshed (the emulator's tokens last an hour;
    the fleet's first ones, at most the compressed hour)."""
    db = await asyncpg.connect(asyncpg_dsn(stack.env["DDBRIDGE_DATABASE_URL"]))
    try:
        count: int = await db.fetchval(
            "SELECT count(*) FROM connections WHERE account_id LIKE $1"
            " AND access_token_expires_at > now() + interval '45 minutes'",
            f"bench-{label}-%",
        )
    finally:
        await db.close()
    return count


async def _stored_at(stack: Stack, label: str) -> dict[uuid.UUID, datetime]:
    """When each refreshed connection of the run stored its new token."""
    db = await asyncpg.connect(asyncpg_dsn(stack.env["DDBRIDGE_DATABASE_URL"]))
    try:
        rows = await db.fetch(
            "SELECT id, access_token_expires_at FROM connections WHERE account_id LIKE $1"
            " AND access_token_expires_at > now() + interval '45 minutes'",
            f"bench-{label}-%",
        )
    finally:
        await db.close()
    return {row["id"]: row["access_token_expires_at"] - TOKEN_LIFETIME for row in rows}


async def _token_calls(emu: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Every token call the emulator logged (no onboarding here: each one is a refresh)."""
    answer = await emu.get("/_emulator/requests", params={"path": "/oauth2/v1/token"})
    calls: list[dict[str, Any]] = answer.json()["requests"]
    return calls


def _busiest_second(calls: list[dict[str, Any]]) -> int:
    per_second = Counter((call["host"], int(call["at"])) for call in calls)
    return max(per_second.values(), default=0)


@dataclass(frozen=True, slots=True)
class Run:
    minted: list[Minted]
    refreshed: int
    seconds: float
    worker_cpu: float
    calls: list[dict[str, Any]]


async def _refresh_all(
    stack: Stack,
    emu: httpx.AsyncClient,
    label: str,
    fleet: Callable[[], Awaitable[list[Minted]]],
    deadline_seconds: float,
) -> Run:
    """Worker stopped, fleet in, worker (re)started; wait until all are refreshed."""
    stack.stop_worker()
    await emu.delete("/_emulator/requests")
    minted = await fleet()
    started = time.monotonic()
    worker = await asyncio.to_thread(stack.start_worker)
    cpu_before = cpu_seconds(worker.process.pid)
    deadline = started + deadline_seconds
    while True:
        done = await _refreshed(stack, label)
        if done >= len(minted) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(worker.process.pid) - cpu_before
    return Run(minted, done, elapsed, cpu, await _token_calls(emu))


async def _due_now(
    stack: Stack,
    emu: httpx.AsyncClient,
    domains: list[str],
    count: int,
    rate: int,
    label: str,
    out: Printer,
) -> None:
    """Every token due now, the cap at `rate`: throughput, CPU and the busiest second."""
    stack.env["DDBRIDGE_REFRESH_RATE_PER_SITE"] = str(rate)
    stack.env["DDBRIDGE_REFRESH_MARGIN_SECONDS"] = str(PRODUCTION_MARGIN_SECONDS)

    async def fleet() -> list[Minted]:
        return await _fleet(
            stack, emu, domains, count, label, lambda now, _: now + timedelta(seconds=30)
        )

    run = await _refresh_all(stack, emu, label, fleet, 600)
    total, calls = len(run.minted), run.calls
    first, last = min(c["at"] for c in calls), max(c["at"] for c in calls)
    out(
        f"  {total} connections over {len(domains)} site(s), cap {rate:g}/s per site: "
        f"{run.refreshed} refreshed in {run.seconds:.1f} s (worker start included); "
        f"{len(calls)} token calls, {len(calls) / max(last - first, 1e-9):.0f}/s between the "
        f"first and the last; most calls one site saw in one second: {_busiest_second(calls)}; "
        f"worker CPU {run.worker_cpu:.1f} s = "
        f"{run.worker_cpu / max(total, 1) * 1000:.2f} s per 1,000 refreshes"
    )


async def _an_hour(
    stack: Stack,
    emu: httpx.AsyncClient,
    domains: list[str],
    count: int,
    rate: int,
    compress: float,
    out: Printer,
) -> None:
    """Tokens expiring evenly over a (compressed) hour: each refreshed before it expires?"""
    hour = HOUR_SECONDS / compress
    margin = PRODUCTION_MARGIN_SECONDS / compress
    stack.env["DDBRIDGE_REFRESH_RATE_PER_SITE"] = str(rate)
    stack.env["DDBRIDGE_REFRESH_MARGIN_SECONDS"] = str(round(margin))
    order = list(range(count))
    random.shuffle(order)  # sites and expiries interleaved as in a real fleet

    def expiry(now: datetime, number: int) -> datetime:
        return now + timedelta(seconds=FIRST_EXPIRY_SECONDS + hour * order[number] / count)

    async def fleet() -> list[Minted]:
        return await _fleet(stack, emu, domains, count, "hour", expiry)

    run = await _refresh_all(stack, emu, "hour", fleet, FIRST_EXPIRY_SECONDS + hour + 120)
    stored = await _stored_at(stack, "hour")
    leads = [
        (m.expires_at - stored[m.connection_id]).total_seconds()
        for m in run.minted
        if m.connection_id in stored
    ]
    late = sum(lead <= 0 for lead in leads) + len(run.minted) - len(leads)
    least = min(leads, default=0.0)
    out(
        f"  {len(run.minted)} connections over {len(domains)} site(s) whose tokens expire "
        f"evenly over the next hour, compressed {compress:g}x (hour {hour:.0f} s, margin "
        f"{margin:.0f} s), cap {rate:g}/s per site: {run.refreshed} refreshed in "
        f"{run.seconds:.0f} s; refreshed after expiry (or never): {late}; least time left at "
        f"refresh {least:.1f} s ({least * compress:.0f} s uncompressed); {len(run.calls)} "
        f"token calls; most calls one site saw in one second: {_busiest_second(run.calls)}; "
        f"worker CPU {run.worker_cpu:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--sites", type=int, default=2)
    parser.add_argument("--rate", type=int, default=20)
    parser.add_argument("--compress", type=float, default=6)
    parser.add_argument(
        "--runs", default="capped,full,hour", help="which runs, comma-separated (default all)"
    )
    args = parser.parse_args()
    domains = [site.domain for site in KNOWN_SITES[: args.sites]]
    out = Printer()

    async def body(stack: Stack) -> None:
        async with httpx.AsyncClient(base_url=stack.emulator_url, timeout=60) as emu:
            await oauth.register_client(emu, stack, domains, SCOPES)
            runs = args.runs.split(",")
            if "capped" in runs:
                out("capped:")
                capped = args.rate * 30 * len(domains)
                await _due_now(stack, emu, domains, capped, args.rate, "capped", out)
            if "full" in runs:
                out("full speed:")
                await _due_now(stack, emu, domains, args.connections, FULL_SPEED_RATE, "full", out)
            if "hour" in runs:
                out("an hour:")
                await _an_hour(stack, emu, domains, args.connections, args.rate, args.compress, out)

    run_on_stack("ddbridge-bench-refresh-", body, out)
    out("machine: " + ", ".join(f"{what} {value}" for what, value in report.machine()))


if __name__ == "__main__":
    main()
