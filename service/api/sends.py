"""Send routes: one per signal, each body in Datadog's own format, answering 202 once committed."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse

from service.api.deps import Internal, ResourcesDep, SessionDep
from service.errors import ServiceError
from service.intake.accept import accept
from service.signals import Signal

router = APIRouter(prefix="/internal/v1", dependencies=[Internal], tags=["sends"])


class BodyTooLarge(ServiceError):
    status_code = 413
    code = "body_too_large"


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) past `limit` bytes before reading more."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"the body is {declared} bytes; the limit is {limit}", limit=limit)
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise BodyTooLarge(f"the body is over the limit of {limit} bytes", limit=limit)
    return bytes(body)


IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]


def _route(signal: Signal) -> None:
    async def send(
        connection_id: uuid.UUID,
        request: Request,
        res: ResourcesDep,
        session: SessionDep,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        body = await read_body(request, res.settings.max_body_bytes)
        answer: dict[str, Any] = await accept(
            res, session, connection_id, signal, body, idempotency_key
        )
        return JSONResponse(answer, status_code=202)

    send.__doc__ = f"Accept {signal.value} in Datadog's format for delivery to the org."
    router.add_api_route(
        f"/connections/{{connection_id}}/{signal.value}",
        send,
        methods=["POST"],
        status_code=202,
        name=f"send_{signal.value}",
    )


for _signal in Signal:
    _route(_signal)
