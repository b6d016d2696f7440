"""Browser-facing onboarding routes: onboarding, start, callback (and the dev demo sign-in)."""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Cookie, Depends, Form, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from service import onboarding
from service.api.deps import ResourcesDep, SessionDep
from service.errors import FlowFailure, NotFound
from service.metrics import OAUTH_FLOWS
from service.pages import Form as PageForm
from service.pages import Link, failure_page, page
from service.sites import UnknownSiteError

BROWSER_COOKIE = "ddbridge_browser"

router = APIRouter(tags=["browser"], include_in_schema=False)


def _dev_mode_only(res: ResourcesDep) -> None:
    if res.settings.mode != "dev":
        raise NotFound("the demo sign-in exists only in dev mode")


demo_router = APIRouter(
    tags=["demo"], include_in_schema=False, dependencies=[Depends(_dev_mode_only)]
)


@router.get("/oauth/onboarding")
async def onboarding_page(
    res: ResourcesDep, site: str | None = None, domain: str | None = None
) -> Response:
    """Datadog's `onboarding_url`: validate the site, then hand over to the partner's sign-in."""
    try:
        target = res.sites.authorize_target(site, domain)
    except UnknownSiteError as exc:
        OAUTH_FLOWS.labels(outcome="unknown_site").inc()
        return failure_page(onboarding.unknown_site_failure(exc))
    signin = res.settings.signin_url
    if signin is None and res.settings.mode == "dev":
        signin = f"{res.settings.public_url}/demo/signin"
    if signin is None:
        return page(
            "Sign-in is not configured",
            "This integration has no partner sign-in page configured (DDBRIDGE_SIGNIN_URL).",
            advice="Contact the partner's support.",
            status_code=501,
            kind="failed",
        )
    query = {"site": target.app_host, "domain": target.site.domain if target.site else ""}
    onboarding_url = f"{res.settings.public_url}/oauth/onboarding?{urlencode(query)}"
    return RedirectResponse(
        _with_query(signin, {**query, "onboarding_url": onboarding_url}), status_code=303
    )


@router.get("/oauth/start/{ticket}")
async def start(
    ticket: str,
    res: ResourcesDep,
    session: SessionDep,
    browser: Annotated[str | None, Cookie(alias=BROWSER_COOKIE)] = None,
) -> Response:
    """Bind the flow to this browser (cookie) and redirect to Datadog's authorize page."""
    browser_id = browser if browser and len(browser) >= 32 else secrets.token_urlsafe(32)
    try:
        authorize_url = await onboarding.start_flow(res, session, ticket, browser_id)
    except FlowFailure as failure:
        OAUTH_FLOWS.labels(outcome="link_expired").inc()
        return failure_page(failure)
    response = RedirectResponse(authorize_url, status_code=302)
    response.set_cookie(
        BROWSER_COOKIE,
        browser_id,
        max_age=24 * 3600,
        path="/oauth",
        httponly=True,
        secure=res.settings.secure_cookies,
        samesite="lax",
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/oauth/callback")
async def callback(
    res: ResourcesDep,
    session: SessionDep,
    state: str | None = None,
    code: str | None = None,
    domain: str | None = None,
    site: str | None = None,
    dd_oid: str | None = None,
    dd_org_name: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
    browser: Annotated[str | None, Cookie(alias=BROWSER_COOKIE)] = None,
) -> Response:
    """Datadog's redirect back: finish the flow and show the customer how it went."""
    params = onboarding.CallbackParams(
        state=state,
        code=code,
        domain=domain,
        site=site,
        dd_oid=dd_oid,
        dd_org_name=dd_org_name,
        error=error,
        error_description=error_description,
    )
    try:
        done = await onboarding.complete_flow(res, session, params, browser)
    except FlowFailure as failure:
        OAUTH_FLOWS.labels(outcome="failed").inc()
        return failure_page(failure)
    OAUTH_FLOWS.labels(outcome="connected").inc()
    connection = done.connection
    if done.return_to and done.caveat is None:
        back = _with_query(
            done.return_to, {"connection_id": str(connection.id), "status": "connected"}
        )
        return RedirectResponse(back, status_code=303)
    return page(
        "Connected to Datadog",
        f"The integration is connected to your Datadog organization {connection.dd_org_name} "
        f"({connection.domain}).",
        advice=done.caveat or "You can close this window.",
        link=Link(done.return_to, "Back to the partner's product") if done.return_to else None,
    )


@demo_router.get("/demo/signin")
async def demo_signin(site: str = "", domain: str = "") -> HTMLResponse:
    """Dev mode's stand-in for the partner's sign-in page."""
    return page(
        "Sign in to the partner's product",
        "This is ddbridge's demo sign-in. A real partner signs the user in here, then asks "
        "ddbridge for an authorization link for that account.",
        form=PageForm("/demo/signin", {"site": site, "domain": domain}),
        kind="neutral",
    )


@demo_router.post("/demo/signin")
async def demo_signin_submit(
    res: ResourcesDep,
    session: SessionDep,
    account_id: Annotated[str, Form(min_length=1, max_length=200)],
    site: Annotated[str, Form()] = "",
    domain: Annotated[str, Form()] = "",
) -> Response:
    try:
        authorization = await onboarding.create_authorization(
            session,
            res.settings,
            res.sites,
            account_id=account_id,
            site=site or None,
            domain=domain or None,
            return_to=None,
        )
    except UnknownSiteError as exc:
        return failure_page(onboarding.unknown_site_failure(exc))
    return RedirectResponse(authorization.authorize_url, status_code=303)


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = "&".join(filter(None, [parts.query, urlencode(params)]))
    return urlunsplit(parts._replace(query=query))
