"""The API's own description, `/openapi.json` and `/docs`, served as `DDBRIDGE_API_DOCS` says.

`internal` (the default): `/openapi.json` needs the internal bearer token, like the routes it
describes, and there is no `/docs` (Swagger UI fetches the description without a token).
`public`: both open. `off`: neither exists (404).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from service.api.deps import ResourcesDep
from service.api.guard import check_internal_token
from service.errors import NotFound

router = APIRouter(include_in_schema=False)


@router.get("/openapi.json")
async def openapi(request: Request, res: ResourcesDep) -> dict[str, Any]:
    docs = res.settings.api_docs
    if docs == "off":
        raise NotFound("the API description is not served here (DDBRIDGE_API_DOCS=off)")
    if docs == "internal":
        check_internal_token(res.settings, request.headers.get("authorization"))
    return request.app.openapi()  # type: ignore[no-any-return]


@router.get("/docs")
async def swagger_ui(res: ResourcesDep) -> HTMLResponse:
    if res.settings.api_docs != "public":
        raise NotFound("the API docs page is served only with DDBRIDGE_API_DOCS=public")
    return get_swagger_ui_html(openapi_url="/openapi.json", title="ddbridge")
