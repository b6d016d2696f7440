"""Browser-facing onboarding routes: onboarding, start, callback (and the dev demo sign-in)."""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Cookie, Depends, Form, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from service import onboarding
from service.api.deps import ResourcesDep, SessionDep
from service.api.schemas import Text
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
    # Production mode does not start without SIGNIN_URL; dev mode has the demo page.
    signin = res.settings.signin_url or f"{res.settings.public_url}/demo/signin"
    query = {"site": target.app_host, "domain": target.site.domain if target.site else ""}
    onboarding_url = f"{res.settings.public_url}/oauth/onboarding?{urlencode(query)}"
    return RedirectResponse(
        _with_query(signin, {**query, "onboarding_url": onboarding_url}), status_code=303
    )


@router.get("/oauth/start/{ticket}")
async def confirm_start(
    ticket: str,
    res: ResourcesDep,
    session: SessionDep,
    browser: Annotated[str | None, Cookie(alias=BROWSER_COOKIE)] = None,
) -> Response:
    """Show whose partner account the org will join and ask the person to confirm.

    Nothing is claimed here (link previews and scanners may fetch it). The browser gets its
    id cookie now: the confirming POST must carry it, and a SameSite=Lax cookie is never
    sent with a form posted from another site.
    """
    try:
        preview = await onboarding.preview_flow(session, ticket)
    except FlowFailure as failure:
        OAUTH_FLOWS.labels(outcome="link_expired").inc()
        return failure_page(failure)
    response = page(
        "Connect your Datadog organization",
        f"You are about to connect a Datadog organization to the partner account "
        f"{preview.account_label!r}. Continue only if that is your account; Datadog will then "
        f"ask you which organization to connect.",
        advice="If you did not expect this, close this window: nothing has been connected.",
        form=PageForm(f"/oauth/start/{ticket}", button="Continue to Datadog"),
        kind="neutral",
    )
    _set_browser_cookie(res, response, _browser_id(browser))
    return response


@router.post("/oauth/start/{ticket}")
async def start(
    ticket: str,
    res: ResourcesDep,
    session: SessionDep,
    browser: Annotated[str | None, Cookie(alias=BROWSER_COOKIE)] = None,
) -> Response:
    """The person confirmed: bind the flow to this browser and go to Datadog's authorize page."""
    if browser is None or len(browser) < 32:
        OAUTH_FLOWS.labels(outcome="unconfirmed").inc()
        return failure_page(
            FlowFailure(
                400,
                "Please confirm from the connection page",
                "This request did not come from the confirmation page in this browser.",
                "Open the connection link from the partner's product again.",
            )
        )
    try:
        authorize_url = await onboarding.start_flow(res, session, ticket, browser)
    except FlowFailure as failure:
        OAUTH_FLOWS.labels(outcome="link_expired").inc()
        return failure_page(failure)
    response = RedirectResponse(authorize_url, status_code=303)
    response.headers["Cache-Control"] = "no-store"
    return response


def _browser_id(cookie: str | None) -> str:
    return cookie if cookie and len(cookie) >= 32 else secrets.token_urlsafe(32)


def _set_browser_cookie(res: ResourcesDep, response: Response, browser_id: str) -> None:
    response.set_cookie(
        BROWSER_COOKIE,
        browser_id,
        max_age=24 * 3600,
        path="/oauth",
        httponly=True,
        secure=res.settings.secure_cookies,
        samesite="lax",
    )


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
    except onboarding.OrgClaimedElsewhere as refused:
        OAUTH_FLOWS.labels(outcome="org_claimed_elsewhere").inc()
        return failure_page(refused)
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
        form=PageForm(
            "/demo/signin", {"site": site, "domain": domain}, ask_account=True, button="Continue"
        ),
        kind="neutral",
    )


@demo_router.post("/demo/signin")
async def demo_signin_submit(
    res: ResourcesDep,
    session: SessionDep,
    account_id: Annotated[Text, Form(min_length=1, max_length=200)],
    site: Annotated[str, Form()] = "",
    domain: Annotated[str, Form()] = "",
) -> Response:
    try:
        authorization = await onboarding.create_authorization(
            session,
            res.settings,
            res.sites,
            account_id=account_id,
            account_label=None,
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
