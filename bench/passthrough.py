"""What the Datadog pass-through adds to a call: latency and API CPU per call.

    python -m bench.passthrough [--calls 1000] [--concurrency 16] [--seconds 10]

One org connected through ddbridge's onboarding, 20 monitors seeded. The same ListMonitors
(`GET /api/v1/monitor`) is made two ways against the same emulator, with the same org token:
directly (what a partner with its own client does) and through
`/internal/v1/connections/{id}/datadog/api/v1/monitor`. Printed: p50 and p99 of `--calls`
sequential calls each way, the difference (ddbridge's overhead per call), the API's CPU per
call, and calls per second with `--concurrency` callers for `--seconds`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import httpx

from bench.oauth import clients, connect_org, register_client
from bench.procs import cpu_seconds
from bench.report import Printer
from bench.runner import run_on_stack
from bench.stack import Stack

DOMAIN = "datadoghq.eu"
MONITORS = 20

Call = Callable[[], Awaitable[httpx.Response]]


async def _sequential(call: Call, count: int) -> list[float]:
    """Seconds each of `count` calls took, one after another; every answer must be 200."""
    took = []
    for _ in range(count):
        started = time.perf_counter()
        response = await call()
        took.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"answered {response.status_code}: {response.text}")
    return took


async def _throughput(call: Call, concurrency: int, seconds: float) -> float:
    """Calls per second `concurrency` callers complete in `seconds`."""
    deadline = time.monotonic() + seconds
    done = 0

    async def caller() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            (await call()).raise_for_status()
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return done / (time.monotonic() - started)


def _quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


async def _measure(stack: Stack, args: argparse.Namespace, out: Printer) -> None:
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    async with clients(stack, limits=limits) as (emu, api):
        await register_client(emu, stack, [DOMAIN])
        org = await connect_org(api, emu, "bench-passthrough", DOMAIN)
        for number in range(MONITORS):
            seeded = await emu.post(
                "/_emulator/monitors",
                json={
                    "dd_oid": org.dd_oid,
                    "name": f"m{number}",
                    "type": "metric alert",
                    "query": "q",
                },
            )
            seeded.raise_for_status()
        path = f"/internal/v1/connections/{org.connection_id}/datadog/api/v1/monitor"
        (await api.get(path)).raise_for_status()
        [forwarded] = (
            await emu.get("/_emulator/requests", params={"path": "/api/v1/monitor"})
        ).json()["requests"]
        token = forwarded["headers"]["authorization"]

        def direct() -> Awaitable[httpx.Response]:
            return emu.get(f"/api.{DOMAIN}/api/v1/monitor", headers={"Authorization": token})

        def through() -> Awaitable[httpx.Response]:
            return api.get(path)

        assert stack.api is not None
        await _sequential(direct, 50)  # warm both paths' connections
        await _sequential(through, 50)
        direct_took = await _sequential(direct, args.calls)
        cpu_before = cpu_seconds(stack.api.pid)
        through_took = await _sequential(through, args.calls)
        cpu_per_call = (cpu_seconds(stack.api.pid) - cpu_before) / args.calls
        direct_rate = await _throughput(direct, args.concurrency, args.seconds)
        through_rate = await _throughput(through, args.concurrency, args.seconds)

    ms = 1000
    out(f"ListMonitors ({MONITORS} monitors) on {DOMAIN}, {args.calls} sequential calls each way:")
    out.table(
        ["", "p50", "p99", f"calls/s, {args.concurrency} callers"],
        [
            ["direct to the emulator", f"{_quantile(direct_took, 0.5) * ms:.2f} ms", f"{_quantile(direct_took, 0.99) * ms:.2f} ms", f"{direct_rate:,.0f}"],
            ["through ddbridge", f"{_quantile(through_took, 0.5) * ms:.2f} ms", f"{_quantile(through_took, 0.99) * ms:.2f} ms", f"{through_rate:,.0f}"],
        ],
    )  # fmt: skip
    overhead = (_quantile(through_took, 0.5) - _quantile(direct_took, 0.5)) * ms
    out(f"pass-through overhead per call (p50 difference): {overhead:.2f} ms")
    out(f"API CPU per forwarded call: {cpu_per_call * ms:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    out = Printer()

    async def body(stack: Stack) -> None:
        await _measure(stack, args, out)

    run_on_stack("ddbridge-bench-passthrough-", body, out)


if __name__ == "__main__":
    main()
