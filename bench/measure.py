"""Measuring while the pipeline runs: CPU and memory of processes, deliveries counted by the
emulator, and latency from ddbridge's own histogram or from acceptance and delivery curves."""

from __future__ import annotations

import asyncio
import bisect
import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import httpx
import psutil

from bench import procs

# CPU.


SHARED_SERVERS = {"postgres": ("postgres",), "redis": ("redis-server",)}
"""Process-name groups measured as a whole: the database and Redis serve every phase."""


def group_cpu_seconds() -> dict[str, float]:
    """CPU seconds of every live process in each `SHARED_SERVERS` group (read-only); exited
    PostgreSQL backends count through the postmaster's children times."""
    totals = dict.fromkeys(SHARED_SERVERS, 0.0)
    for process in psutil.process_iter(["name", "cpu_times"]):
        name, times = process.info["name"] or "", process.info["cpu_times"]
        for group, prefixes in SHARED_SERVERS.items():
            if times is not None and name.startswith(prefixes):
                totals[group] += (
                    times.user + times.system + times.children_user + times.children_system
                )
    return totals


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    """CPU seconds of named processes and of the whole machine, at one instant."""

    at: float
    processes: dict[str, float]
    machine_busy: float

    @classmethod
    def take(cls, pids: dict[str, int]) -> CpuSnapshot:
        times = psutil.cpu_times()
        busy = times.user + times.nice + times.system + times.irq + times.softirq
        spent = {name: procs.cpu_seconds(pid) for name, pid in pids.items()}
        return cls(time.time(), {**spent, **group_cpu_seconds()}, busy)

    def until(self, later: CpuSnapshot) -> dict[str, float]:
        """CPU seconds spent between the two snapshots, by process, plus `machine` (all)."""
        spent = {
            name: later.processes.get(name, 0.0) - seconds
            for name, seconds in self.processes.items()
        }
        spent["machine"] = later.machine_busy - self.machine_busy
        spent["wall"] = later.at - self.at
        return spent


# Memory.


@dataclass
class RssSampler:
    """Samples the RSS of processes every `interval` seconds, labelled with the current phase."""

    pids: Callable[[], dict[str, int]]
    interval: float = 0.25
    phase: str = "start"
    samples: list[tuple[float, str, str, int]] = field(default_factory=list)

    async def run(self) -> None:
        while True:
            now = time.time()
            for name, pid in self.pids().items():
                rss = procs.rss_bytes(pid)
                if rss:
                    self.samples.append((now, self.phase, name, rss))
            await asyncio.sleep(self.interval)

    def timeline(self, name: str, phase: str, points: int = 10) -> list[tuple[float, int]]:
        """(seconds into the phase, RSS) at about `points` evenly spaced samples."""
        found = [(at, rss) for at, p, who, rss in self.samples if who == name and p == phase]
        if not found:
            return []
        step = max(1, len(found) // points)
        start = found[0][0]
        picked = [*found[::step], found[-1]] if (len(found) - 1) % step else found[::step]
        return [(at - start, rss) for at, rss in picked]

    def of(self, name: str, phases: Iterable[str]) -> list[int]:
        wanted = set(phases)
        return [rss for _, phase, who, rss in self.samples if who == name and phase in wanted]


# Deliveries, as the emulator counts them.


async def delivered(emu: httpx.AsyncClient, dd_oids: set[str]) -> dict[str, int]:
    """Items the emulator accepted for these orgs, by signal (points, log lines, ...)."""
    response = await emu.get("/_emulator/intake/counts")
    response.raise_for_status()
    totals: dict[str, int] = {}
    for dd_oid, signals in response.json()["counts"].items():
        if dd_oid in dd_oids:
            for signal, counts in signals.items():
                totals[signal] = totals.get(signal, 0) + counts["items"]
    return totals


@dataclass
class DeliveryPoller:
    """Polls the emulator's counts; `curve[signal]` is (time, cumulative items delivered)."""

    emu: httpx.AsyncClient
    dd_oids: set[str]
    interval: float = 0.05
    curve: dict[str, list[tuple[float, int]]] = field(default_factory=dict)

    async def run(self) -> None:
        while True:
            now = time.time()
            for signal, items in (await delivered(self.emu, self.dd_oids)).items():
                points = self.curve.setdefault(signal, [])
                if not points or points[-1][1] != items:
                    points.append((now, items))
            await asyncio.sleep(self.interval)

    def last(self, signal: str) -> int:
        points = self.curve.get(signal)
        return points[-1][1] if points else 0


# Latency from the worker's Prometheus histogram.

_BUCKET = re.compile(r"^ddbridge_accept_to_deliver_seconds_bucket\{(?P<labels>[^}]*)\}\s+(\S+)$")


def histogram(text: str) -> dict[str, dict[float, float]]:
    """`ddbridge_accept_to_deliver_seconds` cumulative buckets by signal, summed over sites."""
    found: dict[str, dict[float, float]] = {}
    for line in text.splitlines():
        match = _BUCKET.match(line)
        if match is None:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group("labels")))
        bound = math.inf if labels["le"] == "+Inf" else float(labels["le"])
        buckets = found.setdefault(labels["signal"], {})
        buckets[bound] = buckets.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    return found


async def scrape_histogram(url: str) -> dict[str, dict[float, float]]:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(url)
        response.raise_for_status()
        return histogram(response.text)


def bucket_delta(
    before: dict[float, float], after: dict[float, float]
) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) observed between two scrapes, in bound order."""
    return [(bound, after[bound] - before.get(bound, 0.0)) for bound in sorted(after)]


def bucket_quantile(buckets: Sequence[tuple[float, float]], q: float) -> float | None:
    """The q-quantile, interpolated linearly inside its bucket (as Prometheus does)."""
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound


# Latency from curves: the k-th item accepted versus the k-th item delivered.


def cumulative(events: Iterable[tuple[float, int]]) -> list[tuple[float, int]]:
    """(time, items) events in time order as a running total."""
    total = 0
    curve = []
    for at, items in sorted(events):
        total += items
        curve.append((at, total))
    return curve


def time_reaching(curve: Sequence[tuple[float, int]], level: int) -> float | None:
    """The first time the cumulative curve reaches `level` (None if it never does)."""
    index = bisect.bisect_left([total for _, total in curve], level)
    return curve[index][0] if index < len(curve) else None


def level_at(curve: Sequence[tuple[float, int]], at: float, base: int = 0) -> int:
    """The cumulative curve's value at time `at` (`base` before its first point)."""
    index = bisect.bisect_right([when for when, _ in curve], at)
    return curve[index - 1][1] if index else base


def curve_latencies(
    accepted: Sequence[tuple[float, int]],
    delivered: Sequence[tuple[float, int]],
    base: int,
    samples: int = 2000,
) -> list[float]:
    """Latencies of evenly spaced items: delivery time of the k-th item minus its 202 time.

    `accepted` is cumulative from 0; `delivered` is cumulative emulator counts, `base` the
    count before the phase. Items are assumed to leave in the order they came (FIFO).
    """
    total = accepted[-1][1] if accepted else 0
    latencies = []
    for i in range(1, samples + 1):
        level = max(1, total * i // samples)
        accepted_at = time_reaching(accepted, level)
        delivered_at = time_reaching(delivered, base + level)
        if accepted_at is not None and delivered_at is not None:
            latencies.append(max(0.0, delivered_at - accepted_at))
    return latencies


def quantile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]
