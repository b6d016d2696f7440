"""What Datadog's answers mean, as a small tree of typed errors built from the response.

`DatadogUnavailable` means "try again later" (transport failures, 404, 408, 429, 5xx); everything
else under `DatadogRejected` means "what was sent is wrong or no longer allowed" and retrying
the same request cannot help. Messages carry Datadog's own error texts, never credentials.
"""

from __future__ import annotations

import math

import httpx
from google.protobuf.message import DecodeError
from google.rpc import status_pb2

MAX_WAIT_SECONDS = 3600.0
"""The longest wait taken on Datadog's word (`X-RateLimit-Reset`, `Retry-After`): an hour,
the longest the worker pauses anything. A larger, infinite or negative value is capped."""


class DatadogError(Exception):
    """A Datadog call that did not succeed."""

    def __init__(
        self,
        description: str,
        *,
        status: int | None = None,
        error: str | None = None,
        errors: list[str] | None = None,
    ) -> None:
        super().__init__(description)
        self.description = description
        self.status = status
        self.error = error
        self.errors = errors or []


class DatadogUnavailable(DatadogError):
    """Transient: a later identical request may succeed. `retry_after` is in seconds."""

    def __init__(
        self, description: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(description, status=status)
        self.retry_after = retry_after


class DatadogRejected(DatadogError):
    """Permanent for this request: fix the request, the credential or the grant first."""


class DatadogUnauthorized(DatadogRejected):
    """401/403: the credential (client secret, token or API key) is not accepted."""


class DatadogConflict(DatadogRejected):
    """409: the resource exists already (e.g. the org's marketplace API key)."""


class DatadogTooLarge(DatadogRejected):
    """413: the request is over Datadog's size or count limit; split it and resend."""


def transport_error(exc: httpx.TransportError) -> DatadogUnavailable:
    return DatadogUnavailable(f"could not reach Datadog: {type(exc).__name__}")


def error_from_response(response: httpx.Response) -> DatadogError:
    """Classify a non-2xx answer the way datadog.md section 5 says to act on it."""
    status = response.status_code
    error, description, errors = _parse_body(response)
    text = description or error or "; ".join(errors) or response.reason_phrase
    if status in (408, 429) or status >= 500:
        return DatadogUnavailable(
            f"Datadog answered {status}: {text}",
            status=status,
            retry_after=_reset_seconds(response),
        )
    if status == 404:
        return DatadogUnavailable(f"Datadog answered 404 (wrong host?): {text}", status=status)
    kind: type[DatadogRejected] = DatadogRejected
    if status in (401, 403):
        kind = DatadogUnauthorized
    elif status == 409:
        kind = DatadogConflict
    elif status == 413:
        kind = DatadogTooLarge
    return kind(text, status=status, error=error, errors=errors)


def _parse_body(response: httpx.Response) -> tuple[str | None, str | None, list[str]]:
    """(error, description, errors) of an answer: OAuth's `error`/`error_description`, the
    API's `errors`, or the OTLP intake's google.rpc.Status `message` (protobuf or JSON)."""
    if response.headers.get("content-type", "").startswith("application/x-protobuf"):
        try:
            status = status_pb2.Status.FromString(response.content)
        except DecodeError:
            return None, None, []
        return None, status.message or None, []
    try:
        body = response.json()
    except ValueError:
        return None, None, []
    if not isinstance(body, dict):
        return None, None, []
    error = body.get("error")
    description = body.get("error_description") or body.get("message")
    errors = body.get("errors")
    return (
        error if isinstance(error, str) else None,
        description if isinstance(description, str) else None,
        [str(item) for item in errors] if isinstance(errors, list) else [],
    )


def _reset_seconds(response: httpx.Response) -> float | None:
    """`X-RateLimit-Reset` (seconds until the window resets), else `Retry-After` seconds,
    within [0, `MAX_WAIT_SECONDS`]; None when neither is a number."""
    for header in ("x-ratelimit-reset", "retry-after"):
        value = response.headers.get(header)
        if value is not None:
            try:
                seconds = float(value)
            except ValueError:
                continue
            if not math.isnan(seconds):
                return min(max(0.0, seconds), MAX_WAIT_SECONDS)
    return None
