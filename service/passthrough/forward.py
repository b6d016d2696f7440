"""Forwarding one request to the org's Datadog with its OAuth token, within its granted scopes.

The rules:

- Refused before any request: a method and path no operation of the definitions has (404),
  an operation Datadog takes no OAuth token for or serves on other hosts (403), a connection
  that cannot make Bearer calls (409), a scope the grant lacks (403 `missing_scope`).
- Forwarded as is: method, path, query, body, `Content-Type`, `Content-Encoding` and `Accept`.
  No other header of the caller's goes to Datadog (its internal token, API or application
  keys, cookies); the only credential sent is the org's token, from the credential door.
- Datadog's status and body come back as they are, with `Content-Type`, `Retry-After` and
  the `X-RateLimit-*` headers. A 401 or 403 is retried once after a refresh (the credential
  door's rule); a refusal after a successful refresh comes back as Datadog answered it and
  never changes the connection's status.
- Every call leaves one audit line (connection, operation, status, duration; never a secret,
  a path or a query) and counts in `ddbridge_passthrough_calls`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from service import credentials
from service.credentials import DatadogDown, GrantGone, NotDeliverable, OperationRefused
from service.datadog.errors import DatadogUnauthorized, DatadogUnavailable
from service.errors import ServiceError
from service.metrics import PASSTHROUGH_CALLS
from service.passthrough.table import Operation, operation_table
from service.resources import Resources

audit = logging.getLogger("ddbridge.audit")

FORWARDED_HEADERS = ("content-type", "content-encoding", "accept")
"""The caller's headers that go to Datadog with the request (the body needs them)."""
RETURNED_HEADERS = ("content-type", "retry-after")
RETURNED_PREFIX = "x-ratelimit-"


@dataclass(frozen=True, slots=True)
class Outbound:
    """A request for Datadog as the caller sent it: `path` and `query` still percent-encoded,
    `headers` with lower-case names (only `FORWARDED_HEADERS` are used)."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Answer:
    """Datadog's answer to hand back: status, the returned headers, the body (decoded)."""

    operation: Operation
    status: int
    headers: dict[str, str]
    body: bytes = field(repr=False)
    refused_after_refresh: bool = False


class _Refusal(DatadogUnauthorized):
    """A 401/403 answer, kept whole so that a refusal after the refresh goes back as is."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"Datadog answered {response.status_code}", status=response.status_code)
        self.response = response


async def forward(res: Resources, connection_id: uuid.UUID, outbound: Outbound) -> Answer:
    """Forward `outbound` for the connection, as the module docstring says.

    Raises the `ServiceError` of a refusal (`UnknownOperation`, `NotOAuth`, `NotOnApiHost`,
    `MissingScope`, `NotDeliverable`, `SecretUnreadable`) or `DatadogDown` (503) when Datadog
    could not be reached or the token could not be refreshed now.
    """
    started = time.perf_counter()
    name, status = "unknown", 500
    try:
        operation = operation_table().match(outbound.method, outbound.path)
        name = operation.name
        answer = await _forward(res, connection_id, operation, outbound)
    except ServiceError as exc:
        status = exc.status_code
        raise
    else:
        status = answer.status
        return answer
    finally:
        elapsed_ms = (time.perf_counter() - started) * 1000
        PASSTHROUGH_CALLS.labels(operation=name, status=str(status)).inc()
        audit.info(
            "passthrough connection=%s operation=%s status=%d duration_ms=%.1f",
            connection_id,
            name,
            status,
            elapsed_ms,
        )


async def _forward(
    res: Resources, connection_id: uuid.UUID, operation: Operation, outbound: Outbound
) -> Answer:
    alternatives = operation.oauth_scopes()
    try:
        creds = await credentials.open_for_scopes(res, connection_id, alternatives)
        forwarded = {
            name: outbound.headers[name] for name in FORWARDED_HEADERS if name in outbound.headers
        }

        async def attempt(auth: dict[str, str]) -> httpx.Response:
            response = await res.datadog.forward(
                creds.site,
                outbound.method,
                outbound.path,
                outbound.query,
                headers={**forwarded, **auth},
                body=outbound.body,
            )
            if response.status_code in (401, 403):
                raise _Refusal(response)
            return response

        try:
            return _answer(operation, await credentials.call_with_bearer(res, creds, attempt))
        except OperationRefused as refused:
            if not isinstance(refused.refusal, _Refusal):  # `attempt` raises only these
                raise
            return _answer(operation, refused.refusal.response, refused_after_refresh=True)
    except GrantGone as gone:
        raise NotDeliverable("the org must re-authorize; nothing was sent to Datadog") from gone
    except DatadogUnavailable as exc:
        raise DatadogDown(
            f"Datadog could not answer ({exc.description}); if the request was sent, "
            "it may have been carried out",
            retry_after=exc.retry_after,
        ) from exc


def _answer(
    operation: Operation, response: httpx.Response, *, refused_after_refresh: bool = False
) -> Answer:
    headers = {
        name: value
        for name, value in response.headers.items()
        if name in RETURNED_HEADERS or name.startswith(RETURNED_PREFIX)
    }
    return Answer(operation, response.status_code, headers, response.content, refused_after_refresh)
