"""Connections: lookup, locks and status transitions with their history.

A connection is one customer org (domain + `dd_oid`) for a partner account. Its secrets are
handled only by `service.credentials`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from service import webhooks
from service.errors import NotFound
from service.models import Connection, ConnectionEvent, ConnectionStatus


async def get_connection(session: AsyncSession, connection_id: uuid.UUID) -> Connection:
    connection = await session.get(Connection, connection_id)
    if connection is None:
        raise NotFound(f"no connection with id {connection_id}")
    return connection


async def list_connections(session: AsyncSession, account_id: str | None) -> Sequence[Connection]:
    query = select(Connection).order_by(Connection.created_at, Connection.id)
    if account_id is not None:
        query = query.where(Connection.account_id == account_id)
    return (await session.scalars(query)).all()


async def lock(session: AsyncSession, connection_id: uuid.UUID) -> Connection | None:
    """The connection, row-locked until the transaction ends (None if there is none)."""
    query = select(Connection).where(Connection.id == connection_id).with_for_update()
    return (await session.scalars(query)).one_or_none()


async def lock_org(session: AsyncSession, domain: str, dd_org_id: str) -> None:
    """Serialize everything that binds a grant to this org until the transaction ends."""
    await session.execute(
        select(func.pg_advisory_xact_lock(func.hashtextextended(f"org:{domain}:{dd_org_id}", 0)))
    )


async def find_by_org(
    session: AsyncSession, domain: str, dd_org_id: str, account_id: str
) -> Connection | None:
    """The org's live connection (whoever's), else `account_id`'s latest disconnected one.

    Locked for update: re-authorization updates it in place.
    """
    query = (
        select(Connection)
        .where(
            Connection.domain == domain,
            Connection.dd_org_id == dd_org_id,
            or_(
                Connection.status != ConnectionStatus.DISCONNECTED,
                Connection.account_id == account_id,
            ),
        )
        .order_by(Connection.status == ConnectionStatus.DISCONNECTED, Connection.updated_at.desc())
        .limit(1)
        .with_for_update()
    )
    return (await session.scalars(query)).one_or_none()


async def history(session: AsyncSession, connection_id: uuid.UUID) -> Sequence[ConnectionEvent]:
    query = (
        select(ConnectionEvent)
        .where(ConnectionEvent.connection_id == connection_id)
        .order_by(ConnectionEvent.id)
    )
    return (await session.scalars(query)).all()


def record_creation(session: AsyncSession, connection: Connection) -> None:
    """The first entry of a new connection's history (from no status), and its webhook event."""
    reason = connection.status_reason or "created"
    session.add(
        ConnectionEvent(
            connection_id=connection.id,
            from_status=None,
            to_status=connection.status,
            reason=reason,
        )
    )
    webhooks.record_transition(session, connection, None, reason)


def transition(
    session: AsyncSession, connection: Connection, status: ConnectionStatus, reason: str
) -> None:
    """Move to `status` with `reason`, recording the transition (also a same-status reason)
    and its webhook event. Callers hold the connection's row lock, so one connection's
    transitions are recorded, and sent, in the order they happen."""
    if connection.status == status and connection.status_reason == reason:
        return
    from_status = connection.status
    session.add(
        ConnectionEvent(
            connection_id=connection.id,
            from_status=from_status,
            to_status=status,
            reason=reason,
        )
    )
    connection.status = status
    connection.status_reason = reason
    webhooks.record_transition(session, connection, from_status, reason)
