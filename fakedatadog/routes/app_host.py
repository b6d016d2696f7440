"""Routes on Datadog app hosts (the browser's side): the authorize page and its consent form."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fakedatadog.authorize import approve, check, deny
from fakedatadog.deps import AppHost, Emulator
from fakedatadog.errors import AuthorizePageError
from fakedatadog.pages import render
from fakedatadog.params import request_params

router = APIRouter()


@router.get("/{host}/oauth2/v1/authorize")
async def authorize(request: Request, app_host: AppHost, state: Emulator) -> Response:
    """Show the consent page, or answer at once as the control plane's consent switch says."""
    consent = check(state, app_host, request.query_params)
    switch = state.consent
    if switch.mode == "deny":
        raise deny(consent)
    if switch.mode == "approve":
        dd_oid = switch.dd_oid or next((org.dd_oid for org in consent.orgs), None)
        return RedirectResponse(approve(state, app_host, consent, dd_oid), status_code=302)
    page = render(
        "consent.html",
        host=app_host.name,
        client_name=consent.client_name,
        scopes=consent.scopes,
        orgs=consent.orgs,
        params=consent.params,
    )
    return HTMLResponse(page)


@router.post("/{host}/oauth2/v1/authorize")
async def decide(request: Request, app_host: AppHost, state: Emulator) -> Response:
    """The consent form: re-check every parameter, then approve as `dd_oid` or deny."""
    form = await request_params(request)
    consent = check(state, app_host, form)
    decision = form.get("decision")
    if decision == "deny":
        raise deny(consent)
    if decision != "approve":
        raise AuthorizePageError("invalid_request", "Invalid decision parameter value")
    return RedirectResponse(approve(state, app_host, consent, form.get("dd_oid")), 302)
