"""The control plane under `/_emulator/`: set up orgs and clients, flip switches, inspect.

No authentication: it exists for tests and the demo. Bodies are JSON and strictly validated
(unknown fields are 422).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from fakedatadog.api_keys import revoke_org_keys
from fakedatadog.deps import Emulator
from fakedatadog.faults import org_of_request
from fakedatadog.provisioning import create_org, mint_grants, register_client
from fakedatadog.state import ConsentMode, Fault, Org

router = APIRouter(prefix="/_emulator")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrgIn(_Strict):
    name: str
    domain: str
    subdomain: str | None = None
    dd_oid: str | None = None


class ClientIn(_Strict):
    client_id: str | None = None
    client_secret: str | None = None
    name: str
    domain: str
    redirect_uris: list[str]
    scopes: list[str]
    published: bool
    sandbox_org: str | None = None


class ConsentIn(_Strict):
    mode: ConsentMode
    dd_oid: str | None = None


class SettingsIn(_Strict):
    code_ttl_seconds: float | None = Field(default=None, ge=0)
    access_token_ttl_seconds: int | None = Field(default=None, ge=0)
    rotate_refresh_tokens: bool | None = None
    bench: bool | None = None


class FaultIn(_Strict):
    host: str | None = None
    path: str | None = None
    dd_oid: str | None = None
    count: int = Field(default=1, ge=1)
    status: int | None = Field(default=None, ge=100, le=599)
    delay_seconds: float = Field(default=0, ge=0)
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    reset: bool = False


class GrantsIn(_Strict):
    client_id: str
    domain: str
    count: int = Field(ge=1, le=10_000)


class RevokeKeysIn(_Strict):
    dd_oid: str


def _org_out(org: Org) -> dict[str, Any]:
    return {
        "dd_oid": org.dd_oid,
        "name": org.name,
        "domain": org.site.domain,
        "subdomain": org.subdomain,
        "app_host": org.app_host,
    }


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.post("/reset", status_code=204)
async def reset(state: Emulator) -> Response:
    """Forget every org, client, credential, request, fault and switch."""
    state.reset()
    return Response(status_code=204)


@router.post("/orgs", status_code=201)
async def add_org(body: OrgIn, state: Emulator) -> dict[str, Any]:
    org = create_org(
        state, name=body.name, domain=body.domain, subdomain=body.subdomain, dd_oid=body.dd_oid
    )
    return _org_out(org)


@router.get("/orgs")
async def list_orgs(state: Emulator) -> dict[str, list[dict[str, Any]]]:
    return {"orgs": [_org_out(org) for org in state.orgs.values()]}


@router.post("/clients", status_code=201)
async def add_client(body: ClientIn, state: Emulator) -> dict[str, Any]:
    """Register a client on one site; posting the same client_id and domain replaces it."""
    client = register_client(state, **body.model_dump())
    return {
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "name": client.name,
        "domain": client.site.domain,
        "redirect_uris": list(client.redirect_uris),
        "scopes": list(client.scopes),
        "published": client.published,
        "sandbox_org": client.sandbox_org,
    }


@router.post("/consent")
async def set_consent(body: ConsentIn, state: Emulator) -> dict[str, Any]:
    """`page` (default) shows the consent page; `approve` (as `dd_oid`, else the first org the
    user could pick) and `deny` make GET authorize redirect at once."""
    state.consent.mode = body.mode
    state.consent.dd_oid = body.dd_oid
    return {"mode": state.consent.mode, "dd_oid": state.consent.dd_oid}


@router.post("/settings")
async def update_settings(body: SettingsIn, state: Emulator) -> dict[str, Any]:
    """Change the given settings only; answers every setting's current value."""
    for name, value in body.model_dump(exclude_none=True).items():
        setattr(state.settings, name, value)
    settings = state.settings
    return {
        "code_ttl_seconds": settings.code_ttl_seconds,
        "access_token_ttl_seconds": settings.access_token_ttl_seconds,
        "rotate_refresh_tokens": settings.rotate_refresh_tokens,
        "bench": settings.bench,
    }


@router.post("/faults", status_code=201)
async def add_fault(body: FaultIn, state: Emulator) -> dict[str, Any]:
    """Queue a fault for the next `count` matching requests (see `fakedatadog.faults`); with
    `reset`, each breaks the connection after its delay instead of answering."""
    fault = Fault(
        host=body.host,
        path=body.path,
        dd_oid=body.dd_oid,
        remaining=body.count,
        status=body.status,
        delay_seconds=body.delay_seconds,
        headers=body.headers,
        body=body.body,
        reset=body.reset,
    )
    state.faults.append(fault)
    return body.model_dump()


@router.delete("/faults", status_code=204)
async def clear_faults(state: Emulator) -> Response:
    state.faults.clear()
    return Response(status_code=204)


@router.get("/requests")
async def list_requests(
    state: Emulator, host: str | None = None, path: str | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Requests to Datadog hosts in arrival order; `host` and `path` filter by exact match.
    `dd_oid` is the org whose credential the request's headers or query carry, if any."""
    return {
        "requests": [
            {
                "dd_oid": org_of_request(state, r.headers, dict(parse_qsl(r.query))),
                "method": r.method,
                "host": r.host,
                "path": r.path,
                "query": r.query,
                "headers": r.headers,
                "body": r.body,
                "status": r.status,
                "at": r.at,
            }
            for r in state.requests
            if host in (None, r.host) and path in (None, r.path)
        ]
    }


@router.delete("/requests", status_code=204)
async def clear_requests(state: Emulator) -> Response:
    state.requests.clear()
    return Response(status_code=204)


@router.post("/grants", status_code=201)
async def add_grants(body: GrantsIn, state: Emulator) -> dict[str, list[dict[str, Any]]]:
    """`count` new orgs that each approved the client, with their tokens, as if each had
    completed onboarding (benchmarks of fleets use it; real orgs go through the consent page)."""
    return {"grants": mint_grants(state, body.client_id, body.domain, body.count)}


@router.post("/api_keys/revoke")
async def revoke_keys(body: RevokeKeysIn, state: Emulator) -> dict[str, int]:
    """Revoke every API key of the org, as its admin would in Datadog."""
    return {"revoked": revoke_org_keys(state, body.dd_oid)}


@router.get("/secrets")
async def list_secrets(state: Emulator) -> dict[str, list[str]]:
    """Every credential issued or configured since reset, for leak scans of logs and databases."""
    return {"secrets": list(state.secrets)}
