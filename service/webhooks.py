"""Webhook notifications: an outbox of typed events, POSTed to `DDBRIDGE_WEBHOOK_URL` one at a
time, in order, at least once, signed.

Producers call `record` inside their own transaction (a connection's status transition, a
refused OAuth client), so an event exists exactly when what it tells of was committed. The
worker's `notify` cron sends: one sender at a time across every worker and overlapping cron
ticks (a PostgreSQL advisory lock, held on a database connection of its own outside any
transaction; a session-pooling connection when behind PgBouncer), oldest event first; each event is read, posted with no lock or transaction open, then marked
acknowledged; the first failure ends the run and the next tick starts again from that event,
so order holds. A crash between the post and the mark sends that event again (same
`event_id`): receivers drop an `event_id` they already hold.

Within one connection, transitions are made under the connection's row lock, so their ids,
and therefore their arrival order, follow the order they happened in.

The body is JSON without any secret: `event_id`, `type`, `at`, then the event's own fields.
The signature header is `X-DDBridge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
"<t>.<body>" under DDBRIDGE_WEBHOOK_SECRET>`, so receivers can reject forgeries and replays.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service.models import Connection, WebhookEvent, utcnow
from service.resources import Resources

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-DDBridge-Signature"
BATCH = 100
SEND_SLICE_SECONDS = 30.0
"""A run of the sender starts no post after this long; the next tick carries on."""
SENDER_LOCK = "ddbridge:webhook-sender"
"""Names the advisory lock that makes one sender at a time across all workers."""
KEPT_AFTER_NOTIFIED = timedelta(days=1)
KEPT_UNSENT = timedelta(days=7)
"""An event nobody acknowledged within this is dropped (with a log line): the table stays
bounded when no webhook is configured or the receiver is gone."""


class EventType(enum.StrEnum):
    STATUS_CHANGED = "connection.status_changed"
    CLIENT_CREDENTIALS_REFUSED = "client.credentials_refused"


def record(
    session: AsyncSession,
    event_type: EventType,
    payload: dict[str, Any],
    *,
    connection_id: uuid.UUID | None = None,
) -> None:
    """Add an event to the outbox in the caller's transaction (sent once that commits)."""
    session.add(WebhookEvent(type=event_type, connection_id=connection_id, payload=payload))


def record_transition(
    session: AsyncSession, connection: Connection, from_status: str | None, reason: str
) -> None:
    """The `connection.status_changed` event of a transition to `connection.status`."""
    record(
        session,
        EventType.STATUS_CHANGED,
        {
            "connection_id": str(connection.id),
            "account_id": connection.account_id,
            "dd_org_id": connection.dd_org_id,
            "domain": connection.domain,
            "from_status": from_status,
            "to_status": connection.status,
            "reason": reason,
        },
        connection_id=connection.id,
    )


async def record_unless_recent(
    session: AsyncSession,
    event_type: EventType,
    payload: dict[str, Any],
    *,
    same: tuple[str, ...],
    within: timedelta,
) -> bool:
    """`record`, unless an event of this type with the same values of the `same` fields was
    recorded within `within`; whether it recorded. Concurrent callers with the same values
    take turns (an advisory lock until the transaction ends), so only one records."""
    key = {name: payload[name] for name in same}
    lock = f"webhook:{event_type}:{orjson.dumps(key, option=orjson.OPT_SORT_KEYS).decode()}"
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(lock, 0))))
    recent = select(WebhookEvent.id).where(
        WebhookEvent.type == event_type,
        WebhookEvent.created_at > utcnow() - within,
        WebhookEvent.payload.contains(key),
    )
    if await session.scalar(recent.limit(1)) is not None:
        return False
    record(session, event_type, payload)
    return True


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The header value for `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def body_of(event: WebhookEvent) -> bytes:
    return orjson.dumps(
        {"event_id": event.id, "type": event.type, "at": event.created_at.isoformat()}
        | event.payload
    )


async def notify(res: Resources) -> int:
    """Send unacknowledged events in order, unless another sender is running; how many the
    receiver took."""
    if res.settings.webhook_url is None:
        return 0
    async with res.engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        lock_key = func.hashtextextended(SENDER_LOCK, 0)
        if not await connection.scalar(select(func.pg_try_advisory_lock(lock_key))):
            return 0
        try:
            return await _send_pending(res)
        finally:
            # Closing the connection ends the lock even if this run was cancelled mid-post.
            await connection.invalidate()


async def _send_pending(res: Resources) -> int:
    sent = 0
    stop_at = time.monotonic() + SEND_SLICE_SECONDS
    while time.monotonic() < stop_at:
        async with res.sessionmaker() as session:
            pending = (
                select(WebhookEvent)
                .where(WebhookEvent.notified_at.is_(None))
                .order_by(WebhookEvent.id)
                .limit(BATCH)
            )
            events = (await session.scalars(pending)).all()
        if not events:
            break
        for event in events:
            if time.monotonic() >= stop_at or not await _post(res, event):
                return sent
            async with res.sessionmaker() as session, session.begin():
                await session.execute(
                    update(WebhookEvent)
                    .where(WebhookEvent.id == event.id)
                    .values(notified_at=utcnow())
                )
            sent += 1
    return sent


async def _post(res: Resources, event: WebhookEvent) -> bool:
    """POST one event; whether the receiver acknowledged it (2xx)."""
    url, secret = res.settings.webhook_url, res.settings.webhook_secret
    assert url is not None
    assert secret is not None, "checked by Settings"
    body = body_of(event)
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature(secret.get_secret_value(), int(time.time()), body),
    }
    try:
        response = await res.webhooks.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        log.warning("webhook unreachable (%s); will retry", type(exc).__name__)
        return False
    if not response.is_success:
        log.warning("webhook answered %d; will retry", response.status_code)
        return False
    return True


async def purge(session: AsyncSession) -> None:
    """Drop events acknowledged a day ago, and unsent ones past `KEPT_UNSENT` (logged)."""
    now = utcnow()
    await session.execute(
        delete(WebhookEvent).where(WebhookEvent.notified_at < now - KEPT_AFTER_NOTIFIED)
    )
    dropped = await session.execute(
        delete(WebhookEvent)
        .where(WebhookEvent.notified_at.is_(None), WebhookEvent.created_at < now - KEPT_UNSENT)
        .returning(WebhookEvent.id)
    )
    count = len(dropped.all())
    if count:
        log.warning("dropped %d webhook events nobody acknowledged within 7 days", count)
