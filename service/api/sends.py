"""Send routes: one per signal, each body in Datadog's own format, answering 202 once committed.

A send's body is read raw and parsed by `service.intake.parse` (not by FastAPI), so each route
declares its body's schema itself, from the same models (`service.intake.models`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter

from service.api.deps import ResourcesDep, get_drain
from service.api.guard import InternalRoute, internal_router
from service.api.schemas import AcceptedOut, error_answers
from service.intake.accept import MAX_IDEMPOTENCY_KEY_LENGTH, accept
from service.intake.parse import BODIES
from service.settings import Settings
from service.signals import OTLP_SIGNALS, SPECS, Signal


class SendRoute(InternalRoute):
    """A send: its body may be as large as `DDBRIDGE_MAX_BODY_BYTES`; a process that is
    shutting down refuses it (503, Retry-After) before reading a byte of it."""

    def body_limit(self, settings: Settings) -> int:
        return settings.max_body_bytes

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        guarded = super().get_route_handler()

        async def unless_draining(request: Request) -> Response:
            get_drain(request).refuse_if_draining()
            return await guarded(request)

        return unless_draining


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


def body_schema(signal: Signal) -> dict[str, Any]:
    """The JSON Schema of `signal`'s body with its definitions inlined: the OpenAPI document
    (and /docs) shows it as the request body, which the route reads itself."""
    schema = TypeAdapter(BODIES[signal]).json_schema()
    definitions: dict[str, Any] = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            reference = node.get("$ref")
            if isinstance(reference, str) and reference.startswith("#/$defs/"):
                return inline(definitions[reference.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(value) for value in node]
        return node

    inlined: dict[str, Any] = inline(schema)
    return inlined


def _route(signal: Signal) -> None:
    async def send(
        connection_id: uuid.UUID,
        request: Request,
        res: ResourcesDep,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        body = await request.body()  # read by `SendRoute` within its limit and the budget
        answer: dict[str, Any] = await accept(res, connection_id, signal, body, idempotency_key)
        return JSONResponse(answer, status_code=202)

    send.__doc__ = f"Accept {signal.value} in Datadog's format for delivery to the org."
    statuses = (404, 409, 429) if SPECS[signal].scope is None else (403, 404, 409, 429)
    router.add_api_route(
        f"/connections/{{connection_id}}/{signal.value}",
        send,
        methods=["POST"],
        status_code=202,
        name=f"send_{signal.value}",
        responses={
            202: {"model": AcceptedOut, "description": "committed: it will be delivered"},
            **error_answers(*statuses),
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": body_schema(signal)}},
            }
        },
    )


for _signal in Signal:
    if _signal not in OTLP_SIGNALS:  # taken as OpenTelemetry exports them: `service.api.otlp`
        _route(_signal)
