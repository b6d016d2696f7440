"""Database plumbing: the async engine, sessions, the driver for hot statements, and running
Alembic migrations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_engine(database_url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An asyncpg engine without pre-ping: after a database restart, the first use of each
    stale pooled connection fails (the API answers 503, a worker job is rung again) and the
    pool replaces it, instead of every checkout paying a round trip to check."""
    return create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=5,
        connect_args={"timeout": 5, "command_timeout": 30},
    )


@asynccontextmanager
async def driver(db: AsyncConnection) -> AsyncIterator[asyncpg.Connection[asyncpg.Record]]:
    """The asyncpg connection under `db`, for the hottest statements, written in asyncpg's SQL
    (`$1`, `$2`, ...): SQLAlchemy's work around a statement (execution context, parameter and
    result processing, the greenlet) costs more CPU than asyncpg's own (bench/RESULTS.md,
    issue 11). The block holds the driver's calls and nothing else.

    Its statements are part of whatever transaction `db` is in (the same server connection):
    none in autocommit, SQLAlchemy's once it began one. An error is raised as SQLAlchemy
    raises it (`DBAPIError` around the driver's), so callers and the API's 503 see one kind.
    Unless PostgreSQL refused the statement itself (the connection still in step), the
    connection is invalidated, so the pool never hands out one whose operation broke off.
    """
    connection = (await db.get_raw_connection()).driver_connection
    assert isinstance(connection, asyncpg.Connection)
    try:
        yield connection
    except BaseException as exc:
        lost = not isinstance(exc, asyncpg.PostgresError) or connection_failure(exc.sqlstate)
        if lost:
            await asyncio.shield(db.invalidate(exc))
        if isinstance(exc, DRIVER_ERRORS):
            raise DBAPIError(None, None, exc, connection_invalidated=lost) from exc
        raise


DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)
"""What asyncpg raises of its own (the rest are OS errors and timeouts, raised as they are)."""


def connection_failure(sqlstate: str) -> bool:
    """SQLSTATE classes 08 (connection exception) and 57P (the server going away)."""
    return sqlstate.startswith(("08", "57P"))


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded attributes after commit (no lazy loads in async code)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def migrate(database_url: str, revision: str = "head") -> None:
    """Upgrade the schema to `revision` with Alembic (the only way the schema changes).

    Runs its own event loop (Alembic's env.py calls `asyncio.run`), so call it from
    synchronous code or a worker thread.
    """
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    command.upgrade(config, revision)
