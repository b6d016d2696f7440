"""Draining one partition (connection, signal) into the org's Datadog intake.

Datadog's answers (datadog.md section 5) become actions here:

| answer | action |
|---|---|
| 2xx | rows deleted and counted (what an OTLP intake's `partial_success` refused is counted as dropped and logged) |
| 413 | split the batch (rows, then a row's items) and resend; a single item is dead-lettered |
| 400 | split the same way to isolate what Datadog refuses; that item is dead-lettered with its `errors` |
| 401/403 | judged by the credential door (`service.credentials`): an invalid key holds the data (`key_invalid`); a Bearer call is retried once after a refresh, and a refusal after a successful refresh dead-letters that item without touching the connection |
| 404, 408, 429, 5xx, timeouts | the partition pauses (429: at least `X-RateLimit-Reset`), rows stay |

Items older than their intake window when their turn comes are dropped on purpose and kept
as `expired` dead letters. Only this partition pauses; every other one keeps going. A drain
cancelled mid-way (its worker stopping) gives the partition back at once; what it had not
seen acknowledged is sent again by the next drainer (at least once).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

import httpx
import orjson

from service import credentials, otlp
from service.credentials import GrantGone, MissingScope, OperationRefused, OrgCredentials
from service.datadog.errors import (
    DatadogError,
    DatadogRejected,
    DatadogTooLarge,
    DatadogUnauthorized,
    DatadogUnavailable,
)
from service.delivery.batches import encode, split_items, split_stale, take
from service.delivery.store import PartitionStore, Row
from service.errors import ServiceError
from service.metrics import DELIVERED, DELIVERY_LATENCY, DROPPED, RETRIED
from service.models import utcnow
from service.resources import Resources
from service.signals import SPECS, Credential, Signal, SignalSpec

log = logging.getLogger(__name__)

RETRY_DELAYS = [1, 2, 5, 15, 60, 300]
"""Seconds to wait after the 1st, 2nd, ... consecutive transient failure (then the last)."""
MAX_PAUSE_SECONDS = 3600.0
"""No pause is longer: a partition is tried again within the hour whatever Datadog said."""
NOT_FOUND_HOLD_AFTER = 5
"""Consecutive 404s (wrong host) after which the partition is held for `MAX_PAUSE_SECONDS`."""
UNCLEAR_LOOKUP_DELAY = 5.0
"""Seconds before looking up an incident whose send had an unclear outcome: Datadog may
still be creating it after the client gave up."""
INCIDENT_READ = "incident_read"
"""The scope that looking up an incident with an unclear outcome needs."""
ROWS_PER_ROUND = 64
ROUND_BYTES = 2 * 1024 * 1024
"""Items one round holds in memory: with `max_jobs`, what bounds a worker's RSS."""


class Outcome(enum.StrEnum):
    IDLE = "idle"  # nothing left to send
    MORE = "more"  # the time budget ran out with rows left
    PAUSED = "paused"  # backing off until `retry_at`
    HELD = "held"  # the connection cannot deliver; rows kept
    BUSY = "busy"  # another drainer holds the partition


@dataclass(frozen=True, slots=True)
class DrainResult:
    outcome: Outcome
    retry_at: datetime | None = None
    delivered: int = 0


class _Pause(Exception):
    def __init__(self, until: datetime, error: str) -> None:
        super().__init__(error)
        self.until = until
        self.error = error


class _Held(Exception):
    pass


def backoff(failures: int, rate_limit_reset: float | None = None) -> float:
    """Seconds until the next try after `failures` consecutive failures, with jitter, at most
    `MAX_PAUSE_SECONDS`.

    A 429 waits what Datadog's `X-RateLimit-Reset` says (plus up to 20%, so partitions do not
    return in step), not the growing schedule: the window's end is known.
    """
    if rate_limit_reset is not None:
        delay = max(rate_limit_reset, 0.5) * random.uniform(1.0, 1.2)  # noqa: S311
    else:
        delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)] * random.uniform(0.8, 1.2)  # noqa: S311
    return min(delay, MAX_PAUSE_SECONDS)


async def drain(res: Resources, connection_id: uuid.UUID, signal: Signal) -> DrainResult:
    """Send this partition's pending rows for up to the drain budget; see the module doc."""
    store = PartitionStore(
        res.engine, connection_id, signal.value, timedelta(seconds=res.settings.lease_seconds)
    )
    partition = await store.acquire()
    if partition is None:
        return DrainResult(Outcome.BUSY)
    if partition.paused_until is not None and partition.paused_until > utcnow():
        await store.release()
        return DrainResult(Outcome.PAUSED, partition.paused_until)
    drainer = _Drainer(res, store, signal, partition.failures)
    try:
        return await drainer.run()
    except _Pause as pause:
        await store.pause(pause.until, pause.error)
        return DrainResult(Outcome.PAUSED, pause.until, drainer.delivered)
    except _Held:
        await store.release()
        return DrainResult(Outcome.HELD, delivered=drainer.delivered)
    except asyncio.CancelledError:
        # The worker is stopping (or the job timed out): rows not yet acknowledged stay in the
        # outbox, and the partition is handed back now rather than when its lease lapses.
        await asyncio.shield(store.release())
        raise


class _Drainer:
    """One lease's worth of work on a partition; raises `_Pause` or `_Held` to stop early."""

    def __init__(
        self, res: Resources, store: PartitionStore, signal: Signal, failures: int
    ) -> None:
        self.res = res
        self.store = store
        self.signal = signal
        self.spec: SignalSpec = SPECS[signal]
        self.failures = failures
        self.delivered = 0
        self.creds: OrgCredentials | None = None
        self.missing_scope: str | None = None
        self.labels = {"signal": signal.value, "site": ""}

    async def run(self) -> DrainResult:
        await self._load_connection()
        deadline = time.monotonic() + self.res.settings.drain_budget_seconds
        while time.monotonic() < deadline:
            rows = await self.store.rows(ROWS_PER_ROUND, ROUND_BYTES)
            fresh = [row for row in [await self._expire(row) for row in rows] if row is not None]
            while fresh and time.monotonic() < deadline:
                count = take(self.spec, fresh)
                await self._deliver(fresh[:count])
                fresh = fresh[count:]
            if not rows:
                break  # release() tells of rows committed since
        # Rows committed while we were finishing get their doorbell from us (MORE).
        more = await self.store.release()
        return DrainResult(Outcome.MORE if more else Outcome.IDLE, delivered=self.delivered)

    async def _load_connection(self) -> None:
        """Ask the credential door for a usable credential (held if there is none; without
        the scope the signal needs, each item is refused)."""
        try:
            self.creds = await credentials.open_for_signal(
                self.res, self.store.connection_id, self.signal
            )
        except MissingScope as missing:
            self.missing_scope, self.labels["site"] = missing.scope, missing.domain
            return
        except (ServiceError, GrantGone) as exc:
            raise _Held from exc
        except DatadogUnavailable as exc:  # e.g. a token refresh waiting for its retry time
            self._transient(exc, at_least=exc.retry_after or 0)
        self.labels["site"] = self.creds.site.domain

    async def _expire(self, row: Row) -> Row | None:
        window = self.spec.window_seconds
        if window is None or row.oldest_at is None:
            return row
        cutoff = time.time() - window
        if row.oldest_at.timestamp() >= cutoff:
            return row
        split = split_stale(self.signal, row.items, cutoff)
        if not split.stale_count:
            return row
        reason = f"older than Datadog's {window}-second intake window when its turn came"
        kept = await self.store.expire(
            row, (split.fresh, split.fresh_count), (split.stale, split.stale_count), reason
        )
        DROPPED.labels(**self.labels, reason="expired").inc(split.stale_count)
        log.warning("dropped %d expired %s item(s)", split.stale_count, self.signal)
        return kept

    async def _deliver(self, rows: Sequence[Row]) -> None:
        if self.missing_scope is not None:
            reason = f"the org did not grant the scope {self.missing_scope!r}"
            await self._split(rows, "rejected", reason, [], None)
            return
        if self.signal is Signal.INCIDENTS and rows[0].attempts and await self._created(rows[0]):
            await self._delivered(rows)
            return
        body = encode(self.spec, rows)
        if len(body.wire) > self.spec.max_wire_bytes:
            await self._split(rows, "too_large", "over Datadog's request size limit", [], None)
            return
        try:
            await self._submit(rows, body.wire, body.headers)
        except DatadogTooLarge as exc:
            await self._split(rows, "too_large", exc.description, exc.errors, exc.status)
            return
        except DatadogRejected as exc:
            await self._split(rows, "rejected", exc.description, exc.errors, exc.status)
            return
        except OperationRefused as refused:
            reason = f"not permitted, refused after a token refresh: {refused.refusal.description}"
            await self._split(
                rows, "rejected", reason, refused.refusal.errors, refused.refusal.status
            )
            return
        await self._delivered(rows)

    async def _delivered(self, rows: Sequence[Row]) -> None:
        await self.store.delivered(list(rows))
        self.failures = 0
        count = sum(row.item_count for row in rows)
        self.delivered += count
        DELIVERED.labels(**self.labels).inc(count)
        now = utcnow()
        for row in rows:
            DELIVERY_LATENCY.labels(**self.labels).observe((now - row.accepted_at).total_seconds())

    async def _split(
        self, rows: Sequence[Row], kind: str, reason: str, errors: list[str], status: int | None
    ) -> None:
        """Isolate what Datadog refuses: halve the rows, then a row's items; bury one item."""
        if len(rows) > 1:
            half = len(rows) // 2
            await self._deliver(rows[:half])
            await self._deliver(rows[half:])
            return
        [row] = rows
        if row.item_count > 1:
            first, second, n1, n2 = split_items(self.spec, row.items)
            for part in await self.store.replace(row, [(first, n1), (second, n2)]):
                await self._deliver([part])
            return
        await self.store.dead_letter(row, kind=kind, reason=reason, errors=errors, status=status)
        DROPPED.labels(**self.labels, reason=kind).inc(row.item_count)
        log.warning("dead-lettered a %s item: %s: %s", self.signal, kind, reason)

    async def _created(self, row: Row) -> bool:
        """Whether an incident sent with an unclear outcome exists at Datadog already.

        Incidents are not idempotent, so after a timeout or 5xx the org's newest incidents
        are searched for the same title created since acceptance. If they cannot be read
        (no `incident_read` scope, Datadog down), the incident is sent again: a possible
        duplicate, never a loss.
        """
        creds = self.creds
        assert creds is not None
        if INCIDENT_READ not in creds.scopes:
            return False
        title = orjson.loads(row.items)["data"]["attributes"]["title"]
        params = {"page[size]": "100"}
        try:
            found = await credentials.call_with_bearer(
                self.res,
                creds,
                lambda auth: self.res.datadog.read(creds.site, self.spec.path, auth, params),
            )
        except GrantGone as exc:
            raise _Held from exc
        except (DatadogError, OperationRefused) as exc:
            log.warning("cannot look up incidents before resending: %s", exc)
            return False
        since = row.accepted_at - timedelta(seconds=5)
        return any(
            item.get("attributes", {}).get("title") == title
            and datetime.fromisoformat(item["attributes"]["created"]) >= since
            for item in found.get("data", [])
        )

    async def _submit(self, rows: Sequence[Row], wire: bytes, headers: dict[str, str]) -> None:
        """Send with the partition's credential; the credential door judges refusals."""
        creds = self.creds
        assert creds is not None
        host = self.spec.host_of(creds.site)

        async def post(auth: dict[str, str]) -> None:
            answer = await self.res.datadog.submit(
                host, self.spec.path, wire, headers={**headers, **auth}
            )
            self._count_refused(answer)

        try:
            if self.spec.credential is Credential.BEARER:
                await credentials.call_with_bearer(self.res, creds, post)
                return
            try:
                await post(creds.headers(Credential.API_KEY))
            except DatadogUnauthorized as exc:
                await credentials.judge_api_key_refusal(self.res, creds, exc)
        except GrantGone as exc:
            raise _Held from exc
        except DatadogUnavailable as exc:
            unclear = self.signal is Signal.INCIDENTS and exc.status not in (404, 429)
            if unclear:
                await self.store.mark_unclear(list(rows))
            self._transient(exc, at_least=UNCLEAR_LOOKUP_DELAY if unclear else 0)

    def _count_refused(self, answer: httpx.Response) -> None:
        """An OTLP intake may take a request but refuse some of it (`partial_success`): those
        leaves cannot be told apart to keep them, so they are counted and logged, never
        dropped unseen."""
        kind = otlp.KINDS.get(self.signal)
        if kind is None:
            return
        content_type = answer.headers.get("content-type", "")
        refused, why = otlp.refused_in_answer(kind, content_type, answer.content)
        if refused:
            DROPPED.labels(**self.labels, reason="refused_by_datadog").inc(refused)
            log.warning(
                "Datadog refused %d %s item(s) of a request it took: %s", refused, self.signal, why
            )

    def _transient(self, exc: DatadogUnavailable, at_least: float = 0) -> NoReturn:
        cause = str(exc.status or "transport")
        RETRIED.labels(**self.labels, cause=cause).inc()
        reset = exc.retry_after if exc.status == 429 else None
        delay = min(max(backoff(self.failures, reset), at_least), MAX_PAUSE_SECONDS)
        if exc.status == 404 and self.failures + 1 >= NOT_FOUND_HOLD_AFTER:
            delay = MAX_PAUSE_SECONDS
        raise _Pause(utcnow() + timedelta(seconds=delay), exc.description)
