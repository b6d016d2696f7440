"""Typed reads from a customer's Datadog: a GET through the pass-through whose answer is judged
here, for routes that promise ddbridge's own errors rather than Datadog's answer as is."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson

from service.credentials import DatadogDown
from service.datadog.errors import DatadogUnavailable, error_from_response
from service.errors import ServiceError
from service.passthrough.forward import Outbound, forward
from service.resources import Resources


class ReadRefused(ServiceError):
    """Datadog refused the read although the token was just refreshed; nothing changed."""

    status_code = 403
    code = "operation_refused"


class ReadRejected(ServiceError):
    """Datadog refused the read as asked (a query parameter it does not take, say)."""

    status_code = 400
    code = "read_rejected"


async def read_through(res: Resources, connection_id: uuid.UUID, path: str, query: str) -> Any:
    """GET `path?query` on the org's API host through the pass-through; the JSON answer.

    Raises the pass-through's refusals (`MissingScope` and the rest, before any request),
    `ReadRefused` (403: not permitted even after a refresh; the connection stays as it was),
    `DatadogDown` (503: transient, or Datadog unreachable) or `ReadRejected` (400: Datadog
    refused the request itself, its `errors` passed on).
    """
    outbound = Outbound("GET", path, query, {"accept": "application/json"}, b"")
    answer = await forward(res, connection_id, outbound)
    if 200 <= answer.status < 300:
        return orjson.loads(answer.body)
    error = error_from_response(
        httpx.Response(answer.status, headers=answer.headers, content=answer.body)
    )
    if answer.refused_after_refresh:
        raise ReadRefused(
            f"Datadog refused this read after a token refresh ({answer.status}: "
            f"{error.description}); the connection is unchanged",
        )
    if isinstance(error, DatadogUnavailable):
        raise DatadogDown(
            f"Datadog could not answer: {error.description}", retry_after=error.retry_after
        )
    raise ReadRejected(
        f"Datadog refused this read ({answer.status}): {error.description}",
        errors=error.errors,
    )
