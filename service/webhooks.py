"""Connection-state notifications: every status transition POSTed to `DDBRIDGE_WEBHOOK_URL`,
signed, in order, at least once.

Transitions are rows of `connection_events`; the worker's cron sends the ones not yet
acknowledged, oldest first, and stops at the first failure so order holds (the next tick
retries). The body is JSON without any secret. The signature header is
`X-DDBridge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under
DDBRIDGE_WEBHOOK_SECRET>`, so receivers can reject forgeries and replays.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

import httpx
import orjson
from sqlalchemy import select

from service.models import Connection, ConnectionEvent, utcnow
from service.resources import Resources

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-DDBridge-Signature"
BATCH = 100


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The header value for `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


async def notify_transitions(res: Resources) -> int:
    """Send unacknowledged transitions in order; return how many the receiver took."""
    url, secret = res.settings.webhook_url, res.settings.webhook_secret
    if url is None or secret is None:
        return 0
    pending = (
        select(ConnectionEvent, Connection.account_id, Connection.dd_org_id, Connection.domain)
        .join(Connection, Connection.id == ConnectionEvent.connection_id)
        .where(ConnectionEvent.notified_at.is_(None))
        .order_by(ConnectionEvent.id)
        .limit(BATCH)
        .with_for_update(of=ConnectionEvent, skip_locked=True)
    )
    sent = 0
    async with res.sessionmaker() as session, session.begin():
        for event, account_id, dd_org_id, domain in (await session.execute(pending)).all():
            body = orjson.dumps(
                {
                    "event_id": event.id,
                    "connection_id": str(event.connection_id),
                    "account_id": account_id,
                    "dd_org_id": dd_org_id,
                    "domain": domain,
                    "from_status": event.from_status,
                    "to_status": event.to_status,
                    "reason": event.reason,
                    "at": event.at.isoformat(),
                }
            )
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: signature(secret.get_secret_value(), int(time.time()), body),
            }
            try:
                response = await res.webhooks.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                log.warning("webhook unreachable (%s); will retry", type(exc).__name__)
                break
            if not response.is_success:
                log.warning("webhook answered %d; will retry", response.status_code)
                break
            event.notified_at = utcnow()
            sent += 1
    return sent
