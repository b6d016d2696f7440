"""The internal API the partner backend calls (bearer token required on every route)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Query, Request

from service import connections as conns
from service import credentials, deliveries, jobs, onboarding
from service.api.deps import ResourcesDep, SessionDep
from service.api.guard import internal_router
from service.api.schemas import (
    AuthorizationOut,
    AuthorizationRequest,
    ConnectionOut,
    DeadLetterOut,
    ReplayedOut,
    ReplayRequest,
    Text,
    VerifyOut,
    error_answers,
)
from service.api.views import connection_view, connection_views
from service.reads import read_through
from service.verify import verify

router = internal_router("internal")


@router.post("/authorizations", status_code=201)
async def create_authorization(
    body: AuthorizationRequest, res: ResourcesDep, session: SessionDep
) -> AuthorizationOut:
    """A single-use link that sends the signed-in user's browser to Datadog to authorize."""
    authorization = await onboarding.create_authorization(
        session,
        res.settings,
        res.sites,
        account_id=body.account_id,
        account_label=body.account_label,
        site=body.site,
        domain=body.domain,
        return_to=body.return_to,
    )
    return AuthorizationOut(
        authorize_url=authorization.authorize_url, expires_at=authorization.expires_at
    )


@router.get("/connections")
async def list_connections(
    session: SessionDep, account_id: Annotated[Text | None, Query(max_length=200)] = None
) -> list[ConnectionOut]:
    """Connections (all, or one account's) with their delivery counters."""
    return await connection_views(session, account_id)


@router.get("/connections/{connection_id}", responses=error_answers(404))
async def get_connection(connection_id: uuid.UUID, session: SessionDep) -> ConnectionOut:
    """One connection with its delivery counters and status history."""
    return await connection_view(session, connection_id)


@router.delete("/connections/{connection_id}", responses=error_answers(404))
async def delete_connection(
    connection_id: uuid.UUID, res: ResourcesDep, session: SessionDep
) -> ConnectionOut:
    """Revoke the grant at Datadog, erase the secrets, and mark it `disconnected`."""
    await credentials.disconnect(res, connection_id)
    return await connection_view(session, connection_id)


@router.get("/connections/{connection_id}/dead_letters", responses=error_answers(404))
async def list_dead_letters(
    connection_id: uuid.UUID, session: SessionDep, limit: int = Query(default=100, ge=1, le=1000)
) -> list[DeadLetterOut]:
    """What Datadog refused or what expired, newest first, with the reason."""
    await conns.get_connection(session, connection_id)
    letters = await deliveries.dead_letters(session, connection_id, limit=limit)
    return [DeadLetterOut.of(letter) for letter in letters]


@router.post("/connections/{connection_id}/dead_letters/replay", responses=error_answers(404))
async def replay_dead_letters(
    connection_id: uuid.UUID, body: ReplayRequest, res: ResourcesDep, session: SessionDep
) -> list[ReplayedOut]:
    """Put dead letters back in the outbox (all not yet replayed, or the given ids)."""
    await conns.get_connection(session, connection_id)
    replayed = await deliveries.replay(session, connection_id, body.ids)
    for cid, signal, _ in replayed:
        await jobs.ring_delivery_or_log(res.redis, cid, signal, res.settings.linger_seconds)
    return [ReplayedOut(signal=signal, items=items) for _, signal, items in replayed]


@router.post("/connections/{connection_id}/verify", responses=error_answers(404))
async def verify_connection(
    connection_id: uuid.UUID, res: ResourcesDep, session: SessionDep
) -> VerifyOut:
    """Datadog's review checks: the token refreshes, the key validates, each used scope works."""
    await conns.get_connection(session, connection_id)
    return VerifyOut.of(connection_id, await verify(res, connection_id))


@router.get("/connections/{connection_id}/monitors", responses=error_answers(400, 403, 404, 409))
async def list_monitors(connection_id: uuid.UUID, request: Request, res: ResourcesDep) -> Any:
    """The org's monitors, read with its token (scope `monitors_read`); query passed through.
    The same read as the pass-through's `GET .../datadog/api/v1/monitor`, with ddbridge's
    errors instead of Datadog's answer."""
    return await read_through(
        res, connection_id, "/api/v1/monitor", request.scope["query_string"].decode("latin-1")
    )
