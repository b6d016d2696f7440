"""The internal API's door: the token first, then the body within its limit and the budget.

FastAPI reads and parses a route's body before any dependency runs, so a token checked in a
dependency comes too late: a stranger's body would already be in memory. Every internal
route is an `InternalRoute` instead, whose handler, before FastAPI's own:

1. refuses (401) without the internal bearer token, before a byte of the body is read;
2. refuses (413) a body declared or found larger than the route's limit, reading no further;
3. waits for the body's size in the process's `ByteBudget` (503 with Retry-After if it does
   not come in time), holds it while the route runs, and hands the body read to FastAPI.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from typing import Any

from fastapi import APIRouter, Request, Response, Security
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive

from service.api.deps import get_resources
from service.api.schemas import error_answers
from service.errors import ServiceError, Unauthorized
from service.settings import Settings

PREFIX = "/internal/v1"


class BodyTooLarge(ServiceError):
    status_code = 413
    code = "body_too_large"


class BodyIncomplete(ServiceError):
    """The client closed the connection mid-body (nobody reads this answer)."""

    status_code = 400
    code = "body_incomplete"


class Busy(ServiceError):
    """Too many bytes of bodies in flight in this process; nothing was read or accepted."""

    status_code = 503
    code = "busy"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.extra["retry_after"])}


def check_internal_token(settings: Settings, authorization: str | None) -> None:
    """Accept only `Authorization: Bearer <one of DDBRIDGE_INTERNAL_TOKENS>`.

    Every configured token is compared in constant time, so timing reveals neither which
    token nor how much of one matched.
    """
    scheme, _, presented = (authorization or "").partition(" ")
    matched = False
    for token in settings.internal_tokens:
        matched |= hmac.compare_digest(presented.encode(), token.get_secret_value().encode())
    if scheme.lower() != "bearer" or not matched:
        raise Unauthorized("a valid internal API bearer token is required")


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) past `limit` bytes before reading more."""
    parts: list[bytes] = []
    size = 0
    try:
        async for part in request.stream():
            size += len(part)
            if size > limit:
                raise BodyTooLarge(f"the body is over the limit of {limit} bytes", limit=limit)
            parts.append(part)
    except ClientDisconnect:
        raise BodyIncomplete("the client went away before sending the whole body") from None
    return b"".join(parts)


class InternalRoute(APIRoute):
    """A route of the internal API, guarded as the module docstring says."""

    def body_limit(self, settings: Settings) -> int:
        """The largest body this route reads: small JSON unless a subclass says otherwise."""
        return settings.max_json_body_bytes

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            resources = get_resources(request)
            settings = resources.settings
            check_internal_token(settings, request.headers.get("authorization"))
            limit = self.body_limit(settings)
            declared = _declared_length(request)
            if declared is not None and declared > limit:
                raise BodyTooLarge(
                    f"the body is {declared} bytes; the limit is {limit}", limit=limit
                )
            async with AsyncExitStack() as held:
                try:
                    await held.enter_async_context(
                        resources.bodies.hold(
                            limit if declared is None else declared, settings.body_wait_seconds
                        )
                    )
                except TimeoutError:
                    raise Busy(
                        f"this process is handling {resources.bodies.held} bytes of bodies "
                        "(DDBRIDGE_BODY_BUDGET_BYTES); nothing was read; retry later",
                        retry_after=1,
                    ) from None
                body = await _read_body(request, limit)
                return await handle(Request(request.scope, _replay(body, request.receive)))

        return guarded


def internal_router(tag: str, route_class: type[InternalRoute] = InternalRoute) -> APIRouter:
    """A router under `/internal/v1` whose routes are all `route_class`; the bearer scheme and
    the door's answers (401, 413, 422, 503) are declared for the OpenAPI description (the
    checks themselves are the route's)."""
    return APIRouter(
        prefix=PREFIX,
        route_class=route_class,
        dependencies=[Security(HTTPBearer(auto_error=False, description=BEARER))],
        tags=[tag],
        responses=error_answers(401, 413, 422, 503),
    )


BEARER = "One of `DDBRIDGE_INTERNAL_TOKENS`, checked before a byte of the body is read."


def _declared_length(request: Request) -> int | None:
    """The body's size as the head declares it (none declared: no body); None when it is
    chunked, so known only once read."""
    if "transfer-encoding" in request.headers:
        return None
    declared = request.headers.get("content-length", "0")
    return int(declared) if declared.isdigit() else None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the body already read, then what the client sends next
    (its disconnect)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
