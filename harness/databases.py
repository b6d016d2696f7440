"""PostgreSQL chores shared by the tests and the benchmarks: the asyncpg form of a URL and
one administrative statement (CREATE/DROP DATABASE) on a connection of its own."""

from __future__ import annotations

import asyncpg


def asyncpg_dsn(url: str) -> str:
    """`url` as asyncpg takes it (SQLAlchemy's `postgresql+asyncpg://` scheme dropped)."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def admin_execute(admin_url: str, statement: str) -> None:
    """Run `statement` on its own connection to `admin_url` (outside any transaction, as
    CREATE DATABASE needs)."""
    connection = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()
