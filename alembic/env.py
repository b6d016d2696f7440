"""Alembic environment: runs migrations online over asyncpg against DDBRIDGE_DATABASE_URL.

The URL comes from the Alembic config's `sqlalchemy.url` when the caller set one (as
`service.db.migrate` does), else from the environment; it is never hard-coded.
"""

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from service.models import Base

config = context.config


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("DDBRIDGE_DATABASE_URL")
    if not url:
        raise RuntimeError("set DDBRIDGE_DATABASE_URL to migrate")
    return url


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = create_async_engine(_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
asyncio.run(_run_online())
