"""Connection views as the internal API and the CLI show them (never a secret)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from service import connections as conns
from service import deliveries
from service.api.schemas import ConnectionOut


async def connection_view(session: AsyncSession, connection_id: uuid.UUID) -> ConnectionOut:
    """One connection with its delivery counters and status history."""
    connection = await conns.get_connection(session, connection_id)
    stats = await deliveries.delivery_stats(session, [connection_id])
    events = list(await conns.history(session, connection_id))
    return ConnectionOut.of(connection, stats[connection_id], events)


async def connection_views(session: AsyncSession, account_id: str | None) -> list[ConnectionOut]:
    """Connections (all, or one account's) with their delivery counters."""
    found = await conns.list_connections(session, account_id)
    stats = await deliveries.delivery_stats(session, [c.id for c in found])
    return [ConnectionOut.of(c, stats[c.id]) for c in found]
