"""The Datadog pass-through route: `/internal/v1/connections/{id}/datadog/{path}`, any method.

Its base URL, `.../connections/{id}/datadog`, stands in for `https://api.<domain>`: the
official `datadog-api-client` works with it as `Configuration(host=...)` and the internal
token as `access_token` (the client sends it as `Authorization: Bearer`, which the guard
checks before reading the body). What is forwarded and refused is `service.passthrough.forward`'s.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Path, Request, Response

from service.api.deps import ResourcesDep
from service.api.guard import InternalRoute, internal_router
from service.api.schemas import error_answers
from service.passthrough.forward import Outbound, forward
from service.settings import Settings

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
"""The methods Datadog's v1 and v2 definitions use."""
ROUTE = "/connections/{connection_id}/datadog/{path:path}"
_PREFIX_SEGMENTS = 6
"""`/internal/v1/connections/{id}/datadog/` before the Datadog path in the raw path."""


class PassthroughRoute(InternalRoute):
    """A pass-through: its body may be as large as `DDBRIDGE_MAX_PASSTHROUGH_BODY_BYTES`."""

    def body_limit(self, settings: Settings) -> int:
        return settings.max_passthrough_body_bytes


router = internal_router("datadog", PassthroughRoute)


DatadogPath = Annotated[
    str,
    Path(description="The operation's path on `api.<domain>`, e.g. `api/v1/monitor`"),
]


async def datadog_operation(
    connection_id: uuid.UUID, path: DatadogPath, request: Request, res: ResourcesDep
) -> Response:
    """Forward the request to the org's `api.<domain>` with its OAuth token, if Datadog's
    definitions list the operation with OAuth and the grant holds its scopes; Datadog's
    status, body and rate-limit headers come back as they are. (`path` is matched and sent
    as it arrived, percent-encoding included, so its decoded form is only documentation.)"""
    answer = await forward(res, connection_id, _outbound(request, await request.body()))
    return Response(answer.body, status_code=answer.status, headers=answer.headers)


def _outbound(request: Request, body: bytes) -> Outbound:
    """The request as sent: the raw path keeps its percent-encoding (`%2F` in an id stays
    inside its segment), the query goes as it came."""
    raw_path: bytes = request.scope.get("raw_path") or request.url.path.encode()
    datadog_path = "/" + raw_path.decode("latin-1").split("/", _PREFIX_SEGMENTS)[-1]
    return Outbound(
        method=request.method,
        path=datadog_path,
        query=request.scope["query_string"].decode("latin-1"),
        headers=request.headers,
        body=body,
    )


for _method in METHODS:
    router.add_api_route(
        ROUTE,
        datadog_operation,
        methods=[_method],
        name=f"datadog_{_method.lower()}",
        summary=f"{_method} a Datadog operation with the org's OAuth token",
        responses={
            # ddbridge's own refusals, before any request: an unknown operation or one
            # outside OAuth, a missing scope, a connection that must re-authorize.
            **error_answers(403, 404, 409),
            "default": {"description": "Datadog's answer: its status, body and rate limits"},
        },
    )
