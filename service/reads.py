"""Reading from a customer's Datadog on the partner's behalf, within the granted scopes."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from service import connections as conns
from service import tokens
from service.datadog.errors import DatadogUnauthorized, DatadogUnavailable
from service.errors import ServiceError
from service.models import ConnectionStatus
from service.resources import Resources


class ReadRefused(ServiceError):
    status_code = 409
    code = "connection_not_readable"


class DatadogDown(ServiceError):
    status_code = 503
    code = "datadog_unavailable"


async def read_through(
    res: Resources, connection_id: uuid.UUID, path: str, params: dict[str, str]
) -> Any:
    """GET `path` on the org's API host with its token: refresh once on 401/403, retry once,
    then mark the connection `reauth_required` (409)."""
    try:
        return await _read(res, connection_id, path, params, refresh=False)
    except DatadogUnauthorized:
        pass
    try:
        return await _read(res, connection_id, path, params, refresh=True)
    except DatadogUnauthorized as exc:
        async with res.sessionmaker() as session, session.begin():
            connection = await conns.get_connection(session, connection_id)
            conns.transition(
                session,
                connection,
                ConnectionStatus.REAUTH_REQUIRED,
                f"Datadog refused the token after a refresh ({exc.description})",
            )
        raise ReadRefused(
            "Datadog refused this connection's token; the org must re-authorize",
            status=ConnectionStatus.REAUTH_REQUIRED,
        ) from exc


async def _read(
    res: Resources, connection_id: uuid.UUID, path: str, params: dict[str, str], *, refresh: bool
) -> Any:
    """One read with a token that is fresh (or forcibly refreshed when `refresh`)."""
    margin = timedelta(days=1) if refresh else timedelta(seconds=60)
    try:
        await tokens.refresh_connection(res, connection_id, margin=margin)
        async with res.sessionmaker() as session:
            connection = await conns.get_connection(session, connection_id)
        token = conns.open_secret(res.keyring, connection, "access_token")
        if connection.status != ConnectionStatus.ACTIVE or token is None:
            raise ReadRefused(
                f"the connection is {connection.status}",
                status=connection.status,
                status_reason=connection.status_reason,
            )
        return await res.datadog.read(res.sites.by_domain(connection.domain), path, token, params)
    except DatadogUnavailable as exc:
        raise DatadogDown(f"Datadog could not answer: {exc.description}") from exc
