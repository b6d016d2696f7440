"""Send routes: one per signal, each body in Datadog's own format, answering 202 once committed."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Header, Request
from fastapi.responses import JSONResponse

from service.api.deps import ResourcesDep, SessionDep
from service.api.guard import InternalRoute, internal_router
from service.intake.accept import MAX_IDEMPOTENCY_KEY_LENGTH, accept
from service.settings import Settings
from service.signals import OTLP_SIGNALS, Signal


class SendRoute(InternalRoute):
    """A send: its body may be as large as `DDBRIDGE_MAX_BODY_BYTES`."""

    def body_limit(self, settings: Settings) -> int:
        return settings.max_body_bytes


router = internal_router("sends", SendRoute)

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
        description="Makes the send safe to repeat: the same key, signal and body for the "
        "same connection within 24 hours returns the first answer and stores nothing new.",
    ),
]


def _route(signal: Signal) -> None:
    async def send(
        connection_id: uuid.UUID,
        request: Request,
        res: ResourcesDep,
        session: SessionDep,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        body = await request.body()  # read by `SendRoute` within its limit and the budget
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
    if _signal not in OTLP_SIGNALS:  # taken as OpenTelemetry exports them: `service.api.otlp`
        _route(_signal)
