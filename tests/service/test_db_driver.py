"""`service.db.driver`: hot statements on asyncpg directly, with SQLAlchemy's errors and a
broken connection never handed out again (real PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from service.db import create_engine, driver


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=1)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _backend(engine: AsyncEngine) -> int:
    async with engine.connect() as db, driver(db) as raw:
        pid = await raw.fetchval("SELECT pg_backend_pid()")
    assert isinstance(pid, int)
    return pid


async def test_a_statement_joins_the_transaction_sqlalchemy_began(engine: AsyncEngine) -> None:
    async with engine.connect() as db:
        await db.execute(text("CREATE TEMPORARY TABLE t (n integer)"))  # SQLAlchemy's BEGIN
        async with driver(db) as raw:
            await raw.execute("INSERT INTO t VALUES (1)")
        await db.rollback()
        async with driver(db) as raw:
            exists = await raw.fetchval("SELECT to_regclass('pg_temp.t') IS NOT NULL")
    assert exists is False  # the rollback took the driver's insert with it


async def _failing(engine: AsyncEngine, statement: str) -> DBAPIError:
    """What running `statement` on the driver raises (it must fail)."""
    async with engine.connect() as db:
        with pytest.raises(DBAPIError) as failed:
            async with driver(db) as raw:
                await raw.execute(statement)
    return failed.value


async def test_a_refused_statement_is_sqlalchemys_error_and_keeps_the_connection(
    engine: AsyncEngine,
) -> None:
    first = await _backend(engine)
    refused = await _failing(engine, "SELECT 1 / 0")
    assert isinstance(refused.orig, asyncpg.DivisionByZeroError)
    assert not refused.connection_invalidated
    assert await _backend(engine) == first


async def test_a_lost_connection_is_invalidated_and_the_pool_opens_another(
    engine: AsyncEngine,
) -> None:
    first = await _backend(engine)
    lost = await _failing(engine, "SELECT pg_terminate_backend(pg_backend_pid())")
    assert lost.connection_invalidated
    assert await _backend(engine) != first  # a new connection, not the dead one again
