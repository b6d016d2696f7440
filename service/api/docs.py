"""The API's own description, `/openapi.json` and `/docs`, served as `DDBRIDGE_API_DOCS` says.

`internal` (the default): `/openapi.json` needs the internal bearer token, like the routes it
describes, and there is no `/docs` (Swagger UI fetches the description without a token).
`public`: both open, Swagger UI's script and styles served from the `fastapi-offline`
package (no CDN: the page works offline). `off`: neither exists (404).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from service.api.deps import ResourcesDep
from service.api.guard import check_internal_token
from service.errors import NotFound

router = APIRouter(include_in_schema=False)

ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSET_NAMES = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"})


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
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="ddbridge",
        swagger_js_url="/docs/assets/swagger-ui-bundle.js",
        swagger_css_url="/docs/assets/swagger-ui.css",
        swagger_favicon_url="/docs/assets/favicon.png",
    )


@router.get("/docs/assets/{name}")
async def swagger_ui_asset(name: str, res: ResourcesDep) -> FileResponse:
    if res.settings.api_docs != "public" or name not in ASSET_NAMES:
        raise NotFound("no such asset")
    return FileResponse(ASSETS / name)
