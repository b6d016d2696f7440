"""Names and enqueueing of worker jobs, shared by the API and the worker.

Redis only rings the doorbell: every job is safe to run twice and is deduplicated by its
id; losing a job loses nothing because the worker's cron finds due work in PostgreSQL.
So a doorbell rung after a commit (`*_or_log`) logs a Redis outage instead of failing.

A ring is arq's `enqueue_job` in one round trip (`_enqueue`): arq's own is WATCH, EXISTS,
then MULTI/PSETEX/ZADD/EXEC (three round trips, and UNWATCH when the job exists), which a
500-item send paid for every doorbell. The job it stores is arq's, for arq's worker.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Awaitable
from datetime import datetime, timedelta

from arq.connections import ArqRedis
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms, to_unix_ms
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

REFRESH_CONNECTION = "refresh_connection"
DELIVER = "deliver"


REFRESH_JITTER = 0.25
"""A refresh is rung up to this fraction of the margin early, so tokens issued together are
not refreshed together; the refresh job treats that whole window as due."""


def refresh_time(expires_at: datetime, margin: timedelta) -> datetime:
    """When to refresh a token: `margin` before expiry, up to `REFRESH_JITTER` earlier."""
    return expires_at - margin * (1 + random.uniform(0, REFRESH_JITTER))  # noqa: S311 (jitter)


async def ring_refresh(
    redis: ArqRedis, connection_id: uuid.UUID, at: datetime, *, due: bool = False
) -> None:
    """Ring the worker to refresh the connection at `at`.

    The id names the millisecond: a running refresh holds its own id until it returns, so
    the next ring, rung from inside it, must never collide with it. The reconciler rings
    `due` connections under one id per connection instead, so a connection it rang a minute
    ago and whose refresh has not run yet (a long queue) is not rung twice.
    """
    moment = "due" if due else int(at.timestamp() * 1000)
    job_id = f"{REFRESH_CONNECTION}:{connection_id}:{moment}"
    await _enqueue(redis, REFRESH_CONNECTION, str(connection_id), job_id=job_id, at=to_unix_ms(at))


async def ring_delivery(
    redis: ArqRedis,
    connection_id: uuid.UUID,
    signal: str,
    defer_seconds: float = 0,
    *,
    suffix: str = "",
) -> None:
    """Ring the partition's doorbell (deduplicated while one is queued).

    `suffix` names a different doorbell: a draining job rings `next` or `retry` for itself,
    since its own id is taken until it returns.
    """
    job_id = f"{DELIVER}:{connection_id}:{signal}{suffix}"
    at = timestamp_ms() + round(defer_seconds * 1000)
    await _enqueue(redis, DELIVER, str(connection_id), signal, job_id=job_id, at=at)


async def ring_delivery_or_log(
    redis: ArqRedis, connection_id: uuid.UUID, signal: str, defer_seconds: float
) -> None:
    """`ring_delivery` after a commit; if Redis is down, the reconciler rings it."""
    await _or_log(
        ring_delivery(redis, connection_id, signal, defer_seconds),
        f"delivery of {connection_id}/{signal}",
    )


async def ring_refresh_or_log(redis: ArqRedis, connection_id: uuid.UUID, at: datetime) -> None:
    """`ring_refresh` after a commit; if Redis is down, the reconciler rings it."""
    await _or_log(ring_refresh(redis, connection_id, at), f"refresh of {connection_id}")


async def _or_log(ring: Awaitable[None], what: str) -> None:
    try:
        await ring
    except (RedisError, OSError) as exc:
        log.warning("could not ring %s (%s); the reconciler will", what, type(exc).__name__)


_ENQUEUE = """
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('PSETEX', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
return 1
"""
"""arq's enqueue as one atomic script. KEYS: the job, its result, the queue; ARGV: the job's
time to live (ms), the job, when it runs (the queue's score, epoch ms), its id."""


async def _enqueue(redis: ArqRedis, function: str, *args: str, job_id: str, at: int) -> None:
    """Queue `function(*args)` to run at `at` (epoch ms) as arq's `enqueue_job` does, unless
    a job or a kept result with `job_id` exists."""
    now = timestamp_ms()
    job = serialize_job(function, args, {}, None, now, serializer=redis.job_serializer)
    await redis.register_script(_ENQUEUE)(
        keys=[job_key_prefix + job_id, result_key_prefix + job_id, redis.default_queue_name],
        args=[at - now + redis.expires_extra_ms, job, at, job_id],
    )
