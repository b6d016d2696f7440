"""Doorbells: `service.jobs` queues arq's own jobs, in one round trip, deduplicated as arq's
`enqueue_job` deduplicates them (real Redis)."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import result_key_prefix
from arq.jobs import Job

from service import jobs


@pytest.fixture
async def redis(service_urls: tuple[str, str]) -> AsyncIterator[ArqRedis]:
    queue = f"ddbridge-test-jobs-{secrets.token_hex(4)}"
    pool = await create_pool(RedisSettings.from_dsn(service_urls[1]), default_queue_name=queue)
    try:
        yield pool
    finally:
        await pool.delete(queue)
        await pool.aclose()


async def _queued(redis: ArqRedis) -> list[tuple[str, float]]:
    found = await redis.zrange(redis.default_queue_name, 0, -1, withscores=True)
    return [(member.decode(), score) for member, score in found]


async def test_a_delivery_doorbell_is_an_arq_job_queued_once_while_it_waits(
    redis: ArqRedis,
) -> None:
    connection_id = uuid.uuid4()
    before = time.time() * 1000 - 1  # arq's clock is whole milliseconds
    await jobs.ring_delivery(redis, connection_id, "logs", 2.5)
    await jobs.ring_delivery(redis, connection_id, "logs", 2.5)  # already queued: nothing new
    after = time.time() * 1000 + 1

    [(job_id, score)] = await _queued(redis)
    assert job_id == f"deliver:{connection_id}:logs"
    assert before + 2500 <= score <= after + 2500
    info = await Job(job_id, redis, _queue_name=redis.default_queue_name).info()
    assert info is not None  # arq reads it as its own
    assert (info.function, info.args, info.kwargs) == ("deliver", (str(connection_id), "logs"), {})
    assert await redis.pttl(f"arq:job:{job_id}") > 86_400_000  # arq's day, plus the wait


async def test_a_doorbell_whose_job_left_a_result_is_not_rung_again(redis: ArqRedis) -> None:
    connection_id = uuid.uuid4()
    await redis.set(f"{result_key_prefix}deliver:{connection_id}:metrics", b"kept")
    await jobs.ring_delivery(redis, connection_id, "metrics")
    assert await _queued(redis) == []


async def test_a_refresh_is_queued_for_its_moment(redis: ArqRedis) -> None:
    connection_id = uuid.uuid4()
    at = datetime.now(UTC) + timedelta(minutes=3)
    await jobs.ring_refresh(redis, connection_id, at)
    await jobs.ring_refresh(redis, connection_id, at, due=True)
    moment = int(at.timestamp() * 1000)
    assert dict(await _queued(redis)) == {
        f"refresh_connection:{connection_id}:{moment}": pytest.approx(moment, abs=1),
        f"refresh_connection:{connection_id}:due": pytest.approx(moment, abs=1),
    }
