"""Bookkeeping for crash and outage tests: what ddbridge answered, and what reached Datadog.

Every item a test sends carries a unique key (a metric point's value, a log line's message),
so the items the emulator received can be matched one by one against the sends ddbridge
answered 202 for: a key missing is a loss, a key received twice is a duplicate (allowed by
at-least-once delivery, counted and reported, never hidden).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from tests.support.isolated_stack import POLL_SECONDS, IsolatedStack

SignalName = Literal["metrics", "logs"]


@dataclass(frozen=True, slots=True)
class Answer:
    """One send: its number, what ddbridge answered (None: no answer) and how long it took."""

    number: int
    status: int | None
    body: str
    seconds: float
    started: float


@dataclass
class Ledger:
    """Sends of one (connection, signal), each `items` items with unique keys."""

    connection_id: str
    dd_oid: str
    signal: SignalName
    tag: str
    items: int = 5
    answers: list[Answer] = field(default_factory=list)
    keys_of: dict[int, list[str]] = field(default_factory=dict)

    def body(self, number: int) -> tuple[Any, list[str]]:
        """Send `number`'s body and the keys of its items."""
        now = int(time.time())
        if self.signal == "metrics":
            values = [float(number * 1000 + i) for i in range(self.items)]
            body: Any = {
                "series": [
                    {
                        "metric": f"resilience.{self.tag}",
                        "type": 3,
                        "points": [
                            {"timestamp": now - i, "value": value} for i, value in enumerate(values)
                        ],
                        "tags": ["env:test", f"send:{number}"],
                    }
                ]
            }
            return body, [f"resilience.{self.tag}|{value}" for value in values]
        messages = [f"{self.tag} send {number} line {i}" for i in range(self.items)]
        body = [
            {"message": message, "ddsource": "resilience", "service": "jobs", "hostname": "w-1"}
            for message in messages
        ]
        return body, messages

    async def send(self, isolated: IsolatedStack, wait_seconds: float = 15) -> Answer:
        """Send the next body and record the answer (a transport error is recorded as None)."""
        number = len(self.keys_of)
        body, keys = self.body(number)
        self.keys_of[number] = keys
        started = time.monotonic()
        try:
            response = await isolated.stack.api.post(
                f"/internal/v1/connections/{self.connection_id}/{self.signal}",
                json=body,
                timeout=wait_seconds,
            )
            answer = Answer(
                number, response.status_code, response.text, time.monotonic() - started, started
            )
        except httpx.TransportError as exc:
            answer = Answer(number, None, repr(exc), time.monotonic() - started, started)
        self.answers.append(answer)
        return answer

    def keys_answered(self, status: int | None) -> set[str]:
        return {
            key
            for answer in self.answers
            if answer.status == status
            for key in self.keys_of[answer.number]
        }

    @property
    def accepted(self) -> set[str]:
        """Keys of every item ddbridge answered 202 for."""
        return self.keys_answered(202)

    def statuses(self) -> Counter[int | None]:
        return Counter(answer.status for answer in self.answers)

    async def received(self, isolated: IsolatedStack) -> Counter[str]:
        """How many times the emulator received each of this ledger's keys."""
        items = await isolated.stack.received(self.dd_oid, self.signal)
        keys: Counter[str] = Counter()
        for entry in items:
            item = entry["item"]
            if self.signal == "metrics":
                keys.update(f"{item['metric']}|{point['value']}" for point in item["points"])
            else:
                keys[item["message"]] += 1
        return keys

    async def wait_delivered(self, isolated: IsolatedStack, deadline_seconds: float) -> Tally:
        """Poll until every accepted key was received (or the deadline passes), and every
        request the emulator holds is answered (so late copies are counted); the tally."""
        deadline = time.monotonic() + deadline_seconds
        accepted = self.accepted
        started = time.monotonic()
        while True:
            counts = await isolated.counts(self.dd_oid, self.signal)
            if counts["items"] >= len(accepted) or time.monotonic() > deadline:
                received = await self.received(isolated)
                if accepted <= received.keys() or time.monotonic() > deadline:
                    waited = time.monotonic() - started
                    await isolated.wait_requests_answered()
                    return Tally(self, await self.received(isolated), waited)
            await asyncio.sleep(POLL_SECONDS)


async def send_until(isolated: IsolatedStack, ledgers: list[Ledger], stop: asyncio.Event) -> None:
    """Send continuously, one ledger after another, until `stop` is set (a load generator:
    each send waits for its answer, nothing else paces it)."""
    while not stop.is_set():
        for ledger in ledgers:
            await ledger.send(isolated)


async def wait_until(
    condition: Callable[[], bool], what: str, deadline_seconds: float = 20
) -> None:
    """Poll `condition` (set by another task) until it holds; fail after the deadline."""
    deadline = time.monotonic() + deadline_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(POLL_SECONDS)


@dataclass
class Tally:
    """The comparison of a ledger with what the emulator received."""

    ledger: Ledger
    received: Counter[str]
    waited: float

    @property
    def lost(self) -> set[str]:
        return self.ledger.accepted - self.received.keys()

    @property
    def duplicates(self) -> int:
        """Extra copies received of items sent once."""
        return sum(count - 1 for count in self.received.values() if count > 1)

    @property
    def duplicated_keys(self) -> list[str]:
        return sorted(key for key, count in self.received.items() if count > 1)

    @property
    def unexpected(self) -> set[str]:
        """Received keys of sends that did not get 202 (refused ones must not be stored)."""
        return self.received.keys() - self.ledger.accepted

    def summary(self) -> str:
        ledger = self.ledger
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(ledger.statuses().items(), key=str))
        return (
            f"{ledger.tag} {ledger.signal}: sends {len(ledger.answers)} ({statuses}); "
            f"accepted items {len(ledger.accepted)}; received {sum(self.received.values())} "
            f"({len(self.received)} distinct); lost {len(self.lost)}; "
            f"duplicates {self.duplicates} of {len(self.duplicated_keys)} item(s); "
            f"delivery wait {self.waited:.1f} s"
        )

    def report(self, record: Any) -> None:
        """Print the summary (captured output) and attach it to the test report, where
        `tests/resilience/conftest.py` prints it in the terminal summary even when passing."""
        line = self.summary()
        print(line)
        record("resilience", line)
