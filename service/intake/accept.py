"""Accepting a send: validate, check the connection and its backlog, commit to the outbox.

A 202 means the items are committed in PostgreSQL. The whole send is one transaction: the
idempotency key, every outbox row, or nothing. A connection's sends take turns (an advisory
lock) from the backlog check to the commit, so its cap holds however many arrive at once.
Redis is rung only after the commit; if it is down, the worker's reconciler finds the rows
anyway.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from service import connections as conns
from service import jobs
from service.credentials import check_deliverable
from service.errors import ServiceError
from service.intake.parse import Items, parse
from service.metrics import ACCEPTED
from service.models import IdempotencyKey, OutboxRow
from service.resources import Resources
from service.signals import IDEMPOTENCY_WINDOW, SPECS, Signal, SignalSpec

MAX_IDEMPOTENCY_KEY_LENGTH = 255


class IdempotencyKeyReused(ServiceError):
    status_code = 422
    code = "idempotency_key_reused"


class BacklogFull(ServiceError):
    status_code = 429
    code = "backlog_full"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.extra["retry_after"])}


@dataclass(frozen=True, slots=True)
class Chunk:
    """Items for one outbox row: at most one Datadog request's worth."""

    items: bytes
    count: int
    oldest: float | None


@dataclass(frozen=True, slots=True)
class Prepared:
    """A send validated and cut into rows: `units` is what the answer reports as accepted,
    `extra` what else it says."""

    chunks: list[Chunk]
    units: int
    extra: dict[str, Any] = field(default_factory=dict)


def prepare_json(signal: Signal, body: bytes) -> Prepared:
    """A send in Datadog's own JSON format (`service.intake.parse`)."""
    items = parse(signal, body, time.time())
    return Prepared(chunk(SPECS[signal], items), items.units)


def chunk(spec: SignalSpec, items: Items) -> list[Chunk]:
    """Serialize items into rows that each fit one request (an oversized item stays alone).

    The common case, a send that fits one request, is a single serialization of the array.
    """
    room = spec.max_raw_bytes - len(spec.prefix) - len(spec.suffix)
    stamps = [stamp for stamp in items.oldest if stamp is not None]
    if len(items.documents) <= spec.max_items:
        whole = orjson.dumps(items.documents)[1:-1]
        if len(whole) <= room:
            return [Chunk(whole, len(items.documents), min(stamps, default=None))]
    chunks: list[Chunk] = []
    current: list[bytes] = []
    size = 0
    oldest: float | None = None

    def close() -> None:
        chunks.append(Chunk(b",".join(current), len(current), oldest))

    for document, stamp in zip(items.documents, items.oldest, strict=True):
        item = orjson.dumps(document)
        if current and (len(current) >= spec.max_items or size + len(item) + 1 > room):
            close()
            current, size, oldest = [], 0, None
        current.append(item)
        size += len(item) + 1
        if stamp is not None:
            oldest = stamp if oldest is None else min(oldest, stamp)
    if current:
        close()
    return chunks


async def accept(
    res: Resources,
    session: AsyncSession,
    connection_id: uuid.UUID,
    signal: Signal,
    body: bytes,
    idempotency_key: str | None,
    prepare: Callable[[], Prepared] | None = None,
) -> dict[str, Any]:
    """Commit a send to the outbox and return the answer `{"accepted", "batch_id", ...}`.

    `prepare` validates and cuts the body (default: Datadog's JSON format for `signal`);
    it runs once the cheap refusals are passed. Raises what `prepare` raises
    (`InvalidBodyError`, 422), `NotFound` (404), `NotDeliverable` (409), `MissingScope` (403),
    `IdempotencyKeyReused` (422) or `BacklogFull` (429); nothing is stored then. A key
    repeated with the same signal and body returns the first answer and stores nothing.
    """
    connection = await conns.get_connection(session, connection_id)
    key = None
    if idempotency_key is not None:
        key = _Key(signal, idempotency_key, hashlib.sha256(body).digest())
        first = await _first_answer(session, connection_id, key)
        if first is not None:
            return first
    # Refusals that need no parsing come first: a revoked org's sends stay cheap.
    check_deliverable(connection, signal, res.sites.by_domain(connection.domain))
    _check_backlog(res, await _pending(session, connection_id), 1)
    prepared = prepare() if prepare is not None else prepare_json(signal, body)
    adding = sum(part.count for part in prepared.chunks)
    # One send at a time per connection from here to the commit, so the cap holds whatever
    # the concurrency: each sees the backlog the previous one committed.
    await session.execute(select(func.pg_advisory_xact_lock(_backlog_lock(connection_id))))
    _check_backlog(res, await _pending(session, connection_id), adding)
    batch_id = uuid.uuid4()
    answer: dict[str, Any] = {
        "accepted": prepared.units,
        "batch_id": str(batch_id),
        **prepared.extra,
    }
    if key is not None and not await _claim_key(session, connection_id, key, answer):
        await session.rollback()
        first = await _first_answer(session, connection_id, key)
        assert first is not None
        return first
    rows = [
        {
            "connection_id": connection_id,
            "signal": signal.value,
            "batch_id": batch_id,
            "items": part.items,
            "item_count": part.count,
            "oldest_at": None if part.oldest is None else datetime.fromtimestamp(part.oldest, UTC),
        }
        for part in prepared.chunks
    ]
    if rows:
        await session.execute(insert(OutboxRow), rows)
    await session.commit()
    ACCEPTED.labels(signal=signal.value, site=connection.domain).inc(prepared.units)
    if rows:
        await jobs.ring_delivery_or_log(
            res.redis, connection_id, signal, res.settings.linger_seconds
        )
    return answer


async def _pending(session: AsyncSession, connection_id: uuid.UUID) -> int:
    """Items this connection has waiting in the outbox (all signals)."""
    pending = await session.scalar(
        select(func.coalesce(func.sum(OutboxRow.item_count), 0)).where(
            OutboxRow.connection_id == connection_id
        )
    )
    return int(pending or 0)


def _check_backlog(res: Resources, pending: int, adding: int) -> None:
    cap = res.settings.backlog_cap_items
    if pending + adding > cap:
        raise BacklogFull(
            f"this connection already has {pending} items waiting (cap {cap}); retry later",
            retry_after=res.settings.backlog_retry_after_seconds,
        )


@dataclass(frozen=True, slots=True)
class _Key:
    """An `Idempotency-Key` as stored: per signal, with the digest of the body it came with."""

    signal: Signal
    value: str
    body_sha256: bytes


async def _first_answer(
    session: AsyncSession, connection_id: uuid.UUID, key: _Key
) -> dict[str, Any] | None:
    """The answer stored for the key within the window (None if none); raises
    `IdempotencyKeyReused` if it came with another body."""
    stored = await session.get(IdempotencyKey, (connection_id, key.signal.value, key.value))
    if stored is None or stored.created_at < datetime.now(UTC) - IDEMPOTENCY_WINDOW:
        return None
    if stored.body_sha256 not in (None, key.body_sha256):
        raise IdempotencyKeyReused(
            f"this Idempotency-Key was used for another {key.signal.value} body on this "
            "connection in the last 24 hours; a new send needs a new key; nothing was accepted"
        )
    return stored.response


async def _claim_key(
    session: AsyncSession, connection_id: uuid.UUID, key: _Key, answer: dict[str, Any]
) -> bool:
    """Insert the key with our answer; False if another send holds it (it committed first)."""
    statement = pg_insert(IdempotencyKey).values(
        connection_id=connection_id,
        signal=key.signal.value,
        key=key.value,
        body_sha256=key.body_sha256,
        response=answer,
    )
    claimed = await session.execute(
        statement.on_conflict_do_update(
            index_elements=[
                IdempotencyKey.connection_id,
                IdempotencyKey.signal,
                IdempotencyKey.key,
            ],
            set_={
                "body_sha256": statement.excluded.body_sha256,
                "response": statement.excluded.response,
                "created_at": func.now(),
            },
            where=IdempotencyKey.created_at < func.now() - IDEMPOTENCY_WINDOW,
        ).returning(IdempotencyKey.key)
    )
    return claimed.first() is not None


def _backlog_lock(connection_id: uuid.UUID) -> int:
    """The advisory lock id of a connection's backlog: a signed 64-bit number from its id
    (another lock sharing it would only wait its turn)."""
    return int.from_bytes(connection_id.bytes[:8], "big", signed=True)
