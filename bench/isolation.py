"""The isolation benchmark: `python -m bench.isolation [--quick] [--record] [--signal S]`.

Issue 3, "What it must show", item 4: with one connection's key revoked (403) and another's
site rate-limited (429), a third, healthy connection keeps at least 90% of the throughput it
has alone. The behaviour (who waits, who is held) is tested in
`tests/service/test_isolation.py`; this measures the share, on the same real processes as
`bench.forward` (`bench.stack`): PostgreSQL, Redis, the emulator in bench mode, API, worker.

Three orgs are connected through the real OAuth flow: `healthy` and `revoked` on
datadoghq.com, `limited` on datadoghq.eu. Then:

1. alone: only the healthy connection sends, closed loop (`--concurrency` sends in flight,
   each repeated as soon as it is answered), `--window` seconds, `--repeats` times; then
   paced (open loop) at `--paced-fraction` of the closed-loop median, fewer times;
2. trouble: the emulator revokes the revoked org's API keys and answers every intake request
   of the limited org with 429 and `X-RateLimit-*` headers (`Reset` = `RESET_SECONDS`); all
   three connections send at the same offered load per connection (one load generator
   process each, same concurrency, or the same pace), and the healthy one is measured again.

Closed loop, the trouble connections' sends compete with the healthy one's for the same two
cores (the limited connection's sends are accepted and stored like the healthy one's; the
revoked one's get a quick 409 and are sent again at once), so its share measures fair sharing
of a saturated box as much as isolation. Paced at `--paced-fraction` (0.3: three connections
fit in the alone capacity), the box has room for all three, so a share under 1 there is
interference by the troubled connections.

Delivered items per second are the emulator's counts for the healthy org, over the time from
the first send to the last delivery (as `bench.forward` phase A), and over the send window
only. It prints each run, min and median, the ratio trouble / alone, the revoked connection's
status and held items, the gaps between the limited org's intake attempts (from the
emulator's request log, polled every `ATTEMPT_POLL_SECONDS`) against `X-RateLimit-Reset`,
and the machine. Figures, not assertions. Everything it starts is stopped and its database
dropped. `--record` appends the report to `bench/RESULTS.md` as a dated section.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import measure, oauth, payloads, phases, procs, profile, report
from bench.forward import background
from bench.oauth import Connected
from bench.runner import run_on_stack
from bench.stack import Stack
from service.sites import KNOWN_SITES

TARGET_SHARE = 0.90
RESET_SECONDS = 2
FAULT_COUNT = 10_000_000
"""Uses of the 429 fault: more than any run makes, so the rate limit never lifts."""
ATTEMPT_POLL_SECONDS = 0.1
ROLES = ("healthy", "revoked", "limited")
DOMAINS = {"healthy": "datadoghq.com", "revoked": "datadoghq.com", "limited": "datadoghq.eu"}
OURS = ("api", "worker", "emulator", "postgres", "redis")
INTAKE_PATHS = {"logs": "/api/v2/logs", "metrics": "/api/v2/series"}


@dataclass(frozen=True)
class Options:
    """Durations and sizes of one run."""

    quick: bool
    record: bool
    signal: str
    window: float
    repeats: int
    paced_repeats: int
    concurrency: int
    paced_fraction: float
    drain_timeout: float
    profile: Path | None

    @classmethod
    def parse(cls) -> Options:
        parser = argparse.ArgumentParser(prog="python -m bench.isolation", description=__doc__)
        parser.add_argument("--quick", action="store_true", help="a ~1 minute smoke run")
        parser.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
        parser.add_argument("--signal", choices=sorted(INTAKE_PATHS), default="logs")
        parser.add_argument("--window", type=float, default=None, help="seconds per run")
        parser.add_argument("--repeats", type=int, default=None, help="closed-loop runs each")
        parser.add_argument("--concurrency", type=int, default=4, help="in flight per connection")
        parser.add_argument(
            "--paced-fraction",
            type=float,
            default=0.3,
            help="paced rate per connection, as a share of the closed-loop alone median",
        )
        parser.add_argument(
            "--profile", type=Path, default=None, help="py-spy the first trouble run into DIR"
        )
        args = parser.parse_args()
        quick = bool(args.quick)
        return cls(
            quick=quick,
            record=bool(args.record),
            signal=args.signal,
            window=args.window or (4.0 if quick else 8.0),
            repeats=args.repeats or (1 if quick else 3),
            paced_repeats=1 if quick else 2,
            concurrency=args.concurrency,
            paced_fraction=args.paced_fraction,
            drain_timeout=20.0 if quick else 30.0,
            profile=args.profile,
        )


# One measurement.


@dataclass
class Run:
    """One window: what each connection's load generator saw, and the healthy org's deliveries."""

    mode: str
    """`closed` (as fast as answered) or `paced` (open loop at `rate` items/s per connection)."""
    trouble: bool
    rate: float | None
    loads: dict[str, phases.Load]
    delivered: int
    delivered_in_window: int
    last_delivery: float | None
    drained: bool
    cpu: dict[str, float]

    @property
    def healthy(self) -> phases.Load:
        return self.loads["healthy"]

    @property
    def per_second(self) -> float:
        """Healthy items delivered / (first send -> last delivery), as bench.forward phase A."""
        end = self.last_delivery or time.time()
        return self.delivered / max(1e-9, end - self.healthy.started)

    @property
    def per_second_in_window(self) -> float:
        return self.delivered_in_window / self.healthy.seconds

    @property
    def cores_busy(self) -> float:
        return self.cpu.get("machine", 0.0) / max(1e-9, self.cpu.get("wall", 0.0))

    @property
    def others_cores(self) -> float:
        """Cores busy with what this benchmark did not start (another job on the box), as the
        box's total minus ours; approximate (postgres and redis count every such process)."""
        ours = sum(self.cpu.get(name, 0.0) for name in OURS) + self.cpu.get("self", 0.0)
        ours += sum(load.cpu for load in self.loads.values())
        return max(0.0, self.cpu.get("machine", 0.0) - ours) / max(1e-9, self.cpu.get("wall", 0.0))


def load_config(
    stack: Stack, connection: Connected, signal: str, options: Options, rate: float | None
) -> dict[str, Any]:
    """One load generator's config: `signal` to one connection (bench.load's format)."""
    return {
        "base_url": stack.api_url,
        "paths": [f"/internal/v1/connections/{connection.connection_id}/{signal}"],
        "signal": signal,
        "items": payloads.DEFAULT_ITEMS[signal],
        "headers": {"Authorization": f"Bearer {stack.internal_token}"},
        "duration": options.window,
        "concurrency": options.concurrency,
        "rate": rate,
        "max_items": None,
    }


async def measure_run(
    bench: phases.Bench,
    senders: dict[str, Connected],
    options: Options,
    *,
    rate: float | None,
    trouble: bool,
    spy_dir: Path | None = None,
) -> Run:
    """Send to every connection in `senders` at once; the healthy org's deliveries."""
    signal = options.signal
    base = await phases.delivered_now(bench, signal)
    spies = profile.start(bench.pids(), options.window + 1, spy_dir, signal) if spy_dir else []
    cpu_before = bench.cpu()
    self_before = procs.cpu_seconds(os.getpid())
    configs = [load_config(bench.stack, c, signal, options, rate) for c in senders.values()]
    loads = dict(zip(senders, await phases.generate_each(configs), strict=True))
    healthy = loads["healthy"]
    last = await phases.wait_delivered(bench, signal, base + healthy.items, options.drain_timeout)
    cpu = cpu_before.until(bench.cpu())
    cpu["self"] = procs.cpu_seconds(os.getpid()) - self_before
    for spy in spies:
        await asyncio.to_thread(spy.wait)
    curve = bench.poller.curve.get(signal, [])
    in_window = measure.level_at(curve, healthy.ended, base) - base
    delivered = (await phases.delivered_now(bench, signal)) - base
    return Run(
        mode="closed" if rate is None else "paced",
        trouble=trouble,
        rate=rate,
        loads=loads,
        delivered=delivered,
        delivered_in_window=in_window,
        last_delivery=last or phases.last_delivery(bench, signal),
        drained=last is not None,
        cpu=cpu,
    )


# The trouble: a revoked key and a rate-limited site.


def intake_host(signal: str, domain: str) -> str:
    site = next(s for s in KNOWN_SITES if s.domain == domain)
    return site.logs_host if signal == "logs" else site.api_host


async def make_trouble(emu: httpx.AsyncClient, trio: dict[str, Connected], signal: str) -> None:
    """Revoke the revoked org's keys; 429 every intake request of the limited org."""
    revoked = await emu.post("/_emulator/api_keys/revoke", json={"dd_oid": trio["revoked"].dd_oid})
    revoked.raise_for_status()
    fault = await emu.post(
        "/_emulator/faults",
        json={
            "dd_oid": trio["limited"].dd_oid,
            "path": INTAKE_PATHS[signal],
            "status": 429,
            "count": FAULT_COUNT,
            "headers": {
                "X-RateLimit-Limit": "100",
                "X-RateLimit-Period": "10",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(RESET_SECONDS),
                "X-RateLimit-Name": signal,
            },
            "body": {"errors": ["Too many requests"]},
        },
    )
    fault.raise_for_status()


@dataclass
class AttemptWatcher:
    """Polls the emulator's request log for one host and path; when each request was first
    seen (within `interval`), and its answer status."""

    emu: httpx.AsyncClient
    host: str
    path: str
    interval: float = ATTEMPT_POLL_SECONDS
    seen: list[float] = field(default_factory=list)
    statuses: list[int | None] = field(default_factory=list)

    async def poll(self) -> None:
        params = {"host": self.host, "path": self.path}
        answer = await self.emu.get("/_emulator/requests", params=params)
        answer.raise_for_status()
        now = time.time()
        found = answer.json()["requests"]
        self.seen.extend(now for _ in range(len(found) - len(self.seen)))
        self.statuses = [r["status"] for r in found]

    async def run(self) -> None:
        while True:
            await self.poll()
            await asyncio.sleep(self.interval)

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.seen, self.seen[1:], strict=False)]


async def connection_view(api: httpx.AsyncClient, connection: Connected) -> dict[str, Any]:
    response = await api.get(f"/internal/v1/connections/{connection.connection_id}")
    response.raise_for_status()
    view: dict[str, Any] = response.json()
    return view


def partition(view: dict[str, Any], signal: str) -> dict[str, Any]:
    found = [p for p in view.get("delivery", []) if p["signal"] == signal]
    return found[0] if found else {}


# The whole sequence.


@dataclass
class Outcome:
    runs: list[Run]
    paced_rate: float
    views: dict[str, dict[str, Any]]
    intake: dict[str, dict[str, int]]
    watcher: AttemptWatcher
    trouble_started: float


async def connect_trio(
    stack: Stack, api: httpx.AsyncClient, emu: httpx.AsyncClient
) -> dict[str, Connected]:
    await oauth.register_client(emu, stack, sorted(set(DOMAINS.values())))
    run_id = secrets.token_hex(3)
    return {
        role: await oauth.connect_org(api, emu, f"isolation-{run_id}-{role}", DOMAINS[role])
        for role in ROLES
    }


async def run_sequence(
    bench: phases.Bench,
    api: httpx.AsyncClient,
    trio: dict[str, Connected],
    options: Options,
    out: report.Printer,
) -> Outcome:
    """Alone (closed, then paced), then trouble (closed, then paced)."""
    alone = {"healthy": trio["healthy"]}
    runs: list[Run] = []

    async def repeat(
        senders: dict[str, Connected], rate: float | None, trouble: bool, n: int
    ) -> None:
        for i in range(n):
            spy = options.profile if trouble and rate is None and i == 0 else None
            label = f"{'trouble' if trouble else 'alone'}, {'closed loop' if rate is None else f'paced at {rate:,.0f}/s'}"
            out(f"... {label}, run {i + 1} of {n}: {options.window:.0f} s")
            runs.append(
                await measure_run(bench, senders, options, rate=rate, trouble=trouble, spy_dir=spy)
            )
            await asyncio.sleep(0.5)

    await repeat(alone, None, False, options.repeats)
    closed_alone = statistics.median(r.per_second for r in runs)
    paced_rate = round(closed_alone * options.paced_fraction, -2)
    await repeat(alone, paced_rate, False, options.paced_repeats)

    host = intake_host(options.signal, DOMAINS["limited"])
    watcher = AttemptWatcher(bench.emu, host, INTAKE_PATHS[options.signal])
    await make_trouble(bench.emu, trio, options.signal)
    trouble_started = time.time()
    out(
        f"... trouble on: revoked {trio['revoked'].dd_oid}'s keys; 429 on {host} for {trio['limited'].dd_oid}"
    )
    async with background(watcher.run()):
        await repeat(trio, None, True, options.repeats)
        await repeat(trio, paced_rate, True, options.paced_repeats)
        await watcher.poll()
    views = {role: await connection_view(api, trio[role]) for role in ("revoked", "limited")}
    counts = (await bench.emu.get("/_emulator/intake/counts")).json()["counts"]
    intake = {role: counts.get(c.dd_oid, {}).get(options.signal, {}) for role, c in trio.items()}
    return Outcome(runs, paced_rate, views, intake, watcher, trouble_started)


# Printing.


def _statuses(load: phases.Load) -> str:
    return ", ".join(f"{k}x{v}" for k, v in sorted(load.statuses.items())) or "-"


def _accepted_rate(load: phases.Load | None) -> str:
    return "-" if load is None else report.rate(load.items / load.seconds)


def _spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (
        f"min {min(values):,.0f}, median {statistics.median(values):,.0f}, max {max(values):,.0f}"
    )


def print_runs(out: report.Printer, outcome: Outcome, options: Options) -> None:
    out(f"Runs ({options.signal}; healthy org's deliveries as the emulator counts them)")
    out.table(
        [
            "phase",
            "mode",
            "healthy accepted/s",
            "delivered/s",
            "delivered/s (window)",
            "drained",
            "cores busy",
            "other jobs",
            "api CPU",
            "worker CPU",
            "postgres CPU",
            "limited accepted/s",
            "healthy answers",
            "revoked answers",
            "limited answers",
        ],
        [
            [
                "trouble" if r.trouble else "alone",
                r.mode if r.rate is None else f"paced {r.rate:,.0f}/s",
                report.rate(r.healthy.items / r.healthy.seconds),
                report.rate(r.per_second),
                report.rate(r.per_second_in_window),
                "yes" if r.drained else "NO",
                f"{r.cores_busy:.2f}",
                f"{r.others_cores:.2f}",
                report.cpu(r.cpu.get("api")),
                report.cpu(r.cpu.get("worker")),
                report.cpu(r.cpu.get("postgres")),
                _accepted_rate(r.loads.get("limited")),
                _statuses(r.healthy),
                _statuses(r.loads["revoked"]) if "revoked" in r.loads else "-",
                _statuses(r.loads["limited"]) if "limited" in r.loads else "-",
            ]
            for r in outcome.runs
        ],
    )
    out("delivered/s = healthy items counted by the emulator / (first send -> last delivery);")
    out(
        "  (window) counts only deliveries up to the last send. CPU: seconds over window and drain."
    )
    out()


def shares(outcome: Outcome, mode: str) -> tuple[list[float], list[float], list[float]]:
    """(alone rates, trouble rates, per-trouble-run ratios to the alone median) of a mode."""
    alone = [r.per_second for r in outcome.runs if r.mode == mode and not r.trouble]
    trouble = [r.per_second for r in outcome.runs if r.mode == mode and r.trouble]
    reference = statistics.median(alone) if alone else 0.0
    ratios = [t / reference for t in trouble] if reference else []
    return alone, trouble, ratios


def print_shares(out: report.Printer, outcome: Outcome) -> list[list[str]]:
    out("Healthy throughput share (trouble / alone)")
    rows = []
    targets = []
    for mode in ("closed", "paced"):
        alone, trouble, ratios = shares(outcome, mode)
        label = "closed loop" if mode == "closed" else f"paced {outcome.paced_rate:,.0f}/s"
        rows.append([label, _spread(alone), _spread(trouble), _ratios(ratios)])
        if ratios:
            verdict = (
                "met"
                if min(ratios) >= TARGET_SHARE
                else ("met (median)" if statistics.median(ratios) >= TARGET_SHARE else "MISSED")
            )
            targets.append(
                [
                    f"healthy share, {label}",
                    f">= {TARGET_SHARE:.2f}",
                    f"min {min(ratios):.2f}, median {statistics.median(ratios):.2f}",
                    verdict,
                ]
            )
    out.table(["mode", "alone delivered/s", "trouble delivered/s", "ratio to alone median"], rows)
    out("ratio: each trouble run's delivered/s over the median of the alone runs (min, median).")
    out()
    return targets


def _ratios(values: list[float]) -> str:
    if not values:
        return "n/a"
    each = " ".join(f"{v:.2f}" for v in values)
    return f"min {min(values):.2f}, median {statistics.median(values):.2f} ({each})"


def print_troubled(
    out: report.Printer, outcome: Outcome, options: Options, trio: dict[str, Connected]
) -> list[list[str]]:
    signal = options.signal
    revoked = outcome.views["revoked"]
    held = partition(revoked, signal)
    accepted = sum(r.loads["revoked"].items for r in outcome.runs if "revoked" in r.loads)
    out("Revoked connection (API key revoked at the emulator when trouble starts)")
    out(f"  status {revoked['status']!r}: {revoked.get('status_reason')}")
    out(
        f"  {signal}: {accepted:,} items accepted (202) before sends were refused; pending (held) "
        f"{held.get('pending_items', 0):,}, delivered {held.get('delivered_items', 0):,}, "
        f"dropped {held.get('dropped_items', 0):,}, dead {held.get('dead_items', 0):,}; "
        f"emulator counted {outcome.intake['revoked'].get('items', 0):,}"
    )
    out()
    limited = outcome.views["limited"]
    waiting = partition(limited, signal)
    watcher = outcome.watcher
    gaps = watcher.gaps()
    statuses: dict[str, int] = {}
    for status in watcher.statuses:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    out(
        f"Rate-limited connection (every intake request answered 429, X-RateLimit-Reset {RESET_SECONDS})"
    )
    out(f"  status {limited['status']!r}; intake requests seen {len(watcher.seen)} ({statuses})")
    first = watcher.seen[0] - outcome.trouble_started if watcher.seen else None
    out(f"  first attempt {report.seconds(first)} after the fault was set")
    out(
        "  gaps between consecutive attempts (s): "
        + (" ".join(f"{g:.1f}" for g in gaps) or "none (fewer than two attempts)")
    )
    short = [g for g in gaps if g < RESET_SECONDS - ATTEMPT_POLL_SECONDS]
    out(
        f"  shortest gap {report.seconds(min(gaps) if gaps else None)}; {len(short)} gap(s) shorter than "
        f"Reset minus the {ATTEMPT_POLL_SECONDS:g} s poll interval"
    )
    out(
        f"  {signal}: pending (held) {waiting.get('pending_items', 0):,}, retried requests "
        f"{waiting.get('retried_requests', 0)}, paused until {waiting.get('paused_until')}, "
        f"last error {waiting.get('last_error')!r}; emulator counted "
        f"{outcome.intake['limited'].get('items', 0):,}"
    )
    out()
    return [
        [
            "revoked connection is key_invalid",
            "key_invalid",
            str(revoked["status"]),
            "met" if revoked["status"] == "key_invalid" else "MISSED",
        ],
        [
            "revoked connection's data held",
            "pending = accepted",
            f"{held.get('pending_items', 0):,} of {accepted:,}",
            "met" if held.get("pending_items", 0) == accepted and accepted else "MISSED",
        ],
        [
            "429 connection waits >= X-RateLimit-Reset",
            f">= {RESET_SECONDS} s between attempts",
            f"shortest {report.seconds(min(gaps) if gaps else None)}",
            "n/a" if not gaps else ("met" if not short else "MISSED"),
        ],
    ]


def print_machine(out: report.Printer, options: Options) -> None:
    out("Machine")
    out.table(["", ""], [[k, v] for k, v in report.machine()])
    out(
        f"Settings: {options.window:.0f} s windows, {options.concurrency} sends in flight per "
        f"connection, one load generator process per connection, {options.signal}"
        f" ({'500 log lines' if options.signal == 'logs' else '1,000 points'} per send)."
    )
    out()


async def bench_with(stack: Stack, options: Options, out: report.Printer) -> None:
    async with oauth.clients(stack) as (emu, api):
        trio = await connect_trio(stack, api, emu)
        out(
            "connected through the OAuth flow: "
            + ", ".join(f"{role} ({c.domain})" for role, c in trio.items())
        )
        poller = measure.DeliveryPoller(emu, {trio["healthy"].dd_oid})
        sampler = measure.RssSampler(lambda: {})
        bench = phases.Bench(
            stack,
            emu,
            [trio["healthy"]],
            poller,
            sampler,
            1,
            options.concurrency,
            payloads.DEFAULT_ITEMS,
        )
        async with background(poller.run()):
            outcome = await run_sequence(bench, api, trio, options, out)
        out()
        print_runs(out, outcome, options)
        targets = print_shares(out, outcome)
        targets += print_troubled(out, outcome, options, trio)
        print_machine(out, options)
        out("Targets")
        out.table(["target", "wanted", "measured", "result"], targets)
        if options.profile is not None:
            summary = options.profile / "summary.txt"
            files = sorted(options.profile.glob("*-*.txt"))
            summary.write_text("\n".join(line for f in files for line in profile.summarize(f)))
            out(f"py-spy profiles of the first closed-loop trouble run: {options.profile}")


def main() -> None:
    options = Options.parse()
    out = report.Printer()
    run_on_stack("ddbridge-isolation-", lambda stack: bench_with(stack, options, out), out)
    if options.record:
        mode = "quick" if options.quick else "full"
        report.record(out, f"isolation, `python -m bench.isolation` ({mode} run)")


if __name__ == "__main__":
    main()
