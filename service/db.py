"""Database plumbing: the async engine, sessions, and running Alembic migrations."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
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


def database_is_down(exc: BaseException) -> bool:
    """Whether an error means PostgreSQL is unreachable, shutting down or starting up
    (SQLSTATE classes 08 and 57P), as opposed to a bug or a constraint violation."""
    if isinstance(exc, (OperationalError, InterfaceError, PoolTimeoutError, OSError)):
        return True
    if isinstance(exc, DBAPIError):
        sqlstate = getattr(exc.orig, "sqlstate", None) or ""
        return exc.connection_invalidated or sqlstate.startswith(("08", "57P"))
    return False


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
