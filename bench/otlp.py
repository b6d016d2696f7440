"""OTLP spans per second end to end: `python -m bench.otlp [--quick] [--record]`.

One stack on this machine (PostgreSQL, Redis, the emulator in bench mode, the API, one worker)
and two runs of the official OpenTelemetry SDK's OTLP/HTTP protobuf span exporter
(`opentelemetry-exporter-otlp-proto-http`), the same senders both times:

1. direct: each sender exports to its org's `trace.agent.<domain>/v1/traces` with the org's
   API key in `dd-api-key`, as a partner without ddbridge would;
2. through ddbridge: each sender exports to its connection's
   `/internal/v1/connections/{id}/otlp/v1/traces` with the internal token; the figure counts a
   span once the emulator has counted it (accepted, committed, drained, delivered).

Orgs are spread over the sites that have Datadog's OTLP intake. Each sender thread makes one
batch of spans with the SDK (a tracer, the batch processor's default 512 spans per export)
and exports it again and again until its share is sent; sender processes run beside the
stack. Printed: spans per second both ways and their ratio, how many requests Datadog received
for them (ddbridge coalesces exports up to 3.2 MB), and CPU seconds per million spans by
process. Figures, not assertions; the CPU is shared with whatever else runs on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import secrets
import threading
import time
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from typing import Any

import httpx

from bench import oauth, procs, report
from bench.runner import run_on_stack
from bench.stack import Stack
from service.sites import KNOWN_SITES

BATCH = 512
"""Spans per export: the SDK batch processor's default `max_export_batch_size`."""
POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Options:
    spans: int
    orgs: int
    processes: int
    threads: int
    timeout: float
    record: bool
    quick: bool

    @classmethod
    def parse(cls) -> Options:
        parser = argparse.ArgumentParser(prog="python -m bench.otlp", description=__doc__)
        parser.add_argument("--quick", action="store_true", help="a short smoke run")
        parser.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
        parser.add_argument("--spans", type=int, default=None, help="spans per run")
        parser.add_argument("--orgs", type=int, default=4)
        parser.add_argument("--processes", type=int, default=2, help="sender processes")
        parser.add_argument("--threads", type=int, default=2, help="sender threads per process")
        args = parser.parse_args()
        quick = bool(args.quick)
        spans = args.spans or (20 * 1024 if quick else 200 * 1024)
        return cls(spans, args.orgs, args.processes, args.threads, 120.0, bool(args.record), quick)


@dataclass(frozen=True, slots=True)
class Target:
    """Where one sender exports: the full traces URL, its headers, and the org it reaches."""

    url: str
    headers: dict[str, str]
    dd_oid: str


@dataclass(frozen=True, slots=True)
class Run:
    name: str
    spans: int
    sent_seconds: float
    delivered_seconds: float | None
    requests: int
    failures: int
    cpu: dict[str, float]

    @property
    def per_second(self) -> float | None:
        return None if self.delivered_seconds is None else self.spans / self.delivered_seconds


def _send(targets: list[Target], spans: int, threads: int, ready: Any, go: Event) -> None:
    """One sender process: `threads` stock exporters, each exporting its batch until it has
    sent its share of `spans`; reports (CPU seconds, failed exports) on `ready`."""
    # Imported here: the parent process never runs the SDK.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult  # noqa: PLC0415
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: PLC0415
        InMemorySpanExporter,
    )

    kept = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(kept))
    tracer = provider.get_tracer("bench.otlp", "1.0")
    for index in range(BATCH):
        with tracer.start_as_current_span("GET /checkout") as span:
            span.set_attribute("http.request.method", "GET")
            span.set_attribute("bench.index", index)
    batch = kept.get_finished_spans()
    failures = 0
    lock = threading.Lock()

    def export(target: Target, share: int) -> None:
        nonlocal failures
        exporter = OTLPSpanExporter(endpoint=target.url, headers=target.headers)
        for _ in range(share // BATCH):
            if exporter.export(batch) is not SpanExportResult.SUCCESS:
                with lock:
                    failures += 1
        exporter.shutdown()  # type: ignore[no-untyped-call]

    share = spans // threads
    workers = [
        threading.Thread(target=export, args=(targets[i % len(targets)], share))
        for i in range(threads)
    ]
    ready.put(("ready", 0.0, 0))
    go.wait()
    started = time.process_time()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    ready.put(("done", time.process_time() - started, failures))


async def _counted(emu: httpx.AsyncClient, dd_oids: set[str]) -> tuple[int, int]:
    """(spans, requests) the emulator counted on the trace intake for these orgs."""
    counts = (await emu.get("/_emulator/intake/counts")).json()["counts"]
    traces = [counts.get(dd_oid, {}).get("traces", {}) for dd_oid in dd_oids]
    return sum(t.get("items", 0) for t in traces), sum(t.get("requests", 0) for t in traces)


async def _run(
    name: str, stack: Stack, emu: httpx.AsyncClient, targets: list[Target], options: Options
) -> Run:
    """Start the senders, let them go at once, and time until the emulator counts it all."""
    context = multiprocessing.get_context("spawn")
    ready, go = context.Queue(), context.Event()
    per_process = options.spans // options.processes
    children = [
        context.Process(
            target=_send,
            args=(
                targets[i :: options.processes] or targets,
                per_process,
                options.threads,
                ready,
                go,
            ),
        )
        for i in range(options.processes)
    ]
    for child in children:
        child.start()
    for _ in children:
        await asyncio.to_thread(ready.get)
    dd_oids = {t.dd_oid for t in targets}
    spans_before, requests_before = await _counted(emu, dd_oids)
    expected = (
        (per_process // options.threads // BATCH) * BATCH * options.threads * options.processes
    )
    pids = {c.name: c.pid for c in stack.children() if c.alive()}
    cpu_before = {name: procs.cpu_seconds(pid) for name, pid in pids.items()}
    started = time.monotonic()
    go.set()
    done = [await asyncio.to_thread(ready.get) for _ in children]
    sent = time.monotonic() - started
    delivered: float | None = None
    deadline = started + options.timeout
    while time.monotonic() < deadline:
        spans, requests = await _counted(emu, dd_oids)
        if spans - spans_before >= expected:
            delivered = time.monotonic() - started
            break
        await asyncio.sleep(POLL_SECONDS)
    for child in children:
        child.join()
    spans, requests = await _counted(emu, dd_oids)
    millions = expected / 1e6
    cpu = {
        name: (procs.cpu_seconds(pid) - cpu_before[name]) / millions for name, pid in pids.items()
    }
    cpu["senders"] = sum(seconds for _, seconds, _ in done) / millions
    return Run(
        name,
        expected,
        sent,
        delivered,
        requests - requests_before,
        sum(failed for _, _, failed in done),
        cpu,
    )


async def _bench(stack: Stack, options: Options, out: report.Printer) -> None:
    sites = [site for site in KNOWN_SITES if site.has_otlp_intake][: options.orgs]
    async with oauth.clients(stack) as (emu, api):
        domains = [site.domain for site in sites]
        await oauth.register_client(emu, stack, domains)
        run_id = secrets.token_hex(3)
        connected = [
            await oauth.connect_org(api, emu, f"otlp-{run_id}-{i}", site.domain)
            for i, site in enumerate(sites)
        ]
        direct = [await oauth.direct_api_key(emu, site.domain) for site in sites]
        out(f"{len(sites)} orgs on {', '.join(s.name for s in sites)}, each reached both ways")
        emulated = f"{stack.emulator_url}/trace.agent"
        by_direct = [
            Target(f"{emulated}.{site.domain}/v1/traces", {"dd-api-key": org.api_key}, org.dd_oid)
            for site, org in zip(sites, direct, strict=True)
        ]
        token = {"Authorization": f"Bearer {stack.internal_token}"}
        by_ddbridge = [
            Target(
                f"{stack.api_url}/internal/v1/connections/{c.connection_id}/otlp/v1/traces",
                token,
                c.dd_oid,
            )
            for c in connected
        ]
        shape = f"{options.processes} processes x {options.threads} threads"
        out(f"... direct: {options.spans:,} spans from {shape}")
        load = [os.getloadavg()[0]]
        runs = [await _run("SDK -> Datadog (emulator)", stack, emu, by_direct, options)]
        out(f"... through ddbridge: {options.spans:,} spans from {shape}")
        runs.append(await _run("SDK -> ddbridge -> Datadog", stack, emu, by_ddbridge, options))
        load.append(os.getloadavg()[0])
    _print(out, runs, load)


def _print(out: report.Printer, runs: list[Run], load: list[float]) -> None:
    out()
    out("OTLP spans, official SDK exporter (protobuf), end to end")
    names = sorted({name for run in runs for name in run.cpu})
    out.table(
        ["path", "spans", "spans/s", "exports done", "requests at Datadog", "failed exports"],
        [
            [
                run.name,
                f"{run.spans:,}",
                report.rate(run.per_second),
                f"{run.sent_seconds:.1f} s",
                f"{run.requests:,}",
                str(run.failures),
            ]
            for run in runs
        ],
    )
    out("spans/s = spans the emulator counted / (senders released -> last span counted).")
    out()
    out("CPU seconds per million spans, by process (psutil deltas over the run)")
    out.table(
        ["path", *names],
        [[run.name, *(report.cpu(run.cpu.get(name)) for name in names)] for run in runs],
    )
    direct, ours = runs
    if direct.per_second and ours.per_second:
        out(f"through ddbridge / direct: {ours.per_second / direct.per_second:.2f}x spans/s")
    out()
    for what, value in report.machine():
        out(f"{what}: {value}")
    out(
        "The cores are shared with other work on this machine (1-minute load average "
        f"{load[0]:.1f} before the runs, {load[1]:.1f} after): figures move between runs."
    )


def main() -> None:
    options = Options.parse()
    out = report.Printer()
    run_on_stack("ddbridge-bench-otlp-", lambda stack: _bench(stack, options, out), out)
    if options.record:
        mode = "quick" if options.quick else "full"
        report.record(out, f"OTLP spans, `python -m bench.otlp` ({mode} run)")


if __name__ == "__main__":
    main()
