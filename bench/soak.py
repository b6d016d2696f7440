"""The soak: `python -m bench.soak --minutes N [--record]`: does anything grow when ddbridge
runs for a long time at a steady rate?

It starts the pipeline as `bench.forward` does (PostgreSQL, Redis, the emulator in bench mode,
the API and one worker; 50 orgs over the nine sites through the real OAuth flow), measures
the maximum delivered rate for 20 s, then sends at half of it for N minutes and samples,
every `--interval` seconds (60 by default):

- delivered items/s over the interval (the emulator's counts) and the backlog (accepted, not
  yet delivered);
- p99 accept-to-deliver over the interval (the worker's histogram, bucket deltas);
- API and worker RSS;
- the outbox's table and index size and its dead tuples, and its autovacuum count;
- Redis's used memory (the whole server's `INFO memory`).

It prints one row per sample, a first-to-last comparison, and plots every series against time
into a PNG (`--png`, `bench/soak.png` by default; matplotlib, from the `bench` extra).
Figures, not assertions. `--record` appends the report to `bench/RESULTS.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import redis.asyncio

from bench import measure, oauth, payloads, phases, procs, report
from bench.runner import run_on_stack
from bench.stack import Stack
from harness.databases import asyncpg_dsn

CONNECTIONS = 50
MAX_RATE_WINDOW_SECONDS = 20.0
DRAIN_TIMEOUT_SECONDS = 45.0
PNG = Path(__file__).with_name("soak.png")
OUTBOX_STATS = """
SELECT pg_relation_size('outbox') AS table_bytes,
       pg_indexes_size('outbox') AS index_bytes,
       n_dead_tup AS dead_tuples,
       n_live_tup AS live_tuples,
       autovacuum_count,
       (SELECT coalesce(sum(item_count), 0) FROM outbox) AS pending_items
FROM pg_stat_user_tables WHERE relname = 'outbox'
"""


@dataclass(frozen=True)
class Options:
    minutes: float
    interval: float
    signal: str
    record: bool
    png: Path

    @classmethod
    def parse(cls) -> Options:
        parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
        parser.add_argument("--minutes", type=float, default=60.0)
        parser.add_argument("--interval", type=float, default=60.0, help="seconds per sample")
        parser.add_argument("--signal", choices=["metrics", "logs"], default="metrics")
        parser.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
        parser.add_argument("--png", type=Path, default=PNG)
        args = parser.parse_args()
        return cls(args.minutes, args.interval, args.signal, args.record, args.png)


@dataclass(frozen=True, slots=True)
class Sample:
    minute: float
    delivered_per_second: float
    backlog_items: int
    p99_seconds: float | None
    api_rss: int
    worker_rss: int
    outbox_table_bytes: int
    outbox_index_bytes: int
    dead_tuples: int
    autovacuums: int
    redis_bytes: int


@dataclass
class Sampler:
    """Reads every figure of one `Sample` (see the module docstring)."""

    bench: phases.Bench
    database_url: str
    redis_url: str
    signal: str
    started: float = field(default_factory=time.time)
    _delivered: int = 0
    _at: float = field(default_factory=time.time)
    _histogram: dict[float, float] = field(default_factory=dict)

    async def begin(self) -> None:
        self.started = self._at = time.time()
        self._delivered = await phases.delivered_now(self.bench, self.signal)
        self._histogram = await self._scrape()

    async def take(self) -> Sample:
        now = time.time()
        delivered = await phases.delivered_now(self.bench, self.signal)
        histogram = await self._scrape()
        buckets = measure.bucket_delta(self._histogram, histogram)
        rate = (delivered - self._delivered) / max(1e-9, now - self._at)
        self._delivered, self._at, self._histogram = delivered, now, histogram
        pids = self.bench.pids()
        outbox = await self._outbox()
        return Sample(
            minute=(now - self.started) / 60,
            delivered_per_second=rate,
            backlog_items=int(outbox["pending_items"]),
            p99_seconds=measure.bucket_quantile(buckets, 0.99),
            api_rss=procs.rss_bytes(pids["api"]),
            worker_rss=procs.rss_bytes(pids["worker"]),
            outbox_table_bytes=outbox["table_bytes"],
            outbox_index_bytes=outbox["index_bytes"],
            dead_tuples=outbox["dead_tuples"],
            autovacuums=outbox["autovacuum_count"],
            redis_bytes=await self._redis_bytes(),
        )

    async def _scrape(self) -> dict[float, float]:
        found = await measure.scrape_histogram(self.bench.stack.worker_metrics_url)
        return found.get(self.signal, {})

    async def _outbox(self) -> asyncpg.Record:
        connection = await asyncpg.connect(asyncpg_dsn(self.database_url))
        try:
            row = await connection.fetchrow(OUTBOX_STATS)
        finally:
            await connection.close()
        assert row is not None
        return row

    async def _redis_bytes(self) -> int:
        client = redis.asyncio.Redis.from_url(self.redis_url)
        try:
            info = await client.info("memory")
        finally:
            await client.aclose()
        return int(info["used_memory"])


def print_samples(out: report.Printer, samples: list[Sample]) -> None:
    out.table(
        ["minute", "delivered/s", "backlog", "p99", "api RSS", "worker RSS", "outbox table",
         "outbox index", "dead tuples", "autovacuums", "Redis"],
        [
            [f"{s.minute:.1f}", f"{s.delivered_per_second:,.0f}", f"{s.backlog_items:,}",
             report.seconds(s.p99_seconds), report.mib(s.api_rss), report.mib(s.worker_rss),
             _mib(s.outbox_table_bytes), _mib(s.outbox_index_bytes),
             f"{s.dead_tuples:,}", str(s.autovacuums), _mib(s.redis_bytes)]
            for s in samples
        ],
    )  # fmt: skip


def _mib(value: int) -> str:
    return f"{value / report.MIB:,.1f} MiB"


def print_drift(out: report.Printer, samples: list[Sample]) -> None:
    """First sample against the last, per figure (the first minute warms up)."""
    if len(samples) < 2:
        return
    first, last = samples[0], samples[-1]
    out(f"first sample (minute {first.minute:.1f}) against the last (minute {last.minute:.1f}):")
    for name, unit in (
        ("api_rss", "MiB"), ("worker_rss", "MiB"), ("outbox_table_bytes", "MiB"),
        ("outbox_index_bytes", "MiB"), ("redis_bytes", "MiB"),
    ):  # fmt: skip
        a, b = getattr(first, name) / report.MIB, getattr(last, name) / report.MIB
        out(f"  {name}: {a:,.1f} -> {b:,.1f} {unit}")
    out(f"  dead_tuples: {first.dead_tuples:,} -> {last.dead_tuples:,}")
    rates = [s.delivered_per_second for s in samples]
    out(f"  delivered/s: min {min(rates):,.0f}, max {max(rates):,.0f}")
    p99s = [s.p99_seconds for s in samples if s.p99_seconds is not None]
    if p99s:
        out(f"  p99: min {min(p99s):.2f} s, max {max(p99s):.2f} s")


def plot(samples: list[Sample], rate: float, path: Path) -> None:
    import matplotlib  # noqa: PLC0415 - the bench extra, only for the picture

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    minutes = [s.minute for s in samples]
    panels = [
        ("delivered items/s", [s.delivered_per_second for s in samples]),
        ("p99 accept-to-deliver (s)", [s.p99_seconds or 0.0 for s in samples]),
        ("RSS (MiB): api, worker", None),
        ("outbox (MiB): table, index", None),
        ("outbox dead tuples", [float(s.dead_tuples) for s in samples]),
        ("Redis used memory (MiB)", [s.redis_bytes / report.MIB for s in samples]),
    ]
    figure, axes = plt.subplots(3, 2, figsize=(11, 9), sharex=True)
    for axis, (title, values) in zip(axes.flat, panels, strict=True):
        axis.set_title(title, fontsize=10)
        axis.grid(alpha=0.3)
        if title.startswith("RSS"):
            axis.plot(minutes, [s.api_rss / report.MIB for s in samples], marker="o", label="api")
            axis.plot(minutes, [s.worker_rss / report.MIB for s in samples], marker="o", label="worker")  # fmt: skip
            axis.legend(fontsize=8)
        elif title.startswith("outbox (MiB)"):
            axis.plot(minutes, [s.outbox_table_bytes / report.MIB for s in samples], marker="o", label="table")  # fmt: skip
            axis.plot(minutes, [s.outbox_index_bytes / report.MIB for s in samples], marker="o", label="indexes")  # fmt: skip
            axis.legend(fontsize=8)
        else:
            assert values is not None
            axis.plot(minutes, values, marker="o")
        axis.set_ylim(bottom=0)
    for axis in axes[-1]:
        axis.set_xlabel("minutes")
    figure.suptitle(f"ddbridge soak at {rate:,.0f} items/s (half the measured maximum)")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


async def soak(stack: Stack, options: Options, out: report.Printer) -> None:
    async with oauth.clients(stack) as (emu, api):
        connected = await oauth.connect_orgs(emu, api, stack, CONNECTIONS)
        sites = len({c.domain for c in connected})
        out(f"connected {len(connected)} orgs across {sites} sites through the OAuth flow")
        poller = measure.DeliveryPoller(emu, {c.dd_oid for c in connected}, interval=0.5)
        sampler_rss = measure.RssSampler(lambda: {})
        bench = phases.Bench(
            stack, emu, connected, poller, sampler_rss, 2, 8, dict(payloads.DEFAULT_ITEMS)
        )
        polling = asyncio.ensure_future(poller.run())
        try:
            await _soak(bench, stack, options, out)
        finally:
            polling.cancel()
            await asyncio.gather(polling, return_exceptions=True)


async def _soak(bench: phases.Bench, stack: Stack, options: Options, out: report.Printer) -> None:
    signal = options.signal
    out(f"... the maximum: {MAX_RATE_WINDOW_SECONDS:.0f} s of {signal} as fast as accepted")
    most = await phases.throughput(bench, signal, MAX_RATE_WINDOW_SECONDS, DRAIN_TIMEOUT_SECONDS)
    rate = most.delivered_per_second / 2
    out(f"maximum delivered {most.delivered_per_second:,.0f} {signal}/s; soaking at {rate:,.0f}/s")
    await phases.settle(bench, DRAIN_TIMEOUT_SECONDS)

    seconds = options.minutes * 60
    database_url, redis_url = stack.env["DDBRIDGE_DATABASE_URL"], stack.env["DDBRIDGE_REDIS_URL"]
    sampler = Sampler(bench, database_url, redis_url, signal)
    await sampler.begin()
    configs = phases.ddbridge_load(bench, signal, seconds, rate=rate)
    load = asyncio.ensure_future(phases.generate(configs))
    samples: list[Sample] = []
    out(f"... soaking for {options.minutes:g} min, a sample every {options.interval:g} s")
    for number in range(1, int(seconds // options.interval) + 1):
        await asyncio.sleep(max(0.0, sampler.started + number * options.interval - time.time()))
        samples.append(await sampler.take())
        latest = samples[-1]
        out(f"   minute {latest.minute:.1f}: {latest.delivered_per_second:,.0f}/s delivered")
    await load
    result = load.result()
    phases.count_accepted(bench, signal, result)
    out(f"load: {result.items:,} {signal} accepted in {result.seconds:.0f} s ({result.statuses})")
    pending = await phases.settle(bench, DRAIN_TIMEOUT_SECONDS)
    out(f"after the soak: {'everything delivered' if not pending else f'still pending {pending}'}")
    print_samples(out, samples)
    print_drift(out, samples)
    out("backlog: items in the outbox at the sample (accepted, not yet delivered).")
    out("p99: the worker's histogram deltas per interval (buckets 0.5, 1, 2, 5 s), interpolated.")
    out("Redis: the whole server's used_memory (other databases on it included).")
    peaks = {c.name: procs.peak_rss_bytes(c.pid) for c in stack.children() if c.alive()}
    out("peak RSS (VmHWM): " + ", ".join(f"{n} {report.mib(v)}" for n, v in peaks.items()))
    out("machine: " + ", ".join(f"{what} {value}" for what, value in report.machine()))
    plot(samples, rate, options.png)
    out(f"plot: {options.png}")


def main() -> None:
    options = Options.parse()
    out = report.Printer()
    run_on_stack("ddbridge-soak-", lambda stack: soak(stack, options, out), out)
    if options.record:
        report.record(out, f"soak, `python -m bench.soak --minutes {options.minutes:g}`")


if __name__ == "__main__":
    main()
