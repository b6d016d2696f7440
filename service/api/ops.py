"""Operations routes: liveness, readiness (database and Redis), Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import func, select, text

from service.api.deps import DrainDep, ResourcesDep
from service.metrics import Backlog, Pending, process_registry
from service.models import Connection, OutboxRow, utcnow

router = APIRouter(tags=["ops"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive and serving."""
    return {"status": "ok"}


class ReadinessOut(BaseModel):
    database: Literal["ok", "unavailable"]
    redis: Literal["ok", "unavailable"]
    status: Literal["draining"] | None = None


@router.get(
    "/readyz",
    responses={
        200: {"model": ReadinessOut, "description": "both answer"},
        503: {"model": ReadinessOut, "description": "one of them does not, or draining"},
    },
)
async def readyz(res: ResourcesDep, drain: DrainDep) -> JSONResponse:
    """200 when both PostgreSQL and Redis answer within 2 s, else 503 naming what failed;
    503 with `"status": "draining"` once the process is shutting down."""
    checks = {"database": _database(res), "redis": _redis(res)}
    results = await asyncio.gather(*checks.values(), return_exceptions=True)
    status = {
        name: "ok" if result is True else "unavailable"
        for name, result in zip(checks, results, strict=True)
    }
    ready = all(value == "ok" for value in status.values()) and not drain.draining
    if drain.draining:
        status["status"] = "draining"
    return JSONResponse(status, status_code=200 if ready else 503)


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(res: ResourcesDep) -> Response:
    """The API's counters (every API process's, with `PROMETHEUS_MULTIPROC_DIR`), plus the
    outbox backlog read from PostgreSQL now.

    The worker's delivery counters are served by each worker on
    `DDBRIDGE_WORKER_METRICS_PORT`.
    """
    backlog = await _read_backlog(res)
    body = generate_latest(process_registry()) + generate_latest(backlog)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


async def _read_backlog(res: ResourcesDep) -> Backlog:
    query = (
        select(
            Connection.domain,
            OutboxRow.signal,
            func.sum(OutboxRow.item_count),
            func.min(OutboxRow.accepted_at),
        )
        .join(Connection, Connection.id == OutboxRow.connection_id)
        .group_by(Connection.domain, OutboxRow.signal)
    )
    async with res.sessionmaker() as session:
        rows = (await session.execute(query)).all()
    return Backlog(
        (Pending(signal, domain, items, oldest) for domain, signal, items, oldest in rows), utcnow()
    )


async def _database(res: ResourcesDep) -> bool:
    async with asyncio.timeout(2), res.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    return True


async def _redis(res: ResourcesDep) -> bool:
    async with asyncio.timeout(2):
        return bool(await res.redis.ping())
