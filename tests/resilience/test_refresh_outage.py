"""Refresh retries in a Datadog outage, time compressed: each connection's attempts walk the
retry schedule, the fleet's token calls stay bounded, every connection recovers within one
step, and the schedule lives in PostgreSQL (a flushed Redis does not reset or lose it).

Time is compressed by scaling the production schedule (`DDBRIDGE_REFRESH_RETRY_DELAYS`,
5, 15, 60, 300, 900 s) and the outage (ten minutes) by the same factor.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from tests.support.isolated_stack import IsolatedStack, isolated_stack

PRODUCTION_DELAYS = [5, 15, 60, 300, 900]
PRODUCTION_OUTAGE_SECONDS = 600
SCALE = 1 / 30
DELAYS = [delay * SCALE for delay in PRODUCTION_DELAYS]
OUTAGE_SECONDS = PRODUCTION_OUTAGE_SECONDS * SCALE
JITTER = 0.2
LATE_SECONDS = 2.5
"""How late a retry may come beyond its jittered step: arq looks for due jobs every 0.5 s, each
refresh job takes 0.1-0.3 s on this shared 2-core machine, the 20 connections share the
worker's 4 token-call slots, and a job that waits 1 s for a slot rings itself 2 s later. This
swamps the first compressed steps (0.17, 0.5 and 2 s); the 10 s and 30 s steps' bands are clear
of each other and of the earlier ones, so the growth shows there."""
EARLY = 0.11
"""How early a retry may come: `credentials.CLOCK_SKEW`, and the logged arrival's rounding."""
CONNECTIONS = 20
RECONCILE_SECONDS = 5
"""The flush test's reconciler tick (`DDBRIDGE_REFRESH_RECONCILE_SECONDS`; production: 60)."""
REFRESHED = "access_token_expires_at > now() + interval '30 minutes'"


def _delays_setting(delays: list[float]) -> str:
    return ",".join(f"{delay:.3f}" for delay in delays)


def _step(delays: list[float], failures: int) -> float:
    """The schedule's delay after `failures` failed attempts (the last one repeats)."""
    return delays[min(failures, len(delays)) - 1]


def most_attempts(delays: list[float], seconds: float) -> int:
    """Most token calls one connection can make in `seconds` of outage: every retry at the
    earliest its jitter allows, the first at once."""
    attempts, at = 1, 0.0
    while True:
        at += _step(delays, attempts) * (1 - JITTER)
        if at > seconds:
            return attempts
        attempts += 1


async def _refresh_calls(isolated: IsolatedStack) -> dict[str, list[dict[str, Any]]]:
    """Refresh calls the emulator logged, per refresh token (one connection's attempts: the
    token only changes on success), in arrival order."""
    calls = await isolated.stack.datadog_requests(path="/oauth2/v1/token")
    per_token: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for call in calls:
        form = parse_qs(call["body"])
        if form.get("grant_type") == ["refresh_token"]:
            per_token[form["refresh_token"][0]].append(call)
    return per_token


async def _connect(isolated: IsolatedStack, count: int) -> list[str]:
    return [(await isolated.stack.connected(f"outage-{n}"))[0] for n in range(count)]


async def _poll(probe: Callable[[], Any], deadline_seconds: float, what: str) -> Any:
    deadline = time.monotonic() + deadline_seconds
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {deadline_seconds:.0f} s")
        await asyncio.sleep(0.1)


async def test_a_token_endpoint_outage_walks_the_schedule_and_recovers_within_one_step(
    admin_url: str,
    tmp_path: Path,
    resilience_logs: Path,
    record_property: Callable[[str, Any], None],
) -> None:
    settings = {"DDBRIDGE_REFRESH_RETRY_DELAYS": _delays_setting(DELAYS)}
    async with isolated_stack(admin_url, tmp_path, resilience_logs, settings=settings) as iso:
        ids = await _connect(iso, CONNECTIONS)
        await iso.fault(path="/oauth2/v1/token", status=503, count=1_000_000)
        outage_began = time.time()
        await iso.make_tokens_due(ids)
        await iso.ring_refreshes(ids)
        await asyncio.sleep(OUTAGE_SECONDS)  # the outage itself, not a wait for the stack
        await iso.clear_faults()
        recovered = time.time()
        longest_step = DELAYS[-1] * (1 + JITTER) + LATE_SECONDS

        async def all_refreshed() -> bool:
            [row] = await iso.fetch(f"SELECT count(*) AS n FROM connections WHERE {REFRESHED}")
            return bool(row["n"] == CONNECTIONS)

        await _poll(all_refreshed, longest_step + 5, "every connection refreshed after recovery")
        await iso.wait_requests_answered()
        per_connection = await _refresh_calls(iso)

    outage = recovered - outage_began
    bound = CONNECTIONS * (most_attempts(DELAYS, outage) + 1)
    total = sum(len(calls) for calls in per_connection.values())
    example = next(iter(per_connection.values()))
    example_gaps = [round(b["at"] - a["at"], 2) for a, b in itertools.pairwise(example)]
    tally = (
        f"{CONNECTIONS} connections, token endpoint down {outage:.1f} s "
        f"({PRODUCTION_OUTAGE_SECONDS} s at 1/{1 / SCALE:.0f} scale), schedule "
        f"{_delays_setting(DELAYS)} s: {total} token calls (bound {bound}); "
        f"one connection's gaps {example_gaps} s"
    )
    print(tally)
    record_property("resilience", tally)

    assert len(per_connection) == CONNECTIONS
    assert total <= bound
    for calls in per_connection.values():
        statuses = [call["status"] for call in calls]
        assert statuses == [503] * (len(calls) - 1) + [200], statuses
        assert calls[-2]["at"] < recovered <= calls[-1]["at"] + 0.5
        for failures, (before, after) in enumerate(itertools.pairwise(calls), 1):
            gap, step = after["at"] - before["at"], _step(DELAYS, failures)
            assert step * (1 - JITTER) - EARLY <= gap <= step * (1 + JITTER) + LATE_SECONDS, (
                f"attempt {failures + 1} came {gap:.2f} s after the one before; the schedule "
                f"says {step:.2f} s ±{JITTER:.0%}"
            )
        # Recovery is found by the next scheduled attempt: within one step of the last failure.
        assert calls[-1]["at"] - recovered <= longest_step


async def test_refresh_retries_survive_a_redis_flushall(
    admin_url: str,
    tmp_path: Path,
    resilience_logs: Path,
    record_property: Callable[[str, Any], None],
) -> None:
    """A refresh failed and its retry is queued in Redis; Redis is flushed. The retry still
    comes, not before the time PostgreSQL holds, rung by the reconciler (at its next tick);
    and the failure count survived: the retry after that waits the schedule's second step."""
    delays = [5.0, 10.0]
    settings = {
        "DDBRIDGE_REFRESH_RETRY_DELAYS": _delays_setting(delays),
        "DDBRIDGE_REFRESH_RECONCILE_SECONDS": str(RECONCILE_SECONDS),
    }
    async with isolated_stack(admin_url, tmp_path, resilience_logs, settings=settings) as iso:
        [connection_id] = await _connect(iso, 1)
        await iso.fault(path="/oauth2/v1/token", status=503, count=2)
        await iso.make_tokens_due([connection_id])
        await iso.ring_refreshes([connection_id])

        async def retry_stored() -> Any:
            [row] = await iso.fetch("SELECT refresh_retry_at, refresh_failures FROM connections")
            return row if row["refresh_retry_at"] is not None else None

        stored = await _poll(retry_stored, 20, "the first failure recorded")
        queued = await iso.redis_keys("arq:job:refresh_connection:*")
        await iso.flush_redis()
        flushed = datetime.now(UTC)
        left = await iso.redis_keys("arq:*")

        async def refreshed() -> Any:
            calls = await _refresh_calls(iso)
            [attempts] = calls.values()
            return attempts if attempts[-1]["status"] == 200 else None

        attempts = await _poll(refreshed, 90, "the retries after the flush")

    retry_at = stored["refresh_retry_at"].timestamp()
    reconciled = attempts[1]["at"]
    tally = (
        f"retry stored for {stored['refresh_retry_at']:%H:%M:%S.%f}, Redis flushed at "
        f"{flushed:%H:%M:%S.%f}; attempts at "
        f"{[datetime.fromtimestamp(a['at'], UTC).strftime('%H:%M:%S.%f') for a in attempts]}"
    )
    print(tally)
    record_property("resilience", tally)

    assert stored["refresh_failures"] == 1
    assert queued, "the retry's doorbell was queued in Redis"
    assert flushed.timestamp() < retry_at, "flushed before the retry was due"
    assert not [key for key in left if key.startswith("arq:job:refresh_connection")]
    assert [attempt["status"] for attempt in attempts] == [503, 503, 200]
    assert retry_at <= reconciled <= retry_at + RECONCILE_SECONDS + LATE_SECONDS + 2, (
        "the reconciler (at its next tick) rang the retry at or after its stored time"
    )
    second_gap = attempts[2]["at"] - reconciled
    assert delays[1] * (1 - JITTER) <= second_gap <= delays[1] * (1 + JITTER) + LATE_SECONDS
