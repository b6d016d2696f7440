"""The token and revoke endpoints' logic: client authentication, code exchange, refresh, revoke.

Every function takes the site whose `api.<domain>` host was called: client registrations,
codes and grants of another site's orgs are invisible there.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from typing import Any

from fakedatadog.errors import OAuthError, invalid_client
from fakedatadog.params import FORM, JSON
from fakedatadog.sites import Site
from fakedatadog.state import AccessToken, Client, EmulatorState, Grant, RefreshToken

_INVALID_CODE = "Invalid code or code verifier"
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636 4.1


def authenticate(state: EmulatorState, site: Site, params: Mapping[str, str]) -> Client:
    """The client registration on `site` named by `client_id` whose secret matches; else 401."""
    client = state.client(site.domain, params.get("client_id", ""))
    secret = params.get("client_secret")
    if client is None or secret is None:
        raise invalid_client()
    if not hmac.compare_digest(secret.encode(), client.client_secret.encode()):
        raise invalid_client()
    return client


def grant_tokens(
    state: EmulatorState, site: Site, media_type: str, params: Mapping[str, str]
) -> dict[str, Any]:
    """Handle one token request: authenticate the client, then run its `grant_type`.

    A body that is neither form-encoded nor JSON (`media_type`) cannot carry a code: Datadog
    answers it with its "Invalid code or code verifier" 400 before looking at the client.
    """
    if media_type not in (FORM, JSON):
        raise OAuthError("invalid_request", _INVALID_CODE)
    client = authenticate(state, site, params)
    grant_type = _require(params, "grant_type")
    if grant_type == "authorization_code":
        return _exchange_code(state, site, client, params)
    if grant_type == "refresh_token":
        return _refresh(state, client, params)
    raise OAuthError("unsupported_grant_type", f"Unsupported grant_type {grant_type!r}")


def revoke(state: EmulatorState, site: Site, params: Mapping[str, str]) -> None:
    """Revoke `token` if this client holds it (RFC 7009); unknown tokens are silently ignored.

    A refresh token takes its whole grant with it (every refresh and access token); an access
    token only itself.
    """
    client = authenticate(state, site, params)
    token = _require(params, "token")
    refresh = state.refresh_tokens.get(token)
    if refresh is not None and _holds(client, refresh.grant):
        refresh.grant.revoked = True
    access = state.access_tokens.get(token)
    if access is not None and _holds(client, access.grant):
        access.revoked = True


def _exchange_code(
    state: EmulatorState, site: Site, client: Client, params: Mapping[str, str]
) -> dict[str, Any]:
    """Trade a code for tokens. Any failure after the code is found burns it.

    The verifier must be well-formed (43-128 unreserved characters) and hash to the challenge.
    """
    code_value = _require(params, "code")
    redirect_uri = _require(params, "redirect_uri")
    verifier = _require(params, "code_verifier")
    code = state.codes.get(code_value)
    if code is None or code.used or time.monotonic() >= code.expires_at:
        raise OAuthError("invalid_grant", _INVALID_CODE)
    code.used = True
    if code.client_id != client.client_id or code.org.site != site:
        raise OAuthError("invalid_grant", _INVALID_CODE)
    if not _VERIFIER.fullmatch(verifier) or not hmac.compare_digest(
        _pkce_challenge(verifier), code.code_challenge
    ):
        raise OAuthError("invalid_grant", _INVALID_CODE)
    if redirect_uri != code.redirect_uri:
        raise OAuthError("invalid_request", "Mismatching redirect URI")
    grant = Grant(client_id=client.client_id, org=code.org, scopes=client.scopes)
    return issue(state, grant)


def _refresh(state: EmulatorState, client: Client, params: Mapping[str, str]) -> dict[str, Any]:
    """New access and refresh tokens; the old refresh token dies only if rotation is on."""
    token = state.refresh_tokens.get(_require(params, "refresh_token"))
    if token is None or not token.active or not _holds(client, token.grant):
        raise OAuthError("invalid_grant", "Invalid refresh token")
    if state.settings.rotate_refresh_tokens:
        token.rotated = True
    return issue(state, token.grant)


def issue(state: EmulatorState, grant: Grant) -> dict[str, Any]:
    """New access and refresh tokens of `grant`, as the token endpoint answers them."""
    refresh = RefreshToken(state.new_secret(), grant)
    ttl = state.settings.access_token_ttl_seconds
    access = AccessToken(state.new_secret(), grant, expires_at=time.monotonic() + ttl)
    state.refresh_tokens[refresh.token] = refresh
    state.access_tokens[access.token] = access
    return {
        "access_token": access.token,
        "refresh_token": refresh.token,
        "token_type": "Bearer",
        "expires_in": ttl,
        "scope": " ".join(grant.scopes),
    }


def _holds(client: Client, grant: Grant) -> bool:
    """Whether `grant` was issued to this client registration (same client_id and site)."""
    return grant.client_id == client.client_id and grant.org.site == client.site


def _require(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise OAuthError("invalid_request", f"Missing {name} parameter")
    return value


def _pkce_challenge(verifier: str) -> str:
    """`BASE64URL(SHA256(verifier))` without padding (RFC 7636 S256)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
