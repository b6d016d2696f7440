"""The outbox as one partition's drainer sees it: lease, rows, and recording outcomes.

A partition (connection, signal) has at most one drainer: the lease in `partitions` is taken
by a conditional upsert and lapses after `lease_seconds`, so a crashed worker's partition is
taken over (its unacknowledged rows are sent again: at least once). Rows need no lease of
their own.

The hot path (lease, rows, delivered, release) is one statement per step, each written once
as SQL and run in autocommit on the driver: one round trip each instead of BEGIN, statement,
COMMIT. Steps that change several tables (dead letters, splits, expiry) are one transaction
each. Every delete from and insert into the outbox moves the connection's `backlogs` count by
the same items, in the same statement or transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import Update, delete, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from service.db import driver
from service.models import Backlog, DeadLetter, OutboxRow, Partition, utcnow

# The hot path's statements, in asyncpg's SQL, run on the driver (`service.db.driver`):
# asyncpg prepares each once per connection, and SQLAlchemy's work per statement is skipped.
# $1 is always the connection's id and $2 the signal.
_ACQUIRE = (
    "INSERT INTO partitions AS p (connection_id, signal, lease_until)"
    " VALUES ($1::uuid, $2::varchar, $3::timestamptz)"
    " ON CONFLICT (connection_id, signal) DO UPDATE SET lease_until = excluded.lease_until"
    " WHERE p.lease_until IS NULL OR p.lease_until < $4::timestamptz"
    " RETURNING p.paused_until, p.failures"
)
_RELEASE = (
    "UPDATE partitions SET lease_until = NULL"
    " WHERE connection_id = $1::uuid AND signal = $2::varchar"
    " RETURNING EXISTS (SELECT FROM outbox"
    " WHERE connection_id = $1::uuid AND signal = $2::varchar)"
)
_ROWS = (
    "SELECT id, batch_id, items, item_count, oldest_at, accepted_at, attempts FROM ("
    " SELECT id, batch_id, items, item_count, oldest_at, accepted_at, attempts,"
    " sum(octet_length(items)) OVER (ORDER BY id) - octet_length(items) AS before"
    " FROM outbox WHERE connection_id = $1::uuid AND signal = $2::varchar"
    " ORDER BY id LIMIT $3::integer"
    ") AS window_ WHERE before = 0 OR before < $4::bigint ORDER BY id"
)
"""Rows in order while the bytes before each stay under `max_bytes` (the first always)."""
_DELIVERED = (
    "WITH deleted AS ("
    " DELETE FROM outbox WHERE id = ANY($3::bigint[]) RETURNING item_count"
    "), counted AS (SELECT coalesce(sum(item_count), 0) AS items FROM deleted"
    "), drained AS ("
    " UPDATE backlogs SET pending_items = pending_items - (SELECT items FROM counted)"
    " WHERE connection_id = $1::uuid"
    ")"
    " UPDATE partitions SET delivered_items = delivered_items + (SELECT items FROM counted),"
    " failures = 0, paused_until = NULL, last_error = NULL, last_delivered_at = now(),"
    " lease_until = $4::timestamptz"
    " WHERE connection_id = $1::uuid AND signal = $2::varchar"
)
"""Delete delivered rows, take them off the backlog and count them, renew the lease."""


@dataclass(frozen=True, slots=True)
class Row:
    id: int
    batch_id: uuid.UUID
    items: bytes
    item_count: int
    oldest_at: datetime | None
    accepted_at: datetime
    attempts: int = 0
    """Sends whose outcome was unclear (the request may have reached Datadog)."""


@dataclass(frozen=True, slots=True)
class Lease:
    paused_until: datetime | None
    failures: int


class PartitionStore:
    """Database operations of one partition (see the module docstring)."""

    def __init__(
        self, engine: AsyncEngine, connection_id: uuid.UUID, signal: str, lease: timedelta
    ) -> None:
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.connection_id = connection_id
        self.signal = signal
        self._lease = lease
        self._key = (Partition.connection_id == connection_id, Partition.signal == signal)
        self._partition = (connection_id, signal)

    @asynccontextmanager
    async def _auto(self) -> AsyncIterator[AsyncConnection]:
        """A connection in autocommit: each statement its own transaction, one round trip."""
        async with self._engine.connect() as db:
            await db.execution_options(isolation_level="AUTOCOMMIT")
            yield db

    @asynccontextmanager
    async def _driver(self) -> AsyncIterator[asyncpg.Connection[asyncpg.Record]]:
        """The driver of a connection in autocommit, for the hot path's statements."""
        async with self._auto() as db, driver(db) as raw:
            yield raw

    async def acquire(self) -> Lease | None:
        """Take the lease if free or lapsed; None when another drainer holds it."""
        now = utcnow()
        async with self._driver() as raw:
            row = await raw.fetchrow(_ACQUIRE, *self._partition, now + self._lease, now)
        return None if row is None else Lease(*row)

    async def release(self) -> bool:
        """Give the lease back; True if rows are waiting (committed while we finished)."""
        async with self._driver() as raw:
            return bool(await raw.fetchval(_RELEASE, *self._partition))

    async def rows(self, limit: int, max_bytes: int) -> list[Row]:
        """The oldest pending rows in acceptance order: at most `limit`, and no more than
        `max_bytes` of items (the first row always), so a worker's memory stays bounded
        whatever the backlog."""
        async with self._driver() as raw:
            found = await raw.fetch(_ROWS, *self._partition, limit, max_bytes)
        return [Row(*record) for record in found]

    async def mark_unclear(self, rows: list[Row]) -> None:
        """Remember that these rows were sent without a clear answer (see incidents)."""
        async with self._auto() as db:
            await db.execute(
                update(OutboxRow)
                .where(OutboxRow.id.in_([r.id for r in rows]))
                .values(attempts=OutboxRow.attempts + 1)
            )

    async def delivered(self, rows: list[Row]) -> None:
        """Datadog took these rows: delete them, count them, renew the lease (one statement;
        only rows still there count, so a lapsed lease's second delivery is not counted)."""
        ids = [row.id for row in rows]
        async with self._driver() as raw:
            await raw.execute(_DELIVERED, *self._partition, ids, utcnow() + self._lease)

    async def dead_letter(
        self,
        row: Row,
        *,
        kind: str,
        reason: str,
        errors: list[str] | None = None,
        status: int | None = None,
    ) -> None:
        """Move a row to the dead letters with why (kept for operators to see and replay)."""
        async with self._sessions() as session, session.begin():
            await self._remove(session, row)
            await self._bury(session, row, kind, reason, errors or [], status)

    async def replace(self, row: Row, parts: list[tuple[bytes, int]]) -> list[Row]:
        """Replace a row by rows holding `parts` (split items), in the same batch."""
        async with self._sessions() as session, session.begin():
            return await self._replace(session, row, parts)

    async def expire(
        self, row: Row, kept: tuple[bytes, int], stale: tuple[bytes, int], reason: str
    ) -> Row | None:
        """Drop a row's stale items on purpose (recorded as `expired`); keep the fresh ones."""
        async with self._sessions() as session, session.begin():
            fresh = await self._replace(session, row, [kept])
            expired = Row(row.id, row.batch_id, stale[0], stale[1], row.oldest_at, row.accepted_at)
            await self._bury(session, expired, "expired", reason, [], None)
        return fresh[0] if fresh else None

    async def _bury(
        self,
        session: AsyncSession,
        row: Row,
        kind: str,
        reason: str,
        errors: list[str],
        status: int | None,
    ) -> None:
        session.add(
            DeadLetter(
                connection_id=self.connection_id,
                signal=self.signal,
                batch_id=row.batch_id,
                items=row.items,
                item_count=row.item_count,
                kind=kind,
                reason=reason,
                errors=errors,
                status=status,
            )
        )
        counter = Partition.dropped_items if kind == "expired" else Partition.dead_items
        await session.execute(
            update(Partition).where(*self._key).values({counter: counter + row.item_count})
        )

    def _backlog_change(self, items: Any) -> Update:
        """The connection's `backlogs` count moved by `items` (a number or an expression)."""
        return (
            update(Backlog)
            .where(Backlog.connection_id == self.connection_id)
            .values(pending_items=Backlog.pending_items + items)
        )

    async def _remove(self, session: AsyncSession, row: Row) -> None:
        """Delete the row and take its items off the backlog (if it was still there)."""
        gone = await session.scalar(
            delete(OutboxRow).where(OutboxRow.id == row.id).returning(OutboxRow.item_count)
        )
        if gone:
            await session.execute(self._backlog_change(-gone))

    async def _replace(
        self, session: AsyncSession, row: Row, parts: list[tuple[bytes, int]]
    ) -> list[Row]:
        await self._remove(session, row)
        values: list[dict[str, Any]] = [
            {
                "connection_id": self.connection_id,
                "signal": self.signal,
                "batch_id": row.batch_id,
                "items": items,
                "item_count": count,
                "oldest_at": row.oldest_at,
                "accepted_at": row.accepted_at,
            }
            for items, count in parts
            if count
        ]
        if not values:
            return []
        await session.execute(self._backlog_change(sum(v["item_count"] for v in values)))
        statement = insert(OutboxRow).returning(OutboxRow.id, sort_by_parameter_order=True)
        ids = (await session.scalars(statement, values)).all()
        return [
            Row(new_id, row.batch_id, v["items"], v["item_count"], row.oldest_at, row.accepted_at)
            for new_id, v in zip(ids, values, strict=True)
        ]

    async def pause(self, until: datetime, error: str) -> None:
        """Back off: nobody drains this partition before `until`."""
        async with self._auto() as db:
            await db.execute(
                update(Partition)
                .where(*self._key)
                .values(
                    paused_until=until,
                    failures=Partition.failures + 1,
                    retried_requests=Partition.retried_requests + 1,
                    last_error=error,
                    lease_until=None,
                )
            )
