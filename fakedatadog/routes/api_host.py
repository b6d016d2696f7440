"""Routes on `api.<domain>` hosts: OAuth token and revoke, the marketplace API key, validate."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from fakedatadog.api_keys import api_key_answer, create_marketplace_key
from fakedatadog.deps import ApiSite, BearerToken, DdApiKey, Emulator, api_site
from fakedatadog.params import media_type_of, request_params
from fakedatadog.tokens import grant_tokens, revoke

router = APIRouter(dependencies=[Depends(api_site)])

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@router.post("/{host}/oauth2/v1/token")
async def token(request: Request, site: ApiSite, state: Emulator) -> JSONResponse:
    """Exchange a code or a refresh token; form-encoded or JSON body."""
    media_type = media_type_of(request.headers.get("content-type"))
    answer = grant_tokens(state, site, media_type, await request_params(request))
    return JSONResponse(answer, headers=_NO_STORE)


@router.post("/{host}/oauth2/v1/revoke")
async def revoke_token(request: Request, site: ApiSite, state: Emulator) -> dict[str, Any]:
    """Revoke a token; 200 `{}` whether or not the token was known."""
    revoke(state, site, await request_params(request))
    return {}


@router.post("/{host}/api/v2/api_keys/marketplace", status_code=201)
async def marketplace_api_key(token: BearerToken, state: Emulator) -> dict[str, Any]:
    """Create the org's API key for the calling OAuth client (JSON:API)."""
    return api_key_answer(create_marketplace_key(state, token))


@router.get("/{host}/api/v1/validate")
async def validate(_key: DdApiKey) -> dict[str, bool]:
    """200 `{"valid": true}` for a live key of an org on this site; 403 otherwise."""
    return {"valid": True}
