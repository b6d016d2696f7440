"""The arq worker: delivery and token-refresh jobs, and the crons that find work in PostgreSQL
(deliveries and refreshes to ring, webhook notifications to send).

`ddbridge worker` runs it with settings read at start-up. `arq worker.main.WorkerSettings`
also works for containers; arq needs its Redis address, queue and cron schedule on the class,
so only the first two are read, from `DDBRIDGE_REDIS_URL` and `DDBRIDGE_QUEUE_NAME`, when this
module is imported, and the refresh reconciler ticks each minute whatever
`DDBRIDGE_REFRESH_RECONCILE_SECONDS` says.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any, ClassVar

from arq import cron, func
from arq.connections import RedisSettings
from arq.cron import CronJob
from sqlalchemy import delete, or_, select

from service import credentials, jobs, webhooks
from service.credentials import RefreshResult
from service.dbcheck import check_database
from service.delivery.drain import Outcome, drain
from service.metrics import CRON_TICKS
from service.models import IdempotencyKey, OAuthFlow, OutboxRow, Partition, utcnow
from service.resources import Resources, open_resources
from service.settings import Settings, SettingsInvalid, load, refuse_to_start
from service.signals import IDEMPOTENCY_WINDOW, Signal
from worker import quiet
from worker.health import HealthPort, Heartbeat

log = logging.getLogger(__name__)

QUEUE_NAME = os.environ.get("DDBRIDGE_QUEUE_NAME", "ddbridge")

FLOW_RETENTION = timedelta(days=1)
TOKEN_CALLS_PER_WORKER = 4
"""Refresh jobs one worker runs at once; the rest of its `max_jobs` stay free for delivery."""
TOKEN_CALL_WAIT_SECONDS = 1.0
"""How long a refresh job waits for a free token call before handing its slot back."""
BUSY_RETRY = timedelta(seconds=2)
JOBS = 20
"""Jobs one worker runs at once. Most are drains, each a few round trips long and holding at
most one round (`ROUND_BYTES`) of rows: enough of them that small sends to many connections,
a drain per send, do not queue behind each other (measured: with 10, p99 accept-to-deliver
reached 4.9 s at 60 sends/s over 50 connections on a shared 2-vCPU box)."""
CRON_CONNECTIONS = 3
"""Database connections the crons (deliveries, refreshes, notify) may hold besides the jobs."""


def resources(ctx: dict[str, Any]) -> Resources:
    res: Resources = ctx["resources"]
    return res


CRONS = {name: f"{QUEUE_NAME}:{name}" for name in ("refreshes", "deliveries", "notify")}
"""arq's cron job ids omit the queue; naming them after it keeps deployments that share a
Redis database from swallowing each other's ticks."""


async def startup(ctx: dict[str, Any]) -> None:
    quiet.install(CRONS.values())
    stack = AsyncExitStack()
    ctx["stack"] = stack
    try:
        settings = load(Settings)
    except SettingsInvalid as invalid:  # `arq worker.main.WorkerSettings` would log a traceback
        refuse_to_start(invalid)
    problem = await check_database(settings.database_url)
    if problem is not None:  # run anyway: jobs fail and are rung again until it is fixed
        log.error("database check at start-up: %s", problem.cause)
    ctx["resources"] = await stack.enter_async_context(
        open_resources(settings, database_connections=JOBS + CRON_CONNECTIONS)
    )
    ctx["token_calls"] = asyncio.Semaphore(TOKEN_CALLS_PER_WORKER)
    if settings.worker_metrics_port is not None:
        heartbeat = Heartbeat()
        beating = asyncio.create_task(heartbeat.beat())
        stack.push_async_callback(_cancel, beating)
        port = HealthPort(settings.worker_metrics_host, settings.worker_metrics_port, heartbeat)
        stack.callback(port.close)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["stack"].aclose()


async def refresh_connection(ctx: dict[str, Any], connection_id: str) -> str:
    """Refresh one connection's token if it is due; ring its next refresh or its retry.

    The retry schedule lives on the connection (`credentials.refresh`), so this job only
    rings the doorbell for the time PostgreSQL names.
    """
    res = resources(ctx)
    margin = timedelta(seconds=res.settings.refresh_margin_seconds)
    connection = uuid.UUID(connection_id)
    token_calls: asyncio.Semaphore = ctx["token_calls"]
    try:
        await asyncio.wait_for(token_calls.acquire(), TOKEN_CALL_WAIT_SECONDS)
    except TimeoutError:  # a slow token endpoint must not keep the slots delivery needs
        await jobs.ring_refresh(res.redis, connection, utcnow() + BUSY_RETRY)
        return "busy"
    try:
        outcome = await credentials.refresh(
            res, connection, margin=margin * (1 + jobs.REFRESH_JITTER), wait=False
        )
    except credentials.SecretUnreadable:
        return "unreadable"  # shown on the connection; the reconciler tries again each minute
    finally:
        token_calls.release()
    if outcome.result is RefreshResult.DEFERRED and outcome.retry_at is not None:
        await jobs.ring_refresh(res.redis, connection, outcome.retry_at)
    elif outcome.expires_at is not None:
        await jobs.ring_refresh(
            res.redis, connection, jobs.refresh_time(outcome.expires_at, margin)
        )
    return outcome.result.value


async def deliver(ctx: dict[str, Any], connection_id: str, signal: str) -> str:
    """Drain one partition for a time slice, then ring its own continuation or retry.

    A job's id stays taken until it returns, so a job rings its follow-up under the other of
    two ids (`:a`, `:b`).
    """
    res = resources(ctx)
    partition = uuid.UUID(connection_id)
    result = await drain(res, partition, Signal(signal))
    suffix = ":b" if str(ctx.get("job_id", "")).endswith(":a") else ":a"
    if result.outcome is Outcome.MORE:
        await jobs.ring_delivery(res.redis, partition, signal, suffix=suffix)
    elif result.outcome is Outcome.PAUSED and result.retry_at is not None:
        delay = max(0.0, (result.retry_at - utcnow()).total_seconds())
        await jobs.ring_delivery(res.redis, partition, signal, delay, suffix=suffix)
    return result.outcome.value


async def reconcile_deliveries(ctx: dict[str, Any]) -> int:
    """Ring every partition with pending rows that nobody drains and nothing pauses.

    This is what makes Redis only a doorbell: lost jobs, a flushed Redis or a killed worker
    (its lease lapses) cost a few seconds, never data. The doorbell id names this tick: a
    killed job's id stays taken in Redis until arq's timeout, and must not block the rescue.
    """
    res = resources(ctx)
    now = utcnow()
    pending = (
        select(OutboxRow.connection_id, OutboxRow.signal)
        .distinct()
        .outerjoin(
            Partition,
            (Partition.connection_id == OutboxRow.connection_id)
            & (Partition.signal == OutboxRow.signal),
        )
        .where(
            or_(Partition.lease_until.is_(None), Partition.lease_until < now),
            or_(Partition.paused_until.is_(None), Partition.paused_until <= now),
        )
    )
    async with res.sessionmaker() as session:
        partitions = (await session.execute(pending)).all()
    tick = f":reconcile:{int(now.timestamp())}"
    for connection_id, signal in partitions:
        await jobs.ring_delivery(res.redis, connection_id, signal, suffix=tick)
    CRON_TICKS.labels(cron="deliveries").inc()
    return len(partitions)


async def notify(ctx: dict[str, Any]) -> int:
    """Send pending webhook events to the partner's webhook (if configured), in order."""
    sent = await webhooks.notify(resources(ctx))
    CRON_TICKS.labels(cron="notify").inc()
    return sent


async def reconcile_refreshes(ctx: dict[str, Any]) -> int:
    """Ring a refresh for every connection whose token is due and whose retry time has come
    (covers lost Redis jobs), spread until the next tick at `REFRESH_RATE_PER_SITE` a second
    per Datadog site; purge expired flows, idempotency keys and old webhook events."""
    res = resources(ctx)
    margin = timedelta(seconds=res.settings.refresh_margin_seconds)
    rate = res.settings.refresh_rate_per_site
    until_next_tick = res.settings.refresh_reconcile_seconds
    async with res.sessionmaker() as session:
        due = await credentials.due_for_refresh(
            session, margin, limit_per_site=rate * until_next_tick
        )
        await session.execute(
            delete(OAuthFlow).where(OAuthFlow.expires_at < utcnow() - FLOW_RETENTION)
        )
        await session.execute(
            delete(IdempotencyKey).where(IdempotencyKey.created_at < utcnow() - IDEMPOTENCY_WINDOW)
        )
        await webhooks.purge(session)
        await session.commit()
    now = utcnow()
    for connection_id, place in due:
        # Spread each site's refreshes until the next tick at `rate` per second.
        at = now + timedelta(seconds=place / rate)
        await jobs.ring_refresh(res.redis, connection_id, at, due=True)
    CRON_TICKS.labels(cron="refreshes").inc()
    return len(due)


def crons(*, refresh_reconcile_seconds: int) -> list[CronJob]:
    """The worker's crons; the refresh reconciler ticks every `refresh_reconcile_seconds`
    (`DDBRIDGE_REFRESH_RECONCILE_SECONDS`, a divisor of 60) past the minute."""
    return [
        cron(
            reconcile_refreshes,
            name=CRONS["refreshes"],
            second=set(range(0, 60, refresh_reconcile_seconds)),
            run_at_startup=True,
        ),
        cron(
            reconcile_deliveries,
            name=CRONS["deliveries"],
            second=set(range(0, 60, 5)),
            run_at_startup=True,
        ),
        # Ticks overlap while a run waits on a slow receiver; the later ones find the sender's
        # advisory lock taken and return at once. (Not a fixed job id: arq keeps a cron job's
        # in-progress key 60 s after it ends, so the sender would run once a minute.)
        cron(notify, name=CRONS["notify"], second=set(range(0, 60, 5))),
    ]


class WorkerSettings:
    """arq's entry point (see the module docstring for why `redis_settings` is read here)."""

    # A doorbell's id must be free again as soon as its job ends: no kept result.
    # A killed job's id is taken until its timeout: keep it close to a drain's real length.
    functions: ClassVar = [
        func(deliver, keep_result=0, timeout=60),
        func(refresh_connection, keep_result=0),
    ]
    cron_jobs: ClassVar = crons(refresh_reconcile_seconds=60)
    on_startup = startup
    on_shutdown = shutdown
    # SIGTERM: take no new job, let running ones finish for this long, then cancel them (a
    # cancelled drain hands its partition back at once). `ddbridge worker` uses
    # DDBRIDGE_WORKER_SHUTDOWN_SECONDS instead.
    job_completion_wait = 20
    redis_settings = RedisSettings.from_dsn(
        os.environ.get("DDBRIDGE_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    queue_name = QUEUE_NAME
    max_jobs = JOBS
    keep_result = 60
