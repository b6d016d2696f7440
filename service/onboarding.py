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
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service import connections as conns
from service import datadog_explained, jobs
from service.crypto import digest
from service.datadog.client import TokenGrant
from service.datadog.errors import DatadogConflict, DatadogError, DatadogUnavailable
from service.errors import FlowFailure, InvalidInput
from service.models import Connection, ConnectionStatus, OAuthFlow, utcnow
from service.resources import Resources
from service.settings import Settings, origin_of
from service.sites import US1_DOMAIN, Site, SiteRegistry, UnknownSiteError

log = logging.getLogger(__name__)

API_KEY_NOT_RECEIVED = "api key exists but was not received"


@dataclass(frozen=True, slots=True)
class Authorization:
    authorize_url: str
    expires_at: datetime


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
            "return_to must be an http(s) URL on an allowed origin",
            problems=[{"pointer": "/return_to", "reason": "origin is not allowed"}],
        )


async def create_authorization(
    session: AsyncSession,
    settings: Settings,
    sites: SiteRegistry,
    *,
    account_id: str,
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
            app_host=target.app_host,
            domain=target.site.domain if target.site else None,
            return_to=return_to,
            expires_at=expires_at,
        )
    )
    await session.commit()
    return Authorization(f"{settings.public_url}/oauth/start/{ticket}", expires_at)


async def start_flow(res: Resources, session: AsyncSession, ticket: str, browser_id: str) -> str:
    """Claim the link once, bind it to the browser, and return Datadog's authorize URL."""
    now = utcnow()
    flow = (
        await session.scalars(
            select(OAuthFlow).where(OAuthFlow.ticket_hash == digest(ticket)).with_for_update()
        )
    ).one_or_none()
    if flow is None or flow.started_at is not None or flow.expires_at <= now:
        raise FlowFailure(
            410,
            "This connection link has expired",
            "Connection links work once and only for a few minutes.",
            "Go back to the partner's product and start connecting again.",
        )
    state = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)
    flow.started_at = now
    flow.expires_at = now + timedelta(seconds=res.settings.flow_ttl_seconds)
    flow.state_hash = digest(state)
    flow.browser_hash = digest(browser_id)
    flow.code_verifier = res.keyring.seal(verifier, context=f"flow:{flow.id}:code_verifier")
    client = res.settings.client_for(flow.domain or US1_DOMAIN)
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
    """Finish the flow Datadog sent the browser back from; see the module docstring."""
    flow = await _claim_flow(session, params.state, browser_id)
    verifier = res.keyring.open(flow.code_verifier or b"", context=f"flow:{flow.id}:code_verifier")
    await session.commit()
    if params.error:
        raise datadog_explained.authorize_failure(params.error, params.error_description)
    site = _callback_site(res.sites, flow, params)
    if not params.code or not params.dd_oid:
        raise FlowFailure(
            400,
            "Incomplete answer from Datadog",
            "Datadog's answer did not include an authorization code and organization.",
            "Start connecting again; if it keeps happening, contact the partner's support.",
        )
    client = res.settings.client_for(site.domain)
    try:
        grant = await res.datadog.exchange_code(
            site,
            client,
            code=params.code,
            code_verifier=verifier,
            redirect_uri=res.settings.callback_url,
        )
    except DatadogError as exc:
        raise datadog_explained.token_failure(exc) from exc
    connection = await _save_grant(
        res, session, flow, site, params.dd_oid, params.dd_org_name or params.dd_oid, grant
    )
    caveat = await _ensure_api_key(res, session, connection, site, grant.access_token)
    flow.connection_id = connection.id
    await session.commit()
    await _ring_refresh(res, connection)
    return Connected(connection, flow.return_to, caveat)


async def _ring_refresh(res: Resources, connection: Connection) -> None:
    """Schedule the token's refresh; if Redis is down, the worker's cron finds it anyway."""
    if connection.access_token_expires_at is None:
        return
    margin = timedelta(seconds=res.settings.refresh_margin_seconds)
    try:
        await jobs.schedule_refresh(
            res.redis, connection.id, connection.access_token_expires_at, margin
        )
    except (RedisError, OSError) as exc:
        log.warning("could not schedule refresh of %s: %s", connection.id, type(exc).__name__)


async def _claim_flow(
    session: AsyncSession, state: str | None, browser_id: str | None
) -> OAuthFlow:
    """Mark the flow of `state` completed, whatever follows: a state works exactly once."""
    expired = FlowFailure(
        400,
        "This sign-in answer is not valid here",
        "The answer from Datadog does not belong to a connection started in this browser in "
        "the last few minutes (it expired, was already used, or was opened elsewhere).",
        "Go back to the partner's product and start connecting again from this browser.",
    )
    if not state:
        raise expired
    flow = (
        await session.scalars(
            select(OAuthFlow).where(OAuthFlow.state_hash == digest(state)).with_for_update()
        )
    ).one_or_none()
    if flow is None or flow.completed_at is not None:
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


async def _save_grant(
    res: Resources,
    session: AsyncSession,
    flow: OAuthFlow,
    site: Site,
    dd_oid: str,
    org_name: str,
    grant: TokenGrant,
) -> Connection:
    """Create or update the org's connection with the new tokens, and commit."""
    connection = await conns.find_by_org(session, site.domain, dd_oid)
    if connection is None:
        connection = Connection(
            id=uuid.uuid4(),
            account_id=flow.account_id,
            domain=site.domain,
            dd_org_id=dd_oid,
            dd_org_name=org_name,
            status=ConnectionStatus.PENDING,
            status_reason="authorized; creating API key",
            scopes=[],
        )
        session.add(connection)
        conns.record_creation(session, connection)
    elif connection.account_id != flow.account_id:
        conns.transition(
            session,
            connection,
            connection.status,
            f"re-authorized by account {flow.account_id} (was {connection.account_id})",
        )
        connection.account_id = flow.account_id
    connection.dd_org_name = org_name
    conns.store_grant(res.keyring, connection, grant)
    await session.commit()
    return connection


async def _ensure_api_key(
    res: Resources, session: AsyncSession, connection: Connection, site: Site, access_token: str
) -> str | None:
    """Make sure the connection holds a working API key; return a caveat for the customer.

    A stored key that still validates is kept. Otherwise the key is created once (never
    retried blindly: Datadog shows it only once) and committed before anything else.
    """
    stored = conns.open_secret(res.keyring, connection, "api_key")
    if stored is not None and await _keep_stored_key(res, site, stored):
        conns.transition(session, connection, ConnectionStatus.ACTIVE, "authorized")
        return None
    try:
        key = await res.datadog.create_api_key(site, access_token)
    except DatadogConflict:
        connection.api_key = None
        conns.transition(session, connection, ConnectionStatus.ACTIVE, API_KEY_NOT_RECEIVED)
        return datadog_explained.API_KEY_RECOVERY
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
    connection.api_key = conns.seal(res.keyring, connection, "api_key", key)
    conns.transition(session, connection, ConnectionStatus.ACTIVE, "authorized")
    await session.commit()
    log.info("connection %s authorized with a new API key", connection.id)
    return None


async def _keep_stored_key(res: Resources, site: Site, api_key: str) -> bool:
    """Keep a stored key unless Datadog says it is invalid (a new one is then created).

    When validation cannot answer, the key is kept: creating another would only get a 409.
    """
    try:
        return await res.datadog.validate_api_key(site, api_key)
    except DatadogError:
        return True


def _challenge(verifier: str) -> str:
    """PKCE S256: BASE64URL(SHA256(verifier)) without padding."""
    return (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
