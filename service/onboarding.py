"""Datadog OAuth onboarding: authorization links, the authorize redirect, and the callback.

1. `create_authorization`: the partner backend asks for a link for a signed-in account.
2. `start_flow`: the browser follows the link; it gets a browser-id cookie, the flow gets a
   PKCE verifier and a `state`, and the browser goes to Datadog's authorize page.
3. `complete_flow`: Datadog sends the browser back; the `state` is claimed once, checked
   against the browser, the code is exchanged on `api.<domain>`, and the org's API key is
   created and committed before anything else happens.

Tickets, states and browser ids are random 256-bit values stored only as digests. Every
failure is a `FlowFailure` that tells the customer what happened and what to do.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service import connections as conns
from service import credentials, datadog_explained, jobs
from service.crypto import digest
from service.datadog.client import TokenGrant
from service.datadog.errors import DatadogConflict, DatadogError, DatadogUnavailable
from service.errors import FlowFailure, InvalidInput, Problem
from service.models import Connection, ConnectionStatus, OAuthFlow, utcnow
from service.resources import Resources
from service.settings import Settings, origin_of
from service.sites import US1_DOMAIN, Site, SiteRegistry, UnknownSiteError

log = logging.getLogger(__name__)

API_KEY_NOT_RECEIVED = "api key exists but was not received"
DD_OID = re.compile(r"[0-9A-Za-z-]{1,64}")
"""Datadog's org ids are UUIDs; anything else in a callback is forged or broken."""
ORG_NAME_LENGTH = 200


@dataclass(frozen=True, slots=True)
class Authorization:
    authorize_url: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class StartPreview:
    """What the person sees before leaving for Datadog: whose account the org will join."""

    account_label: str
    app_host: str


@dataclass(frozen=True, slots=True)
class ClaimedOrg:
    """The org the callback names. Datadog's token answer does not name the org, so this
    is the browser's claim: it scopes a grant to a connection, never proves an identity."""

    dd_oid: str
    name: str


@dataclass(frozen=True, slots=True)
class CallbackParams:
    """The query Datadog sends back to the `redirect_uri` (all untrusted)."""

    state: str | None = None
    code: str | None = None
    domain: str | None = None
    site: str | None = None
    dd_oid: str | None = None
    dd_org_name: str | None = None
    error: str | None = None
    error_description: str | None = None


@dataclass(frozen=True, slots=True)
class Connected:
    """A finished flow: the connection, where to send the browser, and any caveat to show."""

    connection: Connection
    return_to: str | None
    caveat: str | None


def unknown_site_failure(exc: UnknownSiteError) -> FlowFailure:
    return FlowFailure(
        400,
        "Unknown Datadog site",
        f"The link names {exc.value!r} as the Datadog {exc.field}, which is not a Datadog "
        "site this integration works with, so nothing was sent anywhere.",
        "Start again from the integration tile in Datadog, or from the partner's product.",
    )


def check_return_to(settings: Settings, return_to: str | None) -> None:
    """Refuse a `return_to` outside `public_url`'s origin and `DDBRIDGE_RETURN_TO_ORIGINS`."""
    if return_to is None:
        return
    if origin_of(return_to) not in settings.allowed_return_origins():
        raise InvalidInput(
            [Problem("/return_to", "origin is not allowed")],
            detail="return_to must be an http(s) URL on an allowed origin",
        )


async def create_authorization(
    session: AsyncSession,
    settings: Settings,
    sites: SiteRegistry,
    *,
    account_id: str,
    account_label: str | None,
    site: str | None,
    domain: str | None,
    return_to: str | None,
) -> Authorization:
    """Create a single-use link that starts authorization for `account_id`.

    Raises `UnknownSiteError` for a site or domain that is not trusted, `InvalidInput` for a
    foreign `return_to`. Commits the flow.
    """
    target = sites.authorize_target(site, domain)
    check_return_to(settings, return_to)
    ticket = secrets.token_urlsafe(32)
    expires_at = utcnow() + timedelta(seconds=settings.flow_ttl_seconds)
    session.add(
        OAuthFlow(
            ticket_hash=digest(ticket),
            account_id=account_id,
            account_label=account_label,
            app_host=target.app_host,
            domain=target.site.domain if target.site else None,
            return_to=return_to,
            expires_at=expires_at,
        )
    )
    await session.commit()
    return Authorization(f"{settings.public_url}/oauth/start/{ticket}", expires_at)


async def preview_flow(session: AsyncSession, ticket: str) -> StartPreview:
    """What the confirmation page shows for an unused link (nothing is claimed)."""
    flow = await _unstarted_flow(session, ticket, lock=False)
    return StartPreview(flow.account_label or flow.account_id, flow.app_host)


async def start_flow(res: Resources, session: AsyncSession, ticket: str, browser_id: str) -> str:
    """Claim the link once (the person confirmed), bind it to the browser, and return
    Datadog's authorize URL."""
    flow = await _unstarted_flow(session, ticket, lock=True)
    now = utcnow()
    state = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)
    flow.started_at = now
    flow.expires_at = now + timedelta(seconds=res.settings.flow_ttl_seconds)
    flow.state_hash = digest(state)
    flow.browser_hash = digest(browser_id)
    credentials.seal_verifier(res.keyring, flow, verifier)
    client = res.clients.client_for(flow.domain or US1_DOMAIN)
    await session.commit()
    query = urlencode(
        {
            "redirect_uri": res.settings.callback_url,
            "client_id": client.client_id,
            "response_type": "code",
            "code_challenge": _challenge(verifier),
            "code_challenge_method": "S256",
            "state": state,
        }
    )
    return f"{res.datadog.authorize_url(flow.app_host)}?{query}"


async def complete_flow(
    res: Resources, session: AsyncSession, params: CallbackParams, browser_id: str | None
) -> Connected:
    """Finish the flow Datadog sent the browser back from; see the module docstring.

    The org named in the callback is checked against the flow's account before the code is
    exchanged: an org whose live connection belongs to another account is refused and its
    connection is not touched (`OrgClaimedElsewhere`).
    """
    flow = await _claim_flow(session, params.state, browser_id)
    if flow.connection_id is not None:  # the browser reloads the page this flow ended on
        return await _connected_again(session, flow)
    verifier = credentials.open_verifier(res.keyring, flow)
    await session.commit()
    if params.error:
        raise datadog_explained.authorize_failure(params.error, params.error_description)
    site = _callback_site(res.sites, flow, params)
    org = _claimed_org(params)
    await _check_org_free(session, site, org, flow.account_id)
    await session.commit()  # release the look-up's row lock before the call to Datadog
    client = res.clients.client_for(site.domain)
    try:
        grant = await res.datadog.exchange_code(
            site,
            client,
            code=params.code or "",
            code_verifier=verifier,
            redirect_uri=res.settings.callback_url,
        )
    except DatadogError as exc:
        raise datadog_explained.token_failure(exc) from exc
    connection = await _bind_grant(res, session, flow, site, org, grant)
    caveat = await _ensure_api_key(res, session, connection, site, grant.access_token)
    flow.connection_id = connection.id
    await session.commit()
    await _ring_refresh(res, connection)
    return Connected(connection, flow.return_to, caveat)


async def _connected_again(session: AsyncSession, flow: OAuthFlow) -> Connected:
    """The success page once more for the browser whose flow made a connection still
    active; nothing is exchanged again (the code worked once)."""
    assert flow.connection_id is not None
    connection = await conns.get_connection(session, flow.connection_id)
    await session.commit()
    if connection.status != ConnectionStatus.ACTIVE:
        raise _answer_not_valid_here()
    return Connected(connection, flow.return_to, None)


def _answer_not_valid_here() -> FlowFailure:
    return FlowFailure(
        400,
        "This sign-in answer is not valid here",
        "The answer from Datadog does not belong to a connection started in this browser in "
        "the last few minutes (it expired, was already used, or was opened elsewhere).",
        "Go back to the partner's product and start connecting again from this browser.",
    )


async def _unstarted_flow(session: AsyncSession, ticket: str, *, lock: bool) -> OAuthFlow:
    query = select(OAuthFlow).where(OAuthFlow.ticket_hash == digest(ticket))
    flow = (await session.scalars(query.with_for_update() if lock else query)).one_or_none()
    if flow is None or flow.started_at is not None or flow.expires_at <= utcnow():
        raise FlowFailure(
            410,
            "This connection link has expired",
            "Connection links work once and only for a few minutes.",
            "Go back to the partner's product and start connecting again.",
        )
    return flow


async def _ring_refresh(res: Resources, connection: Connection) -> None:
    """Schedule the token's refresh; if Redis is down, the worker's cron finds it anyway."""
    if connection.access_token_expires_at is None:
        return
    margin = timedelta(seconds=res.settings.refresh_margin_seconds)
    at = jobs.refresh_time(connection.access_token_expires_at, margin)
    await jobs.ring_refresh_or_log(res.redis, connection.id, at)


async def _claim_flow(
    session: AsyncSession, state: str | None, browser_id: str | None
) -> OAuthFlow:
    """Mark the flow of `state` completed, whatever follows: a state works exactly once.

    A flow already completed with a connection comes back as it is for the browser that
    completed it (a reload of its success page); for anyone else it is not valid here.
    """
    expired = _answer_not_valid_here()
    if not state:
        raise expired
    flow = (
        await session.scalars(
            select(OAuthFlow).where(OAuthFlow.state_hash == digest(state)).with_for_update()
        )
    ).one_or_none()
    if flow is None:
        raise expired
    same_browser = browser_id is not None and digest(browser_id) == flow.browser_hash
    if flow.completed_at is not None and flow.connection_id is not None and same_browser:
        return flow
    if flow.completed_at is not None:
        raise expired
    now = utcnow()
    flow.completed_at = now
    if flow.expires_at <= now or browser_id is None or digest(browser_id) != flow.browser_hash:
        await session.commit()
        raise expired
    return flow


def _callback_site(sites: SiteRegistry, flow: OAuthFlow, params: CallbackParams) -> Site:
    """The org's site: the callback's `domain`, which must be trusted and match the flow's."""
    try:
        site = sites.by_domain(params.domain or "")
    except UnknownSiteError as exc:
        raise unknown_site_failure(exc) from exc
    if flow.domain is not None and site.domain != flow.domain:
        raise unknown_site_failure(
            UnknownSiteError(
                "domain", site.domain, f"this connection was started for {flow.domain}"
            )
        )
    return site


def _claimed_org(params: CallbackParams) -> ClaimedOrg:
    """The org the callback names, refused before any exchange when it cannot be one."""
    if not params.code or not params.dd_oid:
        raise FlowFailure(
            400,
            "Incomplete answer from Datadog",
            "Datadog's answer did not include an authorization code and organization.",
            "Start connecting again; if it keeps happening, contact the partner's support.",
        )
    if not DD_OID.fullmatch(params.dd_oid):
        raise FlowFailure(
            400,
            "Unexpected answer from Datadog",
            "The organization id in Datadog's answer is not one Datadog issues, so nothing "
            "was exchanged or stored.",
            "Start connecting again from the partner's product.",
        )
    name = "".join(ch for ch in params.dd_org_name or params.dd_oid if ch.isprintable())
    return ClaimedOrg(params.dd_oid, name[:ORG_NAME_LENGTH] or params.dd_oid)


async def _check_org_free(
    session: AsyncSession, site: Site, org: ClaimedOrg, account_id: str
) -> None:
    """Refuse an org whose live connection belongs to another partner account."""
    connection = await conns.find_by_org(session, site.domain, org.dd_oid, account_id)
    if connection is not None and connection.account_id != account_id:
        log.warning(
            "refused org %s on %s for another account than its connection %s",
            org.dd_oid,
            site.domain,
            connection.id,
        )
        raise OrgClaimedElsewhere()


class OrgClaimedElsewhere(FlowFailure):
    """The org is connected for another partner account; nothing of it was touched."""

    def __init__(self) -> None:
        super().__init__(
            409,
            "This Datadog organization is connected to another account",
            "This Datadog organization is already connected to a different account in the "
            "partner's product, so this connection was not made and the existing one was not "
            "changed.",
            "Disconnect it from the other account first, or sign in to the partner's product "
            "with the account that connected it.",
        )


async def _bind_grant(
    res: Resources,
    session: AsyncSession,
    flow: OAuthFlow,
    site: Site,
    org: ClaimedOrg,
    grant: TokenGrant,
) -> Connection:
    """Under the org's lock (held until the caller commits), store the grant on the flow
    account's connection of the org: the live one, its latest disconnected one, or a new one.

    Raises `OrgClaimedElsewhere` if another account's connection went live meanwhile.
    """
    await conns.lock_org(session, site.domain, org.dd_oid)
    connection = await conns.find_by_org(session, site.domain, org.dd_oid, flow.account_id)
    if connection is not None and connection.account_id != flow.account_id:
        raise OrgClaimedElsewhere()
    if connection is None:
        connection = Connection(
            id=uuid.uuid4(),
            account_id=flow.account_id,
            domain=site.domain,
            dd_org_id=org.dd_oid,
            dd_org_name=org.name,
            status=ConnectionStatus.PENDING,
            status_reason="authorized; creating API key",
            scopes=[],
        )
        session.add(connection)
        conns.record_creation(session, connection)
    connection.dd_org_name = org.name
    credentials.store_grant(res.keyring, connection, grant)
    await session.flush()
    return connection


async def _ensure_api_key(
    res: Resources, session: AsyncSession, connection: Connection, site: Site, access_token: str
) -> str | None:
    """Give the connection the API key of the grant's org; return a caveat for the customer.

    The key is asked for with the new grant first. A new key (201) means the grant's org
    held none, so a stored key belongs elsewhere and is replaced. Datadog's 409 means the
    org already holds this integration's key; only then is a stored key kept, and only while
    it validates. A key is created once (Datadog shows it once) and committed at once.
    """
    try:
        key = await res.datadog.create_api_key(site, credentials.bearer_header(access_token))
    except DatadogConflict:
        return await _keep_stored_key(res, session, connection, site)
    except DatadogUnavailable as exc:
        conns.transition(
            session, connection, ConnectionStatus.PENDING, f"API key creation unclear: {exc}"
        )
        await session.commit()
        raise datadog_explained.api_key_unclear() from exc
    except DatadogError as exc:
        connection.api_key = None
        conns.transition(
            session, connection, ConnectionStatus.ACTIVE, f"API key not created: {exc.description}"
        )
        return datadog_explained.api_key_refused(exc)
    credentials.store_api_key(res.keyring, connection, key)
    conns.transition(session, connection, ConnectionStatus.ACTIVE, "authorized")
    await session.commit()
    log.info("connection %s authorized with a new API key", connection.id)
    return None


async def _keep_stored_key(
    res: Resources, session: AsyncSession, connection: Connection, site: Site
) -> str | None:
    """The org already holds this integration's key: keep ours if it still validates.

    When validation cannot answer, the key is kept: Datadog will not issue another anyway.
    """
    if await credentials.stored_key_validates(res, connection, site):
        conns.transition(session, connection, ConnectionStatus.ACTIVE, "authorized")
        return None
    connection.api_key = None
    conns.transition(session, connection, ConnectionStatus.ACTIVE, API_KEY_NOT_RECEIVED)
    return datadog_explained.API_KEY_RECOVERY


def _challenge(verifier: str) -> str:
    """PKCE S256: BASE64URL(SHA256(verifier)) without padding."""
    return (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
