"""Refreshing a fleet's tokens: the per-site rate cap as Datadog sees it, and full speed.

    python -m bench.refresh [--connections 10000] [--sites 2] [--rate 20]

Connections are written straight into PostgreSQL with tokens the emulator minted
(`/_emulator/grants`), as if each org had onboarded, with every token due now. Then a worker
starts: its reconciler (run at start-up) rings the due refreshes, at most `--rate` a second per
site, and the workers refresh them. Two runs on one stack:

1. capped: `--rate` per second per site for 30 s worth of connections; the emulator's request
   log gives the most token calls any site saw in any second;
2. full speed: `--connections` with the cap far above what the worker can do; refreshes per
   second and worker CPU seconds per 1,000 refreshes.

Whether a fleet whose tokens expire over the next hour is refreshed in time follows from (2):
it needs `connections / (3600 - REFRESH_MARGIN_SECONDS)` refreshes a second.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from bench.procs import cpu_seconds
from bench.report import Printer
from bench.runner import run_on_stack
from bench.stack import Stack, asyncpg_dsn
from service.crypto import KeyRing
from service.sites import KNOWN_SITES

SCOPES = ["api_keys_write", "monitors_read"]
FULL_SPEED_RATE = 100_000
MINT_CHUNK = 1_000


async def _register(emu: httpx.AsyncClient, stack: Stack, domains: list[str]) -> None:
    for domain in domains:
        answer = await emu.post(
            "/_emulator/clients",
            json={
                "client_id": stack.client_id,
                "client_secret": stack.client_secret,
                "name": "bench",
                "domain": domain,
                "redirect_uris": [f"{stack.api_url}/oauth/callback"],
                "scopes": SCOPES,
                "published": True,
            },
        )
        answer.raise_for_status()


async def _fleet(stack: Stack, emu: httpx.AsyncClient, domains: list[str], count: int) -> int:
    """`count` connections spread over `domains`, every token due now; written to PostgreSQL."""
    keyring = KeyRing(stack.env["DDBRIDGE_ENCRYPTION_KEYS"].split(","))
    due = datetime.now(UTC) + timedelta(seconds=30)
    rows = []
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
            for grant in answer.json()["grants"]:
                cid = uuid.uuid4()

                def seal(column: str, value: str, cid: uuid.UUID = cid) -> bytes:
                    return keyring.seal(value, context=f"connection:{cid}:{column}")

                rows.append(
                    (
                        cid,
                        f"bench-{cid.hex[:8]}",
                        domain,
                        grant["dd_oid"],
                        "Fleet org",
                        "active",
                        SCOPES,
                        seal("access_token", grant["access_token"]),
                        seal("refresh_token", grant["refresh_token"]),
                        due,
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
    return len(rows)


async def _refreshed(stack: Stack) -> int:
    db = await asyncpg.connect(asyncpg_dsn(stack.env["DDBRIDGE_DATABASE_URL"]))
    try:
        count: int = await db.fetchval(
            "SELECT count(*) FROM connections WHERE access_token_expires_at > now() + interval '30 minutes'"
        )
    finally:
        await db.close()
    return count


async def _run(
    stack: Stack, emu: httpx.AsyncClient, domains: list[str], count: int, rate: int, out: Printer
) -> None:
    """Fleet in, worker (re)started with `rate`, wait until all refreshed; print the figures."""
    stack.stop_worker()
    await emu.delete("/_emulator/requests")
    total = await _refreshed(stack) + await _fleet(stack, emu, domains, count)
    stack.env["DDBRIDGE_REFRESH_RATE_PER_SITE"] = str(rate)
    started = time.monotonic()
    worker = await asyncio.to_thread(stack.start_worker)
    cpu_before = cpu_seconds(worker.process.pid)
    deadline = started + 600
    while True:
        done = await _refreshed(stack)
        if done >= total or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(worker.process.pid) - cpu_before
    calls = (await emu.get("/_emulator/requests", params={"path": "/oauth2/v1/token"})).json()
    refreshes = calls["requests"]  # no onboarding here: every token call is a refresh
    per_second = Counter((c["host"], int(c["at"])) for c in refreshes)
    busiest = max(per_second.values(), default=0)
    first, last = min(c["at"] for c in refreshes), max(c["at"] for c in refreshes)
    out(
        f"  {count} connections over {len(domains)} site(s), cap {rate:g}/s per site: "
        f"{done - (total - count)} refreshed in {elapsed:.1f} s (worker start included); "
        f"{len(refreshes)} token calls, {len(refreshes) / max(last - first, 1e-9):.0f}/s between the "
        f"first and the last; most calls one site saw in one second: {busiest}; "
        f"worker CPU {cpu:.1f} s = {cpu / max(count, 1) * 1000:.2f} s per 1,000 refreshes"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--sites", type=int, default=2)
    parser.add_argument("--rate", type=int, default=20)
    args = parser.parse_args()
    domains = [site.domain for site in KNOWN_SITES[: args.sites]]
    out = Printer()

    async def body(stack: Stack) -> None:
        async with httpx.AsyncClient(base_url=stack.emulator_url, timeout=60) as emu:
            await _register(emu, stack, domains)
            out("capped:")
            await _run(stack, emu, domains, int(args.rate * 30) * len(domains), args.rate, out)
            out("full speed:")
            await _run(stack, emu, domains, args.connections, FULL_SPEED_RATE, out)

    run_on_stack("ddbridge-bench-refresh-", body, out)


if __name__ == "__main__":
    main()
