"""OTLP/HTTP export routes, so a stock OpenTelemetry exporter sends to ddbridge unchanged.

An exporter's base endpoint is `<ddbridge>/internal/v1/connections/{id}/otlp` (it appends
`/v1/traces`, `/v1/metrics`, `/v1/logs`) with the header `Authorization: Bearer <internal
token>`. The door is the internal API's (`service.api.guard`): the token before the body, the
body limit, the byte budget. Answers follow the OTLP/HTTP specification, in the request's
encoding (protobuf, or JSON when the request's is neither):

- 200 with the `Export*ServiceResponse`; its `partial_success` counts what was left out, and
  why, when Datadog would refuse part of the request;
- every failure is a `google.rpc.Status` with the internal API's status code and headers
  (`Retry-After` on 429 and 503, which exporters retry): its `message` is the internal API's
  `detail`, and an `ErrorInfo` in `details` carries its error code (`reason`, domain
  `ddbridge`) and other fields (`metadata`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from service import otlp
from service.api.deps import ResourcesDep
from service.api.guard import internal_router
from service.api.sends import IdempotencyKey, SendRoute
from service.dbcheck import database_problem
from service.errors import ServiceError
from service.intake.otlp import JSON, PROTOBUF, Export, accept_export, media_type
from service.signals import Signal

log = logging.getLogger(__name__)

_GRPC_CODES = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    403: code_pb2.PERMISSION_DENIED,
    404: code_pb2.NOT_FOUND,
    409: code_pb2.FAILED_PRECONDITION,
    413: code_pb2.INVALID_ARGUMENT,
    415: code_pb2.INVALID_ARGUMENT,
    422: code_pb2.INVALID_ARGUMENT,
    429: code_pb2.RESOURCE_EXHAUSTED,
    503: code_pb2.UNAVAILABLE,
}


class OtlpRoute(SendRoute):
    """A send route whose every failure is answered as OTLP/HTTP says (module docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def answer(request: Request) -> Response:
            encoding = media_type(request.headers.get("content-type"))
            try:
                return await handle(request)
            except ServiceError as exc:
                return _failure(
                    encoding, exc.status_code, exc.code, exc.detail, exc.extra, exc.headers()
                )
            except RequestValidationError as exc:
                problems = "; ".join(
                    f"{'/'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
                )
                detail = f"the request is invalid ({problems}); nothing was accepted"
                return _failure(encoding, 422, "invalid_request", detail, {}, {})
            except (DBAPIError, PoolTimeoutError, OSError) as exc:
                problem = database_problem(exc, request.state.resources.settings.database_url)
                if problem is None:
                    raise
                log.warning("database unavailable: %s", problem.cause)
                detail = f"the database is unavailable: {problem.cause}; nothing was accepted"
                headers = {"Retry-After": "1"}
                return _failure(
                    encoding, 503, "database_unavailable", detail, {"cause": problem.cause}, headers
                )

        return answer


router = internal_router("otlp", OtlpRoute)

_ENCODINGS = {
    PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
    JSON: {"schema": {"type": "object"}},
}
"""OTLP/HTTP's two encodings, for the OpenAPI description: requests and answers alike."""
_BODY = {"requestBody": {"required": True, "content": _ENCODINGS}}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The Export*ServiceResponse (partial_success: what was left out, why)",
        "content": _ENCODINGS,
    },
    **{
        status: {"description": f"google.rpc.Status: {what}", "content": _ENCODINGS}
        for status, what in (
            (400, "the body does not decode as the export request"),
            (401, "no valid internal token"),
            (404, "unknown connection"),
            (409, "the connection cannot deliver this signal (status, or a site without it)"),
            (413, "the body, or its inflated size, is over MAX_BODY_BYTES"),
            (415, "not protobuf or JSON, or an unknown Content-Encoding"),
            (422, "an invalid parameter or header"),
            (429, "the connection's backlog is full (Retry-After)"),
            (503, "busy or the database is unavailable (Retry-After)"),
        )
    },
}


def _route(signal: Signal, path: str) -> None:
    kind = otlp.KINDS[signal]

    async def export(
        connection_id: uuid.UUID,
        request: Request,
        res: ResourcesDep,
        idempotency_key: IdempotencyKey = None,
    ) -> Response:
        encoding = media_type(request.headers.get("content-type"))
        sent = Export(await request.body(), encoding, request.headers.get("content-encoding"))
        answer = await accept_export(res, connection_id, signal, sent, idempotency_key)
        response = kind.response()
        if answer["rejected"]:
            success = response.partial_success  # type: ignore[attr-defined]
            setattr(success, kind.rejected_field, answer["rejected"])
            success.error_message = answer["rejection"]
        return _encoded(response, encoding, 200, {})

    export.__doc__ = (
        f"Accept an OTLP/HTTP {kind.name} (protobuf or JSON, gzip or not) for delivery to "
        "the org's Datadog OTLP intake; see the module docstring for the answers."
    )
    router.add_api_route(
        f"/connections/{{connection_id}}/otlp/v1/{path}",
        export,
        methods=["POST"],
        name=f"export_otlp_{path}",
        summary=f"Export OTLP {path}",
        openapi_extra=_BODY,
        response_class=Response,
        responses=_RESPONSES,
    )


def _failure(
    encoding: str,
    status: int,
    reason: str,
    detail: str,
    extra: dict[str, Any],
    headers: dict[str, str],
) -> Response:
    info = error_details_pb2.ErrorInfo(reason=reason, domain="ddbridge")
    for name, value in extra.items():
        if value is not None:
            info.metadata[name] = value if isinstance(value, str) else orjson.dumps(value).decode()
    answer = status_pb2.Status(code=_GRPC_CODES.get(status, code_pb2.UNKNOWN), message=detail)
    answer.details.add().Pack(info)
    return _encoded(answer, encoding, status, headers)


def _encoded(message: Message, encoding: str, status: int, headers: dict[str, str]) -> Response:
    if encoding == PROTOBUF:
        body = message.SerializeToString()
        return Response(body, status, headers=headers, media_type=PROTOBUF)
    text = json_format.MessageToJson(message, indent=None, use_integers_for_enums=True)
    return Response(text.encode(), status, headers=headers, media_type=JSON)


for _signal, _path in (
    (Signal.OTLP_TRACES, "traces"),
    (Signal.OTLP_METRICS, "metrics"),
    (Signal.OTLP_LOGS, "logs"),
):
    _route(_signal, _path)
