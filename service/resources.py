"""The long-lived resources of a process, opened and closed in one place.

The FastAPI lifespan and the arq worker's start-up both call `open_resources`, so the API and
the worker share one engine, one arq pool and one Datadog HTTP client per process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from arq.connections import ArqRedis, RedisSettings, create_pool
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from service.budget import ByteBudget
from service.clients import ClientBook
from service.crypto import KeyRing
from service.datadog.client import DatadogClient, DatadogUrls
from service.db import create_engine, create_sessionmaker
from service.settings import Settings
from service.sites import SiteRegistry


@dataclass(frozen=True, slots=True)
class Resources:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    autocommit: async_sessionmaker[AsyncSession]
    """Sessions in autocommit, for reads and single-statement writes that need no transaction
    around them: each statement one round trip, without BEGIN and COMMIT or ROLLBACK."""
    redis: ArqRedis
    datadog: DatadogClient
    webhooks: httpx.AsyncClient
    keyring: KeyRing
    sites: SiteRegistry
    clients: ClientBook
    bodies: ByteBudget
    """Bytes of internal API bodies this process reads and handles at once."""


def redis_settings(settings: Settings) -> RedisSettings:
    return RedisSettings.from_dsn(settings.redis_url)


@asynccontextmanager
async def open_resources(
    settings: Settings, *, database_connections: int = 10
) -> AsyncIterator[Resources]:
    """Open everything a process needs; close it all on exit, in reverse order.

    `database_connections` is what the pool keeps open: as many as the process uses at once
    (past it, connections are opened and closed per use)."""
    keyring = settings.keyring()
    sites = SiteRegistry(settings.extra_sites)
    engine = create_engine(settings.database_url, pool_size=database_connections)
    redis = await create_pool(redis_settings(settings), default_queue_name=settings.queue_name)
    timeout = httpx.Timeout(settings.datadog_timeout_seconds, connect=5.0)
    try:
        async with (
            httpx.AsyncClient(
                timeout=timeout, follow_redirects=False, headers={"User-Agent": "ddbridge"}
            ) as http,
            httpx.AsyncClient(
                timeout=httpx.Timeout(10.0),
                follow_redirects=False,
                headers={"User-Agent": "ddbridge-webhooks"},
            ) as webhooks,
        ):
            yield Resources(
                settings=settings,
                engine=engine,
                sessionmaker=create_sessionmaker(engine),
                autocommit=create_sessionmaker(
                    engine.execution_options(isolation_level="AUTOCOMMIT")
                ),
                redis=redis,
                datadog=DatadogClient(
                    http,
                    DatadogUrls(
                        settings.datadog_url_template, settings.datadog_browser_url_template
                    ),
                ),
                webhooks=webhooks,
                keyring=keyring,
                sites=sites,
                clients=ClientBook(settings),
                bodies=ByteBudget(settings.body_budget_bytes),
            )
    finally:
        await redis.aclose()
        await engine.dispose()
