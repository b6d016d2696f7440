"""The benchmark's phases: throughput, latency at half rate, a backlog, and the baselines.

Each phase returns plain figures; `bench.report` prints them. Time is wall-clock
(`time.time()`), shared by this process, the load generators and the emulator's poller.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench import measure, procs, profile
from bench.oauth import Connected, DirectOrg
from bench.stack import Stack
from worker import main as worker

MILLION = 1_000_000
INTAKE_PATHS = {
    "metrics": "/api.datadoghq.com/api/v2/series",
    "logs": "/http-intake.logs.datadoghq.com/api/v2/logs",
}


@dataclass
class Bench:
    """Everything the phases share."""

    stack: Stack
    emu: httpx.AsyncClient
    connections: list[Connected]
    poller: measure.DeliveryPoller
    sampler: measure.RssSampler
    load_processes: int
    concurrency: int
    items_per_post: dict[str, int]
    """Items in each send, by signal (ddbridge's and the baselines' alike)."""
    accepted: dict[str, int] = field(default_factory=dict)
    """Items ddbridge accepted so far in the run, by signal."""
    profile_dir: Path | None = None
    """Where py-spy profiles of phase A go (None: no profiling)."""

    def pids(self) -> dict[str, int]:
        found = {child.name: child.pid for child in self.stack.children() if child.alive()}
        return {name: found[name] for name in ("api", "worker", "emulator") if name in found}

    def cpu(self) -> measure.CpuSnapshot:
        return measure.CpuSnapshot.take(self.pids())

    def layout(self) -> list[tuple[str, str]]:
        """(process, what runs there) for the report."""
        pids = self.pids()
        api = procs.processes(pids["api"]) if "api" in pids else 0
        workers = self.stack.api_workers
        return [
            (
                "api",
                f"`ddbridge api --workers {workers}`: {api} process(es)"
                + (" (the supervisor, its uvicorn processes and helpers)" if workers > 1 else ""),
            ),
            ("worker", f"one `ddbridge worker` (arq, {worker.JOBS} jobs at once)"),
            ("emulator", "one `fakedatadog --bench`"),
            (
                "load generators",
                f"{self.load_processes} processes x {self.concurrency} sends in flight, "
                + ", ".join(f"{n:,} {s}" for s, n in self.items_per_post.items())
                + " per send",
            ),
            ("postgres, redis", "the machine's or embedded (see the first line)"),
        ]


# Load generators.


@dataclass
class Load:
    """Merged results of the load generator processes of one run."""

    started: float
    ended: float
    statuses: dict[str, int]
    accepted: list[tuple[float, int]]
    cpu: float

    @property
    def items(self) -> int:
        return sum(items for _, items in self.accepted)

    @property
    def seconds(self) -> float:
        return max(1e-9, self.ended - self.started)


async def _generator(config: dict[str, Any]) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.load",
        orjson.dumps(config).decode(),
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"load generator failed ({process.returncode})")
    result: dict[str, Any] = orjson.loads(stdout)
    return result


async def generate(configs: list[dict[str, Any]]) -> Load:
    """Run one load generator process per config, all starting at the same instant."""
    return _merged(await _generators(configs))


async def generate_each(configs: list[dict[str, Any]]) -> list[Load]:
    """Like `generate`, but one `Load` per config (each generator's own tally), in order."""
    return [_merged([result]) for result in await _generators(configs)]


async def _generators(configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    start_at = time.time() + 1.0
    return list(await asyncio.gather(*(_generator({**c, "start_at": start_at}) for c in configs)))


def _merged(results: list[dict[str, Any]]) -> Load:
    statuses: dict[str, int] = {}
    for result in results:
        for status, count in result["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    return Load(
        started=min(r["started"] for r in results),
        ended=max(r["ended"] for r in results),
        statuses=statuses,
        accepted=[(at, items) for r in results for at, items in r["accepted"]],
        cpu=sum(r["cpu"] for r in results),
    )


def ddbridge_load(
    bench: Bench,
    signal: str,
    duration: float,
    *,
    rate: float | None = None,
    max_items: int | None = None,
) -> list[dict[str, Any]]:
    """Configs sending `signal` to ddbridge's internal API over every connection."""
    paths = [f"/internal/v1/connections/{c.connection_id}/{signal}" for c in bench.connections]
    count = bench.load_processes
    return [
        {
            "base_url": bench.stack.api_url,
            "paths": paths[i::count],
            "signal": signal,
            "items": bench.items_per_post[signal],
            "headers": {"Authorization": f"Bearer {bench.stack.internal_token}"},
            "duration": duration,
            "concurrency": bench.concurrency,
            "rate": None if rate is None else rate / count,
            "max_items": None if max_items is None else max_items // count,
        }
        for i in range(count)
    ]


# Waiting for deliveries.


async def wait_delivered(
    bench: Bench, signal: str, level: int, within: float, *, settle: float = 0.0
) -> float | None:
    """When the emulator's count of `signal` reached `level` (None: not `within` seconds)."""
    deadline = time.time() + within
    while time.time() < deadline:
        reached = measure.time_reaching(bench.poller.curve.get(signal, []), level)
        if reached is not None:
            await asyncio.sleep(settle)
            return reached
        await asyncio.sleep(0.1)
    return None


def last_delivery(bench: Bench, signal: str) -> float | None:
    """When the emulator's count of `signal` last moved (as polled)."""
    curve = bench.poller.curve.get(signal)
    return curve[-1][0] if curve else None


async def settle(bench: Bench, within: float) -> dict[str, int]:
    """Wait until everything accepted so far is delivered; what is still pending, by signal."""
    for signal, level in bench.accepted.items():
        await wait_delivered(bench, signal, level, within)
    counts = await measure.delivered(bench.emu, bench.poller.dd_oids)
    pending = {s: level - counts.get(s, 0) for s, level in bench.accepted.items()}
    return {s: n for s, n in pending.items() if n > 0}


async def balance(bench: Bench, within: float) -> dict[str, tuple[int, int]]:
    """(accepted, delivered) by signal over the whole run, once what is pending has had
    `within` seconds to arrive."""
    await settle(bench, within)
    counts = await measure.delivered(bench.emu, bench.poller.dd_oids)
    return {s: (level, counts.get(s, 0)) for s, level in bench.accepted.items()}


def count_accepted(bench: Bench, signal: str, load: Load) -> None:
    bench.accepted[signal] = bench.accepted.get(signal, 0) + load.items


async def delivered_now(bench: Bench, signal: str) -> int:
    """The emulator's count for our orgs, read directly (not from the poller)."""
    return (await measure.delivered(bench.emu, bench.poller.dd_oids)).get(signal, 0)


# Phase A: throughput.


@dataclass
class Throughput:
    signal: str
    load: Load
    delivered: int
    delivered_in_window: int
    last_delivery: float | None
    cpu: dict[str, float]
    drained: bool
    latency_p50: float | None = None
    latency_p99: float | None = None

    @property
    def accepted_per_second(self) -> float:
        return self.load.items / self.load.seconds

    @property
    def delivered_per_second(self) -> float:
        """Delivered items over the time from the first send to the last delivery."""
        end = self.last_delivery or time.time()
        return self.delivered / max(1e-9, end - self.load.started)

    @property
    def delivered_per_second_in_window(self) -> float:
        return self.delivered_in_window / self.load.seconds

    def cpu_per_million(self, name: str, items: int | None = None) -> float | None:
        count = self.delivered if items is None else items
        return self.cpu.get(name, 0.0) / count * MILLION if count else None


async def throughput(
    bench: Bench, signal: str, duration: float, drain_timeout: float
) -> Throughput:
    """Send `signal` as fast as ddbridge accepts for `duration` s; wait for the drain."""
    base = await delivered_now(bench, signal)
    histogram_before = await measure.scrape_histogram(bench.stack.worker_metrics_url)
    cpu_before = bench.cpu()
    spies = []
    if bench.profile_dir is not None:
        spies = profile.start(bench.pids(), duration + 1, bench.profile_dir, signal)
    load = await generate(ddbridge_load(bench, signal, duration))
    count_accepted(bench, signal, load)
    for spy in spies:
        await asyncio.to_thread(spy.wait)
    last = await wait_delivered(bench, signal, base + load.items, drain_timeout)
    drained = last is not None
    last = last or last_delivery(bench, signal)
    cpu = cpu_before.until(bench.cpu())
    cpu["load generators"] = load.cpu
    in_window = measure.level_at(bench.poller.curve.get(signal, []), load.ended, base) - base
    delivered = (await delivered_now(bench, signal)) - base
    result = Throughput(signal, load, delivered, in_window, last, cpu, drained)
    histogram_after = await measure.scrape_histogram(bench.stack.worker_metrics_url)
    buckets = measure.bucket_delta(
        histogram_before.get(signal, {}), histogram_after.get(signal, {})
    )
    result.latency_p50 = measure.bucket_quantile(buckets, 0.5)
    result.latency_p99 = measure.bucket_quantile(buckets, 0.99)
    return result


# Phase B: latency at half rate.


@dataclass
class Latency:
    signal: str
    rate: float
    load: Load
    delivered: int
    histogram_p50: float | None
    histogram_p99: float | None
    histogram_rows: float
    curve_p50: float | None
    curve_p99: float | None
    buckets: list[tuple[float, float]] = field(default_factory=list)

    @property
    def p99(self) -> float | None:
        """The larger of the two p99 estimates (the conservative one)."""
        values = [v for v in (self.histogram_p99, self.curve_p99) if v is not None]
        return max(values) if values else None


async def latency(
    bench: Bench, signal: str, rate: float, duration: float, drain_timeout: float
) -> Latency:
    """Send `signal` at `rate` items/s (open loop); latency from ddbridge's histogram and
    from the acceptance (202) and delivery (emulator count) curves."""
    base = await delivered_now(bench, signal)
    before = await measure.scrape_histogram(bench.stack.worker_metrics_url)
    load = await generate(ddbridge_load(bench, signal, duration, rate=rate))
    count_accepted(bench, signal, load)
    await wait_delivered(bench, signal, base + load.items, drain_timeout, settle=0.5)
    after = await measure.scrape_histogram(bench.stack.worker_metrics_url)
    buckets = measure.bucket_delta(before.get(signal, {}), after.get(signal, {}))
    latencies = measure.curve_latencies(
        measure.cumulative(load.accepted), bench.poller.curve.get(signal, []), base
    )
    return Latency(
        signal=signal,
        rate=rate,
        load=load,
        delivered=(await delivered_now(bench, signal)) - base,
        histogram_p50=measure.bucket_quantile(buckets, 0.5),
        histogram_p99=measure.bucket_quantile(buckets, 0.99),
        histogram_rows=buckets[-1][1] if buckets else 0.0,
        curve_p50=measure.quantile(latencies, 0.5),
        curve_p99=measure.quantile(latencies, 0.99),
        buckets=buckets,
    )


# Phase C: a backlog builds with delivery stopped, then drains.


@dataclass
class Backlog:
    target: int
    load: Load
    drain_started: float
    drained_at: float | None
    drained: bool
    delivered: int
    rss: dict[str, tuple[int, int]]
    """(min, max) RSS by "<process> <build|drain>"."""
    timelines: dict[str, list[tuple[float, int]]]
    cpu: dict[str, float]

    @property
    def drain_per_second(self) -> float:
        end = self.drained_at or time.time()
        return self.delivered / max(1e-9, end - self.drain_started)


async def backlog(bench: Bench, target: int, build_timeout: float, drain_timeout: float) -> Backlog:
    """Stop the worker, accept up to `target` points within `build_timeout` seconds, start a
    worker, and time the drain."""
    base = await delivered_now(bench, "metrics")
    await asyncio.to_thread(bench.stack.stop_worker)
    bench.sampler.phase = "build"
    load = await generate(ddbridge_load(bench, "metrics", build_timeout, max_items=target))
    count_accepted(bench, "metrics", load)
    bench.sampler.phase = "drain"
    drain_started = time.time()
    await asyncio.to_thread(bench.stack.start_worker)
    cpu_before = bench.cpu()
    drained_at = await wait_delivered(bench, "metrics", base + load.items, drain_timeout)
    drained = drained_at is not None
    drained_at = drained_at or last_delivery(bench, "metrics")
    cpu = cpu_before.until(bench.cpu())
    bench.sampler.phase = "after"
    rss, timelines = {}, {}
    for name in ("api", "worker"):
        for phase in ("build", "drain"):
            values = bench.sampler.of(name, [phase])
            if values:
                rss[f"{name} {phase}"] = (min(values), max(values))
                timelines[f"{name} {phase}"] = bench.sampler.timeline(name, phase)
    delivered = (await delivered_now(bench, "metrics")) - base
    return Backlog(target, load, drain_started, drained_at, drained, delivered, rss, timelines, cpu)


# Baselines: the official client, and a raw floor, straight to the emulator.


@dataclass
class Baseline:
    name: str
    signal: str
    items: int
    seconds: float
    cpu: float
    emulator_cpu: float
    failures: int

    @property
    def per_second(self) -> float:
        return self.items / max(1e-9, self.seconds)

    @property
    def cpu_per_million(self) -> float | None:
        return self.cpu / self.items * MILLION if self.items else None


async def _python_module(module: str, config: dict[str, Any]) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, orjson.dumps(config).decode(), stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{module} failed ({process.returncode})")
    result: dict[str, Any] = orjson.loads(stdout)
    return result


async def official(
    bench: Bench, org: DirectOrg, signal: str, duration: float, threads: int
) -> Baseline:
    """`datadog-api-client`, one call per request, `threads` threads in one process."""
    before = bench.cpu()
    result = await _python_module(
        "bench.official",
        {
            "emulator_url": bench.stack.emulator_url,
            "api_key": org.api_key,
            "signal": signal,
            "items": bench.items_per_post[signal],
            "duration": duration,
            "threads": threads,
        },
    )
    emulator = before.until(bench.cpu()).get("emulator", 0.0)
    return Baseline(
        "official client",
        signal,
        result["items"],
        result["elapsed"],
        result["cpu"],
        emulator,
        result["failures"],
    )


async def raw_floor(
    bench: Bench, org: DirectOrg, signal: str, duration: float, concurrency: int
) -> Baseline:
    """Pre-serialized, pre-compressed bodies POSTed with httpx, `concurrency` in flight."""
    before = bench.cpu()
    load = await generate(
        [
            {
                "base_url": bench.stack.emulator_url,
                "paths": [INTAKE_PATHS[signal]],
                "signal": signal,
                "items": bench.items_per_post[signal],
                "headers": {"DD-API-KEY": org.api_key},
                "raw": True,
                "duration": duration,
                "concurrency": concurrency,
            }
        ]
    )
    emulator = before.until(bench.cpu()).get("emulator", 0.0)
    failures = sum(n for status, n in load.statuses.items() if not status.startswith("2"))
    return Baseline("raw floor", signal, load.items, load.seconds, load.cpu, emulator, failures)
