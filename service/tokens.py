"""Keeping a connection's grant alive, and ending it.

Refreshes of one org never race: each runs inside a transaction holding the connection's row
lock (`SELECT ... FOR UPDATE`), so a second refresher waits, then sees the fresh token and
does nothing. The newest refresh token is stored atomically with its access token.
`invalid_grant` (the grant is gone) is told apart from an outage (try again later).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from service import connections as conns
from service.datadog.errors import DatadogError, DatadogRejected, DatadogUnavailable
from service.errors import ServiceError
from service.models import Connection, ConnectionStatus, utcnow
from service.resources import Resources

log = logging.getLogger(__name__)

REFRESHABLE = (ConnectionStatus.ACTIVE, ConnectionStatus.KEY_INVALID, ConnectionStatus.PENDING)


class RevokeFailed(ServiceError):
    status_code = 503
    code = "datadog_unavailable"


@dataclass(frozen=True, slots=True)
class RefreshOutcome:
    """What a refresh did: `refreshed`, `fresh` (nothing to do), `gone` (re-auth needed)."""

    result: str
    expires_at: datetime | None


async def refresh_connection(
    res: Resources, connection_id: uuid.UUID, *, margin: timedelta
) -> RefreshOutcome:
    """Refresh the access token if it expires within `margin`.

    Raises `DatadogUnavailable` when Datadog cannot answer now (the caller retries later).
    """
    async with res.sessionmaker() as session, session.begin():
        connection = (
            await session.scalars(
                select(Connection).where(Connection.id == connection_id).with_for_update()
            )
        ).one_or_none()
        if connection is None or connection.status not in REFRESHABLE:
            return RefreshOutcome("gone", None)
        expires_at = connection.access_token_expires_at
        if expires_at is not None and expires_at - utcnow() > margin:
            return RefreshOutcome("fresh", expires_at)
        refresh_token = conns.open_secret(res.keyring, connection, "refresh_token")
        if refresh_token is None:
            return RefreshOutcome("gone", None)
        site = res.sites.by_domain(connection.domain)
        try:
            grant = await res.datadog.refresh(
                site, res.settings.client_for(site.domain), refresh_token
            )
        except DatadogUnavailable:
            raise
        except DatadogRejected as exc:
            conns.transition(
                session,
                connection,
                ConnectionStatus.REAUTH_REQUIRED,
                f"token refresh refused ({exc.error or exc.status}: {exc.description}); "
                "the org must re-authorize",
            )
            log.warning("connection %s needs re-authorization: %s", connection.id, exc.error)
            return RefreshOutcome("gone", None)
        conns.store_grant(res.keyring, connection, grant)
        return RefreshOutcome("refreshed", connection.access_token_expires_at)


async def disconnect(res: Resources, connection_id: uuid.UUID) -> Connection:
    """Revoke the grant at Datadog, erase every secret, and mark the connection disconnected.

    If Datadog cannot be reached, nothing changes and `RevokeFailed` is raised, so the grant
    is never left alive at Datadog while forgotten here.
    """
    async with res.sessionmaker() as session, session.begin():
        connection = (
            await session.scalars(
                select(Connection).where(Connection.id == connection_id).with_for_update()
            )
        ).one_or_none()
        if connection is None:
            return await conns.get_connection(session, connection_id)
        token = conns.open_secret(res.keyring, connection, "refresh_token") or conns.open_secret(
            res.keyring, connection, "access_token"
        )
        reason = "disconnected by the partner; grant revoked at Datadog"
        if token is not None:
            site = res.sites.by_domain(connection.domain)
            try:
                await res.datadog.revoke(site, res.settings.client_for(site.domain), token)
            except DatadogUnavailable as exc:
                raise RevokeFailed(
                    f"could not revoke at Datadog ({exc.description}); nothing changed, try again"
                ) from exc
            except DatadogError as exc:
                reason = (
                    f"disconnected by the partner; Datadog refused the revoke: {exc.description}"
                )
        conns.erase_secrets(connection)
        conns.transition(session, connection, ConnectionStatus.DISCONNECTED, reason)
        return connection
