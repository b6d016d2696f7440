"""A load generator process: `python -m bench.load '<json config>'` prints a JSON result.

It POSTs one pre-serialized body over and over (round-robin over `paths`), either as fast as
answers come back (`concurrency` requests in flight) or paced at `rate` items per second
(open loop: a late answer does not delay the next send). Every 2xx answer is recorded with
its wall-clock time, so the caller can line acceptances up against deliveries. The body is
built once a minute (metric points carry the time they were built, and points over an hour
old are refused), so the generator spends its CPU on HTTP only.

Config keys: `base_url`, `paths`, `signal`, `items` (per send), `headers`, `raw` (send the
compressed intake body instead of the partner's JSON), `duration`, `concurrency`, `rate` (items/s or null),
`max_items` (stop after this many sent items, or null), `start_at` (wall time to begin).
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import psutil

from bench import payloads


@dataclass
class Tally:
    """What came back: counts by status, and (time, items) of each accepted send."""

    statuses: dict[str, int] = field(default_factory=dict)
    accepted: list[tuple[float, int]] = field(default_factory=list)
    sent_items: int = 0

    def record(self, status: str, items: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status.startswith("2"):
            self.accepted.append((time.time(), items))


RESTAMP_SECONDS = 60.0
"""How long one built body is sent before it is built again at the current time."""


@dataclass
class Body:
    """The body sent (with its own headers), rebuilt every `RESTAMP_SECONDS`."""

    signal: str
    items: int
    raw: bool
    content: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    built_at: float = float("-inf")

    def current(self) -> bytes:
        """The body to send now, built again once it is `RESTAMP_SECONDS` old."""
        if time.time() - self.built_at >= RESTAMP_SECONDS:
            if self.raw:
                self.content, self.headers = payloads.wire_body(self.signal, self.items)
            else:
                self.content = payloads.body(self.signal, self.items)
            self.built_at = time.time()
        return self.content


@dataclass(frozen=True)
class Plan:
    """A parsed config."""

    base_url: str
    paths: list[str]
    headers: dict[str, str]
    body: Body
    items: int
    duration: float
    concurrency: int
    rate: float | None
    max_items: int | None
    start_at: float

    @classmethod
    def of(cls, config: dict[str, Any]) -> Plan:
        signal, items = config["signal"], int(config["items"])
        headers = {"Content-Type": "application/json", **config.get("headers", {})}
        body = Body(signal, items, raw=bool(config.get("raw")))
        body.current()
        return cls(
            base_url=config["base_url"],
            paths=config["paths"],
            headers={**headers, **body.headers},
            body=body,
            items=items,
            duration=float(config["duration"]),
            concurrency=int(config.get("concurrency", 8)),
            rate=config.get("rate"),
            max_items=config.get("max_items"),
            start_at=float(config.get("start_at", time.time())),
        )


async def _send(http: httpx.AsyncClient, plan: Plan, path: str, tally: Tally) -> None:
    try:
        answer = await http.post(path, content=plan.body.current(), headers=plan.headers)
        tally.record(str(answer.status_code), plan.items)
    except httpx.HTTPError as exc:
        tally.record(type(exc).__name__, plan.items)


def _budget_left(plan: Plan, tally: Tally, deadline: float) -> bool:
    if time.time() >= deadline:
        return False
    return plan.max_items is None or tally.sent_items < plan.max_items


async def _closed_loop(http: httpx.AsyncClient, plan: Plan, tally: Tally, end: float) -> None:
    """`concurrency` senders, each sending again as soon as its answer arrives."""
    paths = itertools.cycle(plan.paths)

    async def sender() -> None:
        while _budget_left(plan, tally, end):
            tally.sent_items += plan.items
            await _send(http, plan, next(paths), tally)

    await asyncio.gather(*(sender() for _ in range(plan.concurrency)))


async def _open_loop(http: httpx.AsyncClient, plan: Plan, tally: Tally, end: float) -> None:
    """One send every `items / rate` seconds, whatever the answers do."""
    assert plan.rate is not None
    interval = plan.items / plan.rate
    paths = itertools.cycle(plan.paths)
    tasks: set[asyncio.Task[None]] = set()
    due = time.time()
    while _budget_left(plan, tally, end):
        tally.sent_items += plan.items
        task = asyncio.create_task(_send(http, plan, next(paths), tally))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        due += interval
        await asyncio.sleep(max(0.0, due - time.time()))
    if tasks:
        await asyncio.gather(*tasks)


async def run(plan: Plan) -> dict[str, Any]:
    """Send per the plan; the result the caller reads."""
    limits = httpx.Limits(max_connections=max(plan.concurrency, 64), max_keepalive_connections=64)
    tally = Tally()
    await asyncio.sleep(max(0.0, plan.start_at - time.time()))
    cpu_before = psutil.Process().cpu_times()
    started = time.time()
    async with httpx.AsyncClient(base_url=plan.base_url, limits=limits, timeout=60) as http:
        end = started + plan.duration
        if plan.rate:
            await _open_loop(http, plan, tally, end)
        else:
            await _closed_loop(http, plan, tally, end)
    cpu_after = psutil.Process().cpu_times()
    return {
        "started": started,
        "ended": time.time(),
        "statuses": tally.statuses,
        "accepted": tally.accepted,
        "cpu": (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system),
    }


def main() -> None:
    plan = Plan.of(orjson.loads(sys.argv[1]))
    sys.stdout.buffer.write(orjson.dumps(asyncio.run(run(plan))))


if __name__ == "__main__":
    main()
