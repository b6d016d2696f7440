"""The authorize step: check a request, offer consent, and say where the browser goes next.

Failures Datadog shows as an error page raise `AuthorizePageError` (bad client_id or
redirect_uri: nothing may be sent to an unverified redirect_uri). Later failures, and a denial,
raise `AuthorizeRedirect`, which sends the browser back with `error` and `error_description`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from fastapi.responses import RedirectResponse, Response

from fakedatadog.errors import AuthorizePageError, EmulatorError
from fakedatadog.hosts import Host
from fakedatadog.sites import US1_DOMAIN
from fakedatadog.state import AuthCode, Client, EmulatorState, Org

_PARAMS = (
    "client_id",
    "redirect_uri",
    "response_type",
    "code_challenge",
    "code_challenge_method",
    "state",
)


class AuthorizeRedirect(EmulatorError):
    """An OAuth error sent back to the (verified) redirect_uri as a 302 (RFC 6749 4.1.2.1)."""

    status = 302

    def __init__(self, redirect_uri: str, state: str | None, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.location = with_query(
            redirect_uri, {"error": error, "error_description": description, "state": state}
        )

    def response(self) -> Response:
        return RedirectResponse(self.location, status_code=self.status)


@dataclass(frozen=True, slots=True)
class Consent:
    """A checked request: what the consent page shows, and what approving it needs."""

    params: dict[str, str]
    client_name: str
    scopes: tuple[str, ...]
    orgs: tuple[Org, ...]
    client_id: str
    redirect_uri: str
    code_challenge: str
    state: str | None


def check(state: EmulatorState, host: Host, query: Mapping[str, str]) -> Consent:
    """Validate an authorize request on app host `host`, as GET and as the consent POST do.

    Only on the US1 app host may the client be registered on another site: there the user
    picks an org of any region, and approval checks the registration on that org's site.
    """
    params = {name: query[name] for name in _PARAMS if name in query}
    client_id = params.get("client_id", "")
    redirect_uri = params.get("redirect_uri", "")
    registrations = _registrations(state, host, client_id)
    if not registrations:
        raise AuthorizePageError("invalid_request", "Invalid client_id parameter value")
    matching = [c for c in registrations if redirect_uri in c.redirect_uris]
    if not matching:
        raise AuthorizePageError("invalid_request", "Mismatching redirect URI")

    def fail(description: str) -> AuthorizeRedirect:
        return AuthorizeRedirect(redirect_uri, params.get("state"), "invalid_request", description)

    if "response_type" not in params:
        raise fail("Missing response_type parameter")
    if params["response_type"] != "code":
        raise fail("Invalid response_type parameter value")
    if not params.get("code_challenge"):
        raise fail("Missing code_challenge parameter")
    if params.get("code_challenge_method") != "S256":
        raise fail("Invalid code_challenge_method parameter value: S256 is required")
    return Consent(
        params=params,
        client_name=matching[0].name,
        scopes=matching[0].scopes,
        orgs=_eligible_orgs(state, host),
        client_id=client_id,
        redirect_uri=redirect_uri,
        code_challenge=params["code_challenge"],
        state=params.get("state"),
    )


def deny(consent: Consent) -> AuthorizeRedirect:
    """The redirect telling the client that the user refused."""
    return AuthorizeRedirect(
        consent.redirect_uri, consent.state, "access_denied", "The user denied access"
    )


def approve(state: EmulatorState, host: Host, consent: Consent, dd_oid: str | None) -> str:
    """Approve as org `dd_oid`: issue a code and return the redirect URL carrying it.

    Raises `AuthorizePageError` if the org is not one the user could pick or the client has no
    matching registration on its site, and `AuthorizeRedirect` if an unpublished client is
    approved by an org outside its sandbox.
    """
    org = next((o for o in consent.orgs if o.dd_oid == dd_oid), None)
    if org is None:
        raise AuthorizePageError("invalid_request", "Invalid dd_oid parameter value")
    client = state.client(org.site.domain, consent.client_id)
    if client is None:
        raise AuthorizePageError("invalid_request", "Invalid client_id parameter value")
    if consent.redirect_uri not in client.redirect_uris:
        raise AuthorizePageError("invalid_request", "Mismatching redirect URI")
    if not client.admits(org):
        raise AuthorizeRedirect(
            consent.redirect_uri,
            consent.state,
            "invalid_request",
            "Invalid client_id parameter value",
        )
    code = state.new_secret()
    state.codes[code] = AuthCode(
        code=code,
        client_id=client.client_id,
        redirect_uri=consent.redirect_uri,
        code_challenge=consent.code_challenge,
        org=org,
        expires_at=time.monotonic() + state.settings.code_ttl_seconds,
    )
    return with_query(
        consent.redirect_uri,
        {
            "code": code,
            "state": consent.state,
            "domain": org.site.domain,
            "site": host.name,
            "client_id": client.client_id,
            "dd_oid": org.dd_oid,
            "dd_org_name": org.name,
        },
    )


def with_query(url: str, params: Mapping[str, str | None]) -> str:
    """`url` with `params` (those not None) appended to any query it already has."""
    parts = urlsplit(url)
    added = urlencode({k: v for k, v in params.items() if v is not None})
    query = f"{parts.query}&{added}" if parts.query else added
    return urlunsplit(parts._replace(query=query))


def _is_region_picker(host: Host) -> bool:
    return host.org is None and host.site is not None and host.site.domain == US1_DOMAIN


def _registrations(state: EmulatorState, host: Host, client_id: str) -> list[Client]:
    if _is_region_picker(host):
        return state.registrations(client_id)
    assert host.site is not None
    client = state.client(host.site.domain, client_id)
    return [client] if client is not None else []


def _eligible_orgs(state: EmulatorState, host: Host) -> tuple[Org, ...]:
    if host.org is not None:
        return (host.org,)
    if _is_region_picker(host):
        return tuple(state.orgs.values())
    return tuple(o for o in state.orgs.values() if o.site == host.site)
