"""Names and enqueueing of worker jobs, shared by the API and the worker.

Redis only rings the doorbell: every job is safe to run twice and is deduplicated by
`_job_id`; losing a job loses nothing because the worker's cron finds due work in PostgreSQL.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from arq.connections import ArqRedis

REFRESH_CONNECTION = "refresh_connection"


async def schedule_refresh(
    redis: ArqRedis, connection_id: uuid.UUID, expires_at: datetime, margin: timedelta
) -> None:
    """Ring the worker to refresh the connection's token `margin` before it expires."""
    await redis.enqueue_job(
        REFRESH_CONNECTION,
        str(connection_id),
        _job_id=f"{REFRESH_CONNECTION}:{connection_id}:{int(expires_at.timestamp())}",
        _defer_until=expires_at - margin,
    )
