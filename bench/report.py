"""Printing the benchmark's figures: one section per phase, then the machine and the targets."""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil

from bench.phases import Backlog, Baseline, Latency, Throughput

MIB = 1024 * 1024
TARGET_POINTS_PER_SECOND = 100_000
TARGET_LINES_PER_SECOND = 100_000
TARGET_P99_SECONDS = 2.0
TARGET_FLOOR_FACTOR = 5.0
"""API+worker CPU per million items at most this many times the raw floor's (issue 11)."""
FLAT_FACTOR = 1.5
FLAT_SLACK_BYTES = 64 * MIB


@dataclass
class Printer:
    """Prints lines as they come and keeps them for the results file."""

    lines: list[str] = field(default_factory=list)
    echo: Callable[[str], None] = print

    def __call__(self, line: str = "") -> None:
        self.lines.append(line)
        self.echo(line)

    def table(self, header: list[str], rows: Iterable[list[str]]) -> None:
        rows = [header, *rows]
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        for n, row in enumerate(rows):
            self(
                "  ".join(
                    cell.ljust(w) if i == 0 else cell.rjust(w)
                    for i, (cell, w) in enumerate(zip(row, widths, strict=True))
                ).rstrip()
            )
            if n == 0:
                self("  ".join("-" * w for w in widths))


def rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f} s"


def cpu(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def mib(value: int) -> str:
    return f"{value / MIB:,.0f} MiB"


SPEED_LOOP = 10_000_000


def python_speed() -> float:
    """Seconds for `SPEED_LOOP` pure-Python additions, best of three: with
    `loopback_round_trip`, what tells machines (or one machine on different days) apart when
    their CPU seconds per item are compared."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(SPEED_LOOP):
            total += i
        best = min(best, time.perf_counter() - started)
    return best


LOOPBACK_ROUND_TRIPS = 20_000


def loopback_round_trip() -> float:
    """Microseconds for one byte there and back over TCP on 127.0.0.1 (both ends in this
    thread: four system calls and the kernel's loopback path, no scheduling), best of three.
    ddbridge's work is mostly such round trips (PostgreSQL, Redis, HTTP), and virtual machines
    differ more in them than in pure Python."""
    with (
        socket.create_server(("127.0.0.1", 0)) as server,
        socket.create_connection(server.getsockname()) as near,
    ):
        far, _ = server.accept()
        with far:
            best = float("inf")
            for _ in range(3):
                started = time.perf_counter()
                for _ in range(LOOPBACK_ROUND_TRIPS):
                    near.sendall(b"x")
                    far.recv(1)
                    far.sendall(b"x")
                    near.recv(1)
                best = min(best, time.perf_counter() - started)
    return best / LOOPBACK_ROUND_TRIPS * 1e6


def machine() -> list[tuple[str, str]]:
    """(what, value) of the machine the run used, its Python speed included."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    return [
        ("nproc", nproc or str(os.cpu_count())),
        ("CPU", model),
        ("RAM", f"{psutil.virtual_memory().total / 1024**3:.1f} GiB"),
        ("Python", platform.python_version()),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("speed", f"{SPEED_LOOP:,} Python additions in {python_speed():.2f} s (best of 3)"),
        ("loopback", f"{loopback_round_trip():.1f} µs per TCP round trip (best of 3)"),
    ]


def layout(out: Printer, rows: list[tuple[str, str]]) -> None:
    out("Process layout (each process's CPU counts its descendants)")
    out.table(["process", "what runs"], [[name, what] for name, what in rows])
    out()


def throughput(out: Printer, results: list[Throughput]) -> None:
    out("Phase A: throughput (sends as fast as accepted, then the drain tail)")
    out.table(
        [
            "signal",
            "accepted/s",
            "delivered/s",
            "delivered/s (window only)",
            "accepted",
            "delivered",
            "window",
            "202s",
            "other answers",
        ],
        [
            [
                r.signal,
                rate(r.accepted_per_second),
                rate(r.delivered_per_second),
                rate(r.delivered_per_second_in_window),
                f"{r.load.items:,}",
                f"{r.delivered:,}",
                f"{r.load.seconds:.1f} s",
                str(r.load.statuses.get("202", 0)),
                ", ".join(f"{k}x{v}" for k, v in r.load.statuses.items() if k != "202") or "-",
            ]
            for r in results
        ],
    )
    out("delivered/s = items the emulator counted / (first send -> last delivery).")
    for r in results:
        if not r.drained:
            out(
                f"  {r.signal}: NOT fully drained within the drain timeout ({r.load.items - r.delivered:,} items left)"
            )
    out()
    out(
        "CPU seconds per million items (psutil deltas over the window and drain; API per accepted, the rest per delivered item)"
    )
    names = ["api", "worker", "postgres", "redis", "emulator", "load generators", "machine"]
    out.table(
        ["signal", *names, "api+worker"],
        [
            [
                r.signal,
                *[cpu(r.cpu_per_million(n, r.load.items if n == "api" else None)) for n in names],
                cpu(_sum(r.cpu_per_million("api", r.load.items), r.cpu_per_million("worker"))),
            ]
            for r in results
        ],
    )
    out("postgres/redis: every process of that name on the box; 'machine': all CPU of the box.")
    for r in results:
        busy = r.cpu.get("machine", 0.0) / max(1e-9, r.cpu.get("wall", 0.0))
        out(f"  {r.signal}: the box was {busy:.2f} cores busy on average over window and drain")
    out(
        "worker-histogram latency at full load: "
        + "; ".join(
            f"{r.signal} p50 {seconds(r.latency_p50)} p99 {seconds(r.latency_p99)}" for r in results
        )
    )
    out()


def _sum(*values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) if len(present) == len(values) else None


def latency(out: Printer, results: list[Latency]) -> None:
    out("Phase B: accept-to-deliver latency at half the measured maximum rate (open-loop sends)")
    out.table(
        ["signal", "rate (items/s)", "delivered", "hist p50", "hist p99", "curve p50", "curve p99"],
        [
            [
                r.signal,
                rate(r.rate),
                f"{r.delivered:,} of {r.load.items:,}",
                seconds(r.histogram_p50),
                seconds(r.histogram_p99),
                seconds(r.curve_p50),
                seconds(r.curve_p99),
            ]
            for r in results
        ],
    )
    out(
        "hist: the worker's ddbridge_accept_to_deliver_seconds (commit in the outbox -> Datadog 2xx, one"
    )
    out(
        "  observation per outbox row), bucket deltas over the phase, interpolated inside the bucket."
    )
    out(
        "curve: the k-th item's first emulator count (polled every 50 ms) minus its 202 time at the"
    )
    out("  client, for 2000 evenly spaced k, assuming first in, first out across connections.")
    for r in results:
        cells = ", ".join(f"<= {b:g}: {int(c)}" for b, c in r.buckets if c)
        out(f"  {r.signal} buckets (rows, cumulative): {cells or 'none'}")
    out()


def backlog(out: Printer, result: Backlog, wanted: int) -> None:
    out("Phase C: a backlog builds with the worker stopped, then one worker drains it")
    if result.load.items < wanted:
        out(
            f"  size used: {result.load.items:,} points (not {wanted:,}: the build is capped in time so that"
            " build and drain fit in ~3 minutes on this machine)"
        )
    else:
        out(f"  size used: {result.load.items:,} points")
    out(
        f"  accepted {result.load.items:,} points in {result.load.seconds:.1f} s ({rate(result.load.items / result.load.seconds)}/s); statuses {result.load.statuses}"
    )
    drained = "yes" if result.drained else "NO (timed out; rate up to the last delivery seen)"
    out(
        f"  drained: {drained}; {result.delivered:,} points in {(result.drained_at or 0) - result.drain_started:.1f} s, {rate(result.drain_per_second)} points/s"
    )
    out.table(
        ["process during", "RSS min", "RSS max"],
        [[name, mib(low), mib(high)] for name, (low, high) in result.rss.items()],
    )
    for name, phase in (("api", "build"), ("worker", "drain")):
        cells = ", ".join(
            f"{at:.0f}s {mib(rss)}" for at, rss in result.timelines.get(f"{name} {phase}", [])
        )
        out(f"  {name} RSS through the {phase}: {cells or 'no samples'}")
    worker_cpu = result.cpu.get("worker", 0.0)
    if result.delivered:
        out(
            f"  worker CPU during drain: {worker_cpu:.1f} s ({worker_cpu / result.delivered * 1e6:.2f} s per million points)"
        )
    out()


def baselines(out: Printer, results: list[Baseline], ours: list[Throughput]) -> None:
    out("Baselines: the same payloads straight to the emulator (US1), one request per send")
    out.table(
        ["sender", "signal", "items/s", "CPU s/M items", "emulator CPU s/M", "failures"],
        [
            [
                b.name,
                b.signal,
                rate(b.per_second),
                cpu(b.cpu_per_million),
                cpu(b.emulator_cpu / b.items * 1e6 if b.items else None),
                str(b.failures),
            ]
            for b in results
        ],
    )
    out(
        "official client: datadog-api-client MetricsApi.submit_metrics / LogsApi.submit_log, 4 threads,"
    )
    out("  models built once (its cheapest use), default settings (no compression).")
    out("raw floor: httpx, the body pre-serialized and pre-compressed (zstd1 / gzip), 8 in flight.")
    out()
    out("Ratios (ddbridge / baseline)")
    rows = []
    for ours_result in ours:
        for b in results:
            if b.signal != ours_result.signal:
                continue
            worker = ours_result.cpu_per_million("worker")
            both = _sum(ours_result.cpu_per_million("api", ours_result.load.items), worker)
            rows.append(
                [
                    f"{ours_result.signal} vs {b.name}",
                    _ratio(ours_result.delivered_per_second, b.per_second),
                    _ratio(worker, b.cpu_per_million),
                    _ratio(both, b.cpu_per_million),
                ]
            )
    out.table(["", "throughput", "CPU/M (worker)", "CPU/M (api+worker)"], rows)
    out(
        "throughput: ddbridge delivered/s over the baseline's items/s; CPU/M: lower is cheaper for ddbridge."
    )
    out()


def _ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def memory_flat(result: Backlog, steady_peaks: dict[str, int]) -> bool:
    """Flat: during build and drain no process grows past FLAT_FACTOR x its steady-state peak
    (phases A and B) plus FLAT_SLACK_BYTES."""
    for name, (_, high) in result.rss.items():
        steady = steady_peaks.get(name.split()[0], 0)
        if steady and high > steady * FLAT_FACTOR + FLAT_SLACK_BYTES:
            return False
    return True


def targets(
    out: Printer,
    ours: dict[str, Throughput],
    lat: dict[str, Latency],
    base: dict[str, Baseline],
    flat: bool | None,
    peaks: dict[str, int],
    balance: dict[str, tuple[int, int]],
) -> None:
    out("Machine")
    out.table(["", ""], [[k, v] for k, v in machine()])
    out()
    out(
        "Peak RSS over the whole run (kernel VmHWM): "
        + ", ".join(f"{k} {mib(v)}" for k, v in peaks.items())
    )
    out()
    rows = []
    metrics, logs = ours.get("metrics"), ours.get("logs")
    rows.append(
        _target(
            "metric points/s delivered",
            f">= {TARGET_POINTS_PER_SECOND:,}",
            metrics.delivered_per_second if metrics else None,
            lambda v: v >= TARGET_POINTS_PER_SECOND,
            rate,
        )
    )
    rows.append(
        _target(
            "log lines/s delivered",
            f">= {TARGET_LINES_PER_SECOND:,}",
            logs.delivered_per_second if logs else None,
            lambda v: v >= TARGET_LINES_PER_SECOND,
            rate,
        )
    )
    for signal, result in lat.items():
        rows.append(
            _target(
                f"p99 accept-to-deliver, {signal} at half rate",
                f"< {TARGET_P99_SECONDS:g} s",
                result.p99,
                lambda v: v < TARGET_P99_SECONDS,
                seconds,
            )
        )
    official = base.get("metrics")
    worker = metrics.cpu_per_million("worker") if metrics else None
    limit = official.cpu_per_million if official else None
    rows.append(
        _target(
            "worker CPU per million points",
            f"<= official ({cpu(limit)})",
            worker,
            lambda v: limit is not None and v <= limit,
            cpu,
        )
    )
    for signal, sent in ours.items():
        floor = base.get(f"{signal}:raw")
        floor_cpu = floor.cpu_per_million if floor else None
        both = _sum(sent.cpu_per_million("api", sent.load.items), sent.cpu_per_million("worker"))
        limit_both = None if floor_cpu is None else floor_cpu * TARGET_FLOOR_FACTOR
        ratio = "" if both is None or not floor_cpu else f" ({both / floor_cpu:.1f}x)"
        rows.append(
            [
                f"api+worker CPU per million {signal} items",
                f"<= {TARGET_FLOOR_FACTOR:g}x raw floor ({cpu(limit_both)})",
                cpu(both) + ratio,
                "n/a"
                if both is None or limit_both is None
                else ("met" if both <= limit_both else "MISSED"),
            ]
        )
    for signal, (accepted, delivered) in balance.items():
        lost, extra = max(0, accepted - delivered), max(0, delivered - accepted)
        rows.append(
            [
                f"{signal} lost over the run",
                "0",
                f"{lost:,} (accepted {accepted:,}, delivered {delivered:,}, {extra:,} more)",
                "met" if lost == 0 else "MISSED",
            ]
        )
    rows.append(
        [
            "memory flat during backlog build and drain",
            f"< {FLAT_FACTOR}x steady peak + {mib(FLAT_SLACK_BYTES)}",
            {None: "not run", True: "yes", False: "no"}[flat],
            {None: "n/a", True: "met", False: "MISSED"}[flat],
        ]
    )
    out("Targets")
    out.table(["target", "wanted", "measured", "result"], rows)


def _target(
    name: str,
    wanted: str,
    value: float | None,
    ok: Callable[[float], bool],
    fmt: Callable[[float | None], str],
) -> list[str]:
    verdict = "n/a" if value is None else ("met" if ok(value) else "MISSED")
    return [name, wanted, fmt(value), verdict]


RESULTS = Path(__file__).with_name("RESULTS.md")


def record(out: Printer, heading: str) -> None:
    """Append the printed report to bench/RESULTS.md under a dated `heading`."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = [f"## {stamp} {heading}", "", "```", *out.lines, "```", ""]
    existing = RESULTS.read_text() if RESULTS.exists() else "# ddbridge benchmark results\n\n"
    RESULTS.write_text(existing + "\n".join(section) + "\n")
