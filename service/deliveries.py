"""What operators see of delivery: per-partition counters, dead letters, and replay."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from service.models import Backlog, DeadLetter, OutboxRow, Partition, utcnow


@dataclass(frozen=True, slots=True)
class PartitionStats:
    """One signal of one connection: backlog, outcomes, and retry state."""

    signal: str
    pending_items: int
    oldest_pending_at: datetime | None
    delivered_items: int
    dropped_items: int
    dead_items: int
    retried_requests: int
    paused_until: datetime | None
    last_error: str | None
    last_delivered_at: datetime | None


async def delivery_stats(
    session: AsyncSession, connection_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[PartitionStats]]:
    """Counters of every partition of these connections (two grouped queries)."""
    pending = {
        (row.connection_id, row.signal): (row.items, row.oldest)
        for row in await session.execute(
            select(
                OutboxRow.connection_id,
                OutboxRow.signal,
                func.sum(OutboxRow.item_count).label("items"),
                func.min(OutboxRow.accepted_at).label("oldest"),
            )
            .where(OutboxRow.connection_id.in_(connection_ids))
            .group_by(OutboxRow.connection_id, OutboxRow.signal)
        )
    }
    partitions = {
        (p.connection_id, p.signal): p
        for p in await session.scalars(
            select(Partition).where(Partition.connection_id.in_(connection_ids))
        )
    }
    stats: dict[uuid.UUID, list[PartitionStats]] = {cid: [] for cid in connection_ids}
    for key in sorted(pending.keys() | partitions.keys(), key=lambda k: (str(k[0]), k[1])):
        items, oldest = pending.get(key, (0, None))
        partition = partitions.get(key)
        stats[key[0]].append(
            PartitionStats(
                signal=key[1],
                pending_items=int(items),
                oldest_pending_at=oldest,
                delivered_items=partition.delivered_items if partition else 0,
                dropped_items=partition.dropped_items if partition else 0,
                dead_items=partition.dead_items if partition else 0,
                retried_requests=partition.retried_requests if partition else 0,
                paused_until=partition.paused_until if partition else None,
                last_error=partition.last_error if partition else None,
                last_delivered_at=partition.last_delivered_at if partition else None,
            )
        )
    return stats


async def dead_letters(
    session: AsyncSession, connection_id: uuid.UUID | None, *, limit: int = 100
) -> Sequence[DeadLetter]:
    """Newest first; all connections' when `connection_id` is None."""
    query = select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit)
    if connection_id is not None:
        query = query.where(DeadLetter.connection_id == connection_id)
    return (await session.scalars(query)).all()


async def replay(
    session: AsyncSession, connection_id: uuid.UUID, ids: Sequence[int] | None
) -> list[tuple[uuid.UUID, str, int]]:
    """Move dead letters (all not yet replayed, or `ids`) back to the outbox; commit.

    Returns (connection, signal, items) for each partition that received rows, so the caller
    can ring them. A dead letter is replayed once; it stays listed with `replayed_at`.
    """
    chosen = select(DeadLetter.id).where(
        DeadLetter.connection_id == connection_id, DeadLetter.replayed_at.is_(None)
    )
    if ids is not None:
        chosen = chosen.where(DeadLetter.id.in_(ids))
    marked = (
        await session.execute(
            update(DeadLetter)
            .where(DeadLetter.id.in_(chosen.scalar_subquery()))
            .values(replayed_at=utcnow())
            .returning(
                DeadLetter.connection_id,
                DeadLetter.signal,
                DeadLetter.batch_id,
                DeadLetter.items,
                DeadLetter.item_count,
            )
        )
    ).all()
    if marked:
        await session.execute(
            insert(OutboxRow),
            [
                {
                    "connection_id": row.connection_id,
                    "signal": row.signal,
                    "batch_id": row.batch_id,
                    "items": row.items,
                    "item_count": row.item_count,
                }
                for row in marked
            ],
        )
    totals: dict[tuple[uuid.UUID, str], int] = {}
    for row in marked:
        key = (row.connection_id, row.signal)
        totals[key] = totals.get(key, 0) + row.item_count
    if marked:  # an operator's replay is not refused by the backlog cap, but counts in it
        added = sum(totals.values())
        statement = pg_insert(Backlog).values(connection_id=connection_id, pending_items=added)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[Backlog.connection_id],
                set_={"pending_items": Backlog.pending_items + statement.excluded.pending_items},
            )
        )
    await session.commit()
    return [(cid, signal, items) for (cid, signal), items in totals.items()]
