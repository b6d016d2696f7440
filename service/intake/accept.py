"""Accepting a send: validate, check the connection and its backlog, commit to the outbox.

A 202 means the items are committed in PostgreSQL. The whole send is one transaction: the
idempotency key, every outbox row and their count in `backlogs`, or nothing. The count is
reserved by a conditional upsert of the connection's `backlogs` row, so its cap holds however
many sends arrive at once. Redis is rung only after the commit; if it is down, the worker's
reconciler finds the rows anyway.
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
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from service import jobs
from service.credentials import check_deliverable
from service.db import driver
from service.errors import NotFound, ServiceError
from service.intake.parse import Items, parse
from service.metrics import ACCEPTED
from service.models import IdempotencyKey
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


@dataclass(frozen=True, slots=True)
class _Standing:
    """A connection as the send path reads it (`credentials.Standing`) and its backlog."""

    status: str
    status_reason: str | None
    scopes: list[str]
    domain: str
    api_key: bytes | None
    refresh_token: bytes | None
    pending_items: int


_LOOK_UP = (
    "SELECT c.status, c.status_reason, c.scopes, c.domain, c.api_key, c.refresh_token,"
    " coalesce(b.pending_items, 0) AS pending_items"
    " FROM connections AS c LEFT JOIN backlogs AS b ON b.connection_id = c.id WHERE c.id = $1"
)
"""The connection's standing and its backlog: everything the cheap refusals need."""

_COMMIT = (
    "WITH reserved AS ("
    " INSERT INTO backlogs AS b (connection_id, pending_items)"
    " SELECT $1::uuid, $2::bigint WHERE $2::bigint <= $3::bigint"
    " ON CONFLICT (connection_id) DO UPDATE"
    " SET pending_items = b.pending_items + excluded.pending_items"
    " WHERE b.pending_items + excluded.pending_items <= $3::bigint"
    " RETURNING b.pending_items"
    "), stored AS ("
    " INSERT INTO outbox (connection_id, signal, batch_id, items, item_count, oldest_at)"
    " SELECT $1::uuid, $4::varchar, $5::uuid, r.items, r.item_count, r.oldest_at"
    " FROM unnest($6::bytea[], $7::integer[], $8::timestamptz[])"
    " AS r(items, item_count, oldest_at)"
    " WHERE EXISTS (SELECT FROM reserved)"
    ")"
    " SELECT (SELECT pending_items FROM reserved) AS reserved,"
    " (SELECT pending_items FROM backlogs WHERE connection_id = $1::uuid) AS before"
)
"""The rows and their count in the backlog, in one statement, only if the cap allows them.

The upsert of the backlog row takes that row's lock and compares the cap with its latest
committed count (not the statement's snapshot), so concurrent sends of one connection take
turns here and the cap holds exactly; the rows are inserted only if it reserved room.
`before` is the count as this statement's snapshot saw it (for the refusal's message)."""


async def accept(
    res: Resources,
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

    Without a key a send is two statements in autocommit (the look-up, then `_COMMIT`, both
    on the driver); with one, the key is claimed in the same transaction as the rows.
    """
    key = None
    if idempotency_key is not None:
        key = _Key(signal, idempotency_key, hashlib.sha256(body).digest())
    async with res.engine.connect() as db:
        if key is None:
            await db.execution_options(isolation_level="AUTOCOMMIT")
        async with driver(db) as raw:
            found = await raw.fetchrow(_LOOK_UP, connection_id)
        if found is None:
            raise NotFound(f"no connection with id {connection_id}")
        standing = _Standing(*found)
        if key is not None:
            first = await _first_answer(db, connection_id, key)
            if first is not None:
                return first
        # Refusals that need no parsing come first: a revoked org's sends stay cheap.
        check_deliverable(standing, signal, res.sites.by_domain(standing.domain))
        _check_backlog(res, standing.pending_items, 1)
        prepared = prepare() if prepare is not None else prepare_json(signal, body)
        batch_id = uuid.uuid4()
        answer: dict[str, Any] = {
            "accepted": prepared.units,
            "batch_id": str(batch_id),
            **prepared.extra,
        }
        if key is not None and not await _claim_key(db, connection_id, key, answer):
            await db.rollback()
            first = await _first_answer(db, connection_id, key)
            assert first is not None
            return first
        if prepared.chunks:
            await _commit(res, db, connection_id, signal, batch_id, prepared.chunks)
        await db.commit()
    ACCEPTED.labels(signal=signal.value, site=standing.domain).inc(prepared.units)
    if prepared.chunks:
        await jobs.ring_delivery_or_log(
            res.redis, connection_id, signal, res.settings.linger_seconds
        )
    return answer


async def _commit(
    res: Resources,
    db: AsyncConnection,
    connection_id: uuid.UUID,
    signal: Signal,
    batch_id: uuid.UUID,
    chunks: list[Chunk],
) -> None:
    """Store the rows if the backlog cap allows them; `BacklogFull` (and a rollback) if not."""
    async with driver(db) as raw:
        stored = await raw.fetchrow(
            _COMMIT,
            connection_id,
            sum(part.count for part in chunks),
            res.settings.backlog_cap_items,
            signal.value,
            batch_id,
            [part.items for part in chunks],
            [part.count for part in chunks],
            [
                None if part.oldest is None else datetime.fromtimestamp(part.oldest, UTC)
                for part in chunks
            ],
        )
    assert stored is not None  # the statement's SELECT always gives one row
    if stored["reserved"] is None:
        # The cap, checked under the backlog row's lock, had no room. `before` is only this
        # statement's snapshot of the count: a send committed meanwhile may not be in it, so
        # the refusal cannot depend on it (nothing was stored: a 202 here would lose the send).
        await db.rollback()
        raise _backlog_full(res, int(stored["before"] or 0))


def _check_backlog(res: Resources, pending: int, adding: int) -> None:
    if pending + adding > res.settings.backlog_cap_items:
        raise _backlog_full(res, pending)


def _backlog_full(res: Resources, pending: int) -> BacklogFull:
    cap = res.settings.backlog_cap_items
    return BacklogFull(
        f"this connection already has about {pending} items waiting (cap {cap}); retry later",
        retry_after=res.settings.backlog_retry_after_seconds,
    )


@dataclass(frozen=True, slots=True)
class _Key:
    """An `Idempotency-Key` as stored: per signal, with the digest of the body it came with."""

    signal: Signal
    value: str
    body_sha256: bytes


async def _first_answer(
    db: AsyncConnection, connection_id: uuid.UUID, key: _Key
) -> dict[str, Any] | None:
    """The answer stored for the key within the window (None if none); raises
    `IdempotencyKeyReused` if it came with another body."""
    stored = (
        await db.execute(
            select(
                IdempotencyKey.created_at, IdempotencyKey.body_sha256, IdempotencyKey.response
            ).where(
                IdempotencyKey.connection_id == connection_id,
                IdempotencyKey.signal == key.signal.value,
                IdempotencyKey.key == key.value,
            )
        )
    ).one_or_none()
    if stored is None or stored.created_at < datetime.now(UTC) - IDEMPOTENCY_WINDOW:
        return None
    if stored.body_sha256 not in (None, key.body_sha256):
        raise IdempotencyKeyReused(
            f"this Idempotency-Key was used for another {key.signal.value} body on this "
            "connection in the last 24 hours; a new send needs a new key; nothing was accepted"
        )
    response: dict[str, Any] = stored.response
    return response


async def _claim_key(
    db: AsyncConnection, connection_id: uuid.UUID, key: _Key, answer: dict[str, Any]
) -> bool:
    """Insert the key with our answer; False if another send holds it (it committed first)."""
    statement = pg_insert(IdempotencyKey).values(
        connection_id=connection_id,
        signal=key.signal.value,
        key=key.value,
        body_sha256=key.body_sha256,
        response=answer,
    )
    claimed = await db.execute(
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
