"""Rotating the encryption key online: re-seal every secret under the ring's first key, and
count which key protects how many secrets.

Put the new key first in `DDBRIDGE_ENCRYPTION_KEYS` (keeping the old ones after it), restart
the processes, run `ddbridge keys rotate`, then drop the old keys. Each connection is re-sealed
under its row lock, so a concurrent token refresh never interleaves with it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service import connections as conns
from service import credentials
from service.crypto import KeyRing, sealed_by
from service.models import Connection, OAuthFlow


async def rotate(sessionmaker: async_sessionmaker[AsyncSession], keyring: KeyRing) -> int:
    """Re-seal every secret not yet under the primary key; return how many were."""
    resealed = 0
    async with sessionmaker() as session:
        ids = (await session.scalars(select(Connection.id))).all()
    for connection_id in ids:
        async with sessionmaker() as session, session.begin():
            connection = await conns.lock(session, connection_id)
            if connection is not None:
                resealed += credentials.reseal(keyring, connection)
    async with sessionmaker() as session, session.begin():
        flows = await session.scalars(
            select(OAuthFlow).where(OAuthFlow.code_verifier.is_not(None)).with_for_update()
        )
        for flow in flows:
            resealed += credentials.reseal_verifier(keyring, flow)
    return resealed


@dataclass(frozen=True, slots=True)
class KeyUsage:
    key_id: str
    secrets: int
    role: str  # "sealing", "opening" (in the ring, not first) or "missing" (not in the ring)


async def status(
    sessionmaker: async_sessionmaker[AsyncSession], keyring: KeyRing
) -> list[KeyUsage]:
    """How many stored secrets each key id protects, every key of the ring included."""
    sealed_columns = (
        Connection.access_token,
        Connection.refresh_token,
        Connection.api_key,
        OAuthFlow.code_verifier,
    )
    counts: Counter[str] = Counter()
    async with sessionmaker() as session:
        for column in sealed_columns:
            values = await session.scalars(select(column).where(column.is_not(None)))
            counts.update(sealed_by(value) for value in values if value is not None)
    ring = keyring.key_ids()
    roles = {key: "sealing" if key == ring[0] else "opening" for key in ring}
    return [
        KeyUsage(key, counts.get(key, 0), roles.get(key, "missing"))
        for key in [*ring, *sorted(set(counts) - set(ring))]
    ]
