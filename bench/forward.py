"""The delivery benchmark: `python -m bench.forward [--quick] [--record]` (also `make bench`).

It runs the whole pipeline on this machine as real processes (PostgreSQL, Redis, the emulator
in bench mode, the API and one worker), connects 50 orgs across the nine sites through the
real OAuth flow, sends `--items-per-post` items in each POST (default: 1,000 metric points in
100 series, 500 log lines), and prints:

- A, throughput: metric points and log lines accepted and delivered per second, sending as
  fast as ddbridge accepts, with CPU seconds per million items by process;
- B, latency: accept-to-deliver p50/p99 at half the measured maximum rate;
- C, a backlog: RSS while millions of points wait with the worker stopped and while one
  worker drains them, and the drain rate;
- baselines: the official `datadog-api-client` and a raw httpx floor sending the same
  payloads straight to the emulator, and ddbridge's ratios to both;
- the process layout, the machine, and the targets of issues 3 and 11, met or missed.

Figures, not assertions. Everything it starts is stopped and its database dropped at the end.
`--record` appends the printed report to `bench/RESULTS.md` as a dated section.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import measure, oauth, payloads, phases, procs, profile, report
from bench.runner import run_on_stack
from bench.stack import Stack

CONNECTIONS = 50
FULL_BACKLOG_POINTS = 10_000_000
BACKLOG_BUDGET_SECONDS = 180.0
BUILD_SECONDS = 140.0


@dataclass(frozen=True)
class Options:
    """Durations and sizes of one run."""

    quick: bool
    record: bool
    window: float
    latency_window: float
    baseline_window: float
    drain_timeout: float
    backlog_points: int
    load_processes: int
    concurrency: int
    profile: Path | None
    items_per_post: dict[str, int]
    api_workers: int
    backlog: bool

    @classmethod
    def parse(cls) -> Options:
        parser = argparse.ArgumentParser(prog="python -m bench.forward", description=__doc__)
        parser.add_argument("--quick", action="store_true", help="a ~1 minute smoke run")
        parser.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
        parser.add_argument("--load-processes", type=int, default=2)
        parser.add_argument("--concurrency", type=int, default=8, help="in flight per process")
        parser.add_argument(
            "--profile", type=Path, default=None, help="py-spy phase A into this directory"
        )
        parser.add_argument(
            "--items-per-post",
            type=int,
            default=None,
            help="items in each send, metric points or log lines "
            f"(default: {payloads.DEFAULT_ITEMS['metrics']:,} points, "
            f"{payloads.DEFAULT_ITEMS['logs']:,} lines)",
        )
        parser.add_argument(
            "--api-workers",
            type=int,
            default=os.cpu_count() or 1,
            help="`ddbridge api --workers N` (default: one per core)",
        )
        parser.add_argument(
            "--skip-backlog", action="store_true", help="leave phase C (the backlog) out"
        )
        args = parser.parse_args()
        if args.items_per_post is not None and args.items_per_post < 1:
            parser.error("--items-per-post must be at least 1")
        quick = bool(args.quick)
        return cls(
            quick=quick,
            record=bool(args.record),
            window=4.0 if quick else 20.0,
            latency_window=4.0 if quick else 15.0,
            baseline_window=3.0 if quick else 10.0,
            drain_timeout=20.0 if quick else 45.0,
            backlog_points=200_000 if quick else FULL_BACKLOG_POINTS,
            load_processes=args.load_processes,
            concurrency=args.concurrency,
            profile=args.profile,
            items_per_post={
                signal: args.items_per_post or default
                for signal, default in payloads.DEFAULT_ITEMS.items()
            },
            api_workers=args.api_workers,
            backlog=not args.skip_backlog,
        )


@contextlib.asynccontextmanager
async def background(*coroutines: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run polling tasks for the duration of the block."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def run_phases(bench: phases.Bench, options: Options, out: report.Printer) -> None:
    """Every phase in order, printing each as it completes."""
    ours = {}
    for signal in ("metrics", "logs"):
        await settle_before(bench, options, out, f"phase A, {signal}")
        out(f"... phase A, {signal}: {options.window:.0f} s as fast as accepted")
        ours[signal] = await phases.throughput(bench, signal, options.window, options.drain_timeout)
    report.throughput(out, list(ours.values()))

    lat = {}
    for signal, result in ours.items():
        await settle_before(bench, options, out, f"phase B, {signal}")
        half = result.delivered_per_second / 2
        out(f"... phase B, {signal}: {options.latency_window:.0f} s at {half:,.0f} items/s")
        lat[signal] = await phases.latency(
            bench, signal, half, options.latency_window, options.drain_timeout
        )
    report.latency(out, list(lat.values()))
    steady = {name: max(bench.sampler.of(name, ["start"]), default=0) for name in ("api", "worker")}

    flat = None
    if options.backlog:
        await settle_before(bench, options, out, "phase C")
        size = options.backlog_points
        build_timeout = BUILD_SECONDS * (0.2 if options.quick else 1.0)
        out(f"... phase C: backlog of up to {size:,} points (build at most {build_timeout:.0f} s)")
        held = await phases.backlog(bench, size, build_timeout, BACKLOG_BUDGET_SECONDS)
        report.backlog(out, held, options.backlog_points)
        flat = report.memory_flat(held, steady)

    base = await run_baselines(bench, options, out)
    report.baselines(out, list(base.values()), list(ours.values()))
    peaks = {c.name: procs.peak_rss_bytes(c.pid) for c in bench.stack.children() if c.alive()}
    balance = await phases.balance(bench, options.drain_timeout)
    report.targets(out, ours, lat, base, flat, peaks, balance)
    if options.profile is not None:
        summary = options.profile / "summary.txt"
        files = sorted(options.profile.glob("*-*.txt"))
        summary.write_text("\n".join(line for f in files for line in profile.summarize(f)))
        out(f"py-spy profiles of phase A: {options.profile} (summary in {summary})")


async def settle_before(
    bench: phases.Bench, options: Options, out: report.Printer, what: str
) -> None:
    """Let earlier phases' items drain first (bounded), and say if some could not."""
    pending = await phases.settle(bench, options.drain_timeout / 2)
    if pending:
        left = ", ".join(f"{n:,} {signal}" for signal, n in pending.items())
        out(f"... note: {left} items of earlier phases still undelivered when {what} starts")


async def run_baselines(
    bench: phases.Bench, options: Options, out: report.Printer
) -> dict[str, phases.Baseline]:
    """The official client, then the raw floor; returns the official client's results."""
    org = await oauth.direct_api_key(bench.emu)
    official = {}
    results = []
    for signal in ("metrics", "logs"):
        out(f"... baselines, {signal}: {options.baseline_window:.0f} s each")
        official[signal] = await phases.official(bench, org, signal, options.baseline_window, 4)
        results.append(official[signal])
        results.append(await phases.raw_floor(bench, org, signal, options.baseline_window, 8))
    return {b.signal + (":raw" if b.name == "raw floor" else ""): b for b in results}


async def bench_with(stack: Stack, options: Options, out: report.Printer) -> None:
    """Connect the orgs through the running stack, then run the phases."""
    async with oauth.clients(stack) as (emu, api):
        connected = await oauth.connect_orgs(emu, api, stack, CONNECTIONS)
        sites = len({c.domain for c in connected})
        out(f"connected {len(connected)} orgs across {sites} sites through the OAuth flow")
        poller = measure.DeliveryPoller(emu, {c.dd_oid for c in connected})
        sampler = measure.RssSampler(lambda: {})
        bench = phases.Bench(
            stack,
            emu,
            connected,
            poller,
            sampler,
            options.load_processes,
            options.concurrency,
            options.items_per_post,
        )
        report.layout(out, bench.layout())
        sampler.pids = bench.pids
        bench.profile_dir = options.profile
        async with background(poller.run(), sampler.run()):
            await run_phases(bench, options, out)


def main() -> None:
    options = Options.parse()
    out = report.Printer()
    run_on_stack(
        "ddbridge-bench-",
        lambda stack: bench_with(stack, options, out),
        out,
        api_workers=options.api_workers,
    )
    if options.record:
        mode = "quick" if options.quick else "full"
        sizes = ", ".join(f"{n:,} {s}" for s, n in options.items_per_post.items())
        report.record(out, f"({mode} run, {sizes} per post)")


if __name__ == "__main__":
    main()
