"""Reading from a customer's Datadog on the partner's behalf, within the granted scopes."""

from __future__ import annotations

import uuid
from typing import Any

from service import credentials
from service.credentials import DatadogDown, GrantGone, NotDeliverable, OperationRefused
from service.datadog.errors import DatadogRejected, DatadogUnavailable
from service.errors import ServiceError
from service.resources import Resources


class ReadRefused(ServiceError):
    """Datadog refused the read although the token was just refreshed; nothing changed."""

    status_code = 403
    code = "operation_refused"


class ReadRejected(ServiceError):
    """Datadog refused the read as asked (a query parameter it does not take, say)."""

    status_code = 400
    code = "read_rejected"


async def read_through(
    res: Resources, connection_id: uuid.UUID, path: str, scope: str, params: dict[str, str]
) -> Any:
    """GET `path` on the org's API host with its token, if the grant holds `scope`.

    Raises `MissingScope` (403, before any request), `NotDeliverable` (409), `ReadRefused`
    (403: not permitted even after a refresh; the connection stays as it was),
    `ReadRejected` (400: Datadog refused the request itself) or `DatadogDown` (503).
    """
    creds = await _opened(res, connection_id, scope)
    try:
        return await credentials.call_with_bearer(
            res, creds, lambda auth: res.datadog.read(creds.site, path, auth, params)
        )
    except OperationRefused as refused:
        raise ReadRefused(
            f"Datadog refused this read after a token refresh ({refused.refusal.status}: "
            f"{refused.refusal.description}); the connection is unchanged",
        ) from refused
    except GrantGone as gone:
        raise NotDeliverable("the org must re-authorize; nothing was read") from gone
    except DatadogUnavailable as exc:
        raise DatadogDown(f"Datadog could not answer: {exc.description}") from exc
    except DatadogRejected as exc:
        raise ReadRejected(
            f"Datadog refused this read ({exc.status}): {exc.description}", errors=exc.errors
        ) from exc


async def _opened(
    res: Resources, connection_id: uuid.UUID, scope: str
) -> credentials.OrgCredentials:
    try:
        return await credentials.open_for_scope(res, connection_id, scope)
    except GrantGone as gone:
        raise NotDeliverable("the org must re-authorize; nothing was read") from gone
    except DatadogUnavailable as exc:
        raise DatadogDown(f"Datadog could not answer: {exc.description}") from exc
