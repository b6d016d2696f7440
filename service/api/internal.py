"""The internal API the partner backend calls (bearer token required on every route)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query

from service import connections as conns
from service import onboarding, tokens
from service.api.deps import Internal, ResourcesDep, SessionDep
from service.api.schemas import AuthorizationOut, AuthorizationRequest, ConnectionOut
from service.errors import InvalidInput
from service.sites import UnknownSiteError

router = APIRouter(prefix="/internal/v1", dependencies=[Internal], tags=["internal"])


@router.post("/authorizations", status_code=201)
async def create_authorization(
    body: AuthorizationRequest, res: ResourcesDep, session: SessionDep
) -> AuthorizationOut:
    """A single-use link that sends the signed-in user's browser to Datadog to authorize."""
    try:
        authorization = await onboarding.create_authorization(
            session,
            res.settings,
            res.sites,
            account_id=body.account_id,
            site=body.site,
            domain=body.domain,
            return_to=body.return_to,
        )
    except UnknownSiteError as exc:
        raise InvalidInput(
            str(exc), problems=[{"pointer": f"/{exc.field}", "reason": exc.reason}]
        ) from exc
    return AuthorizationOut(
        authorize_url=authorization.authorize_url, expires_at=authorization.expires_at
    )


@router.get("/connections")
async def list_connections(
    session: SessionDep, account_id: str | None = Query(default=None, max_length=200)
) -> list[ConnectionOut]:
    return [ConnectionOut.of(c) for c in await conns.list_connections(session, account_id)]


@router.get("/connections/{connection_id}")
async def get_connection(connection_id: uuid.UUID, session: SessionDep) -> ConnectionOut:
    """One connection with its status history."""
    connection = await conns.get_connection(session, connection_id)
    return ConnectionOut.of(connection, list(await conns.history(session, connection_id)))


@router.delete("/connections/{connection_id}")
async def delete_connection(connection_id: uuid.UUID, res: ResourcesDep) -> ConnectionOut:
    """Revoke the grant at Datadog, erase the secrets, and mark it `disconnected`."""
    return ConnectionOut.of(await tokens.disconnect(res, connection_id))
