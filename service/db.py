"""Database plumbing: the async engine, sessions, and running Alembic migrations."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_engine(database_url: str, *, pool_size: int = 10, pre_ping: bool = True) -> AsyncEngine:
    """An asyncpg engine. With `pre_ping`, each checkout first checks its connection (one
    round trip), so a restarted database costs no failed request; without it, the first use
    of each stale connection fails and the pool replaces it (the worker's choice: its jobs
    are retried, and it makes many short checkouts)."""
    return create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=pre_ping,
        pool_timeout=5,
        connect_args={"timeout": 5, "command_timeout": 30},
    )


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
