"""Connecting orgs for the benchmark through the real OAuth flow, over HTTP only.

`connect_orgs` plays partner, browser and Datadog user for ddbridge's onboarding (the
emulator's consent switch approves). `direct_api_key` does what a partner without ddbridge
does once per org: its own authorization-code grant with PKCE, then the marketplace API key,
which the official client then uses.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx

from bench.stack import Stack
from service.sites import KNOWN_SITES

SCOPES = ["api_keys_write", "monitors_read", "incident_write", "incident_read"]


@dataclass(frozen=True, slots=True)
class Connected:
    """One org connected through ddbridge."""

    connection_id: str
    dd_oid: str
    domain: str


@asynccontextmanager
async def clients(
    stack: Stack, *, limits: httpx.Limits | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """(the emulator's control plane, ddbridge's internal API with the stack's token)."""
    pool = limits or httpx.Limits()
    async with (
        httpx.AsyncClient(base_url=stack.emulator_url, timeout=30, limits=pool) as emu,
        httpx.AsyncClient(
            base_url=stack.api_url,
            headers={"Authorization": f"Bearer {stack.internal_token}"},
            timeout=30,
            limits=pool,
        ) as api,
    ):
        yield emu, api


async def register_client(
    emu: httpx.AsyncClient, stack: Stack, domains: list[str], scopes: list[str] = SCOPES
) -> None:
    """Register the stack's OAuth client, redirecting to its callback, on each of `domains`."""
    callback = f"{stack.api_url}/oauth/callback"
    await _register(emu, stack.client_id, stack.client_secret, callback, domains, scopes)


async def _register(
    emu: httpx.AsyncClient,
    client_id: str,
    secret: str,
    redirect_uri: str,
    domains: list[str],
    scopes: list[str],
) -> None:
    for domain in domains:
        response = await emu.post(
            "/_emulator/clients",
            json={
                "client_id": client_id,
                "client_secret": secret,
                "name": "ddbridge bench",
                "domain": domain,
                "redirect_uris": [redirect_uri],
                "scopes": scopes,
                "published": True,
            },
        )
        response.raise_for_status()


async def create_org(emu: httpx.AsyncClient, domain: str, name: str) -> str:
    """A new emulator org on `domain`; its dd_oid."""
    response = await emu.post("/_emulator/orgs", json={"name": name, "domain": domain})
    response.raise_for_status()
    dd_oid: str = response.json()["dd_oid"]
    return dd_oid


async def approve_as(emu: httpx.AsyncClient, dd_oid: str) -> None:
    """Make the emulator's authorize step approve at once, as org `dd_oid`."""
    response = await emu.post("/_emulator/consent", json={"mode": "approve", "dd_oid": dd_oid})
    response.raise_for_status()


async def connect_org(
    api: httpx.AsyncClient, emu: httpx.AsyncClient, account_id: str, domain: str
) -> Connected:
    """Run ddbridge's onboarding for a new org on `domain`; the resulting connection."""
    dd_oid = await create_org(emu, domain, f"Bench {account_id}")
    await approve_as(emu, dd_oid)
    created = await api.post(
        "/internal/v1/authorizations", json={"account_id": account_id, "domain": domain}
    )
    created.raise_for_status()
    async with httpx.AsyncClient(timeout=30) as browser:
        start_url = created.json()["authorize_url"]
        await browser.get(start_url)  # the confirmation page; it sets the browser cookie
        confirmed = await browser.post(start_url)
        if confirmed.status_code != 303:
            raise RuntimeError(f"confirming answered {confirmed.status_code}: {confirmed.text}")
        authorized = await browser.get(confirmed.headers["location"])  # Datadog's authorize
        if authorized.status_code != 302:
            raise RuntimeError(f"authorize answered {authorized.status_code}: {authorized.text}")
        page = await browser.get(authorized.headers["location"])
        if page.status_code != 200:
            raise RuntimeError(f"callback answered {page.status_code}: {page.text}")
    listed = await api.get("/internal/v1/connections", params={"account_id": account_id})
    listed.raise_for_status()
    [connection] = listed.json()
    if connection["status"] != "active" or not connection["has_api_key"]:
        raise RuntimeError(f"connection not ready: {connection}")
    return Connected(connection["id"], dd_oid, domain)


async def connect_orgs(
    emu: httpx.AsyncClient, api: httpx.AsyncClient, stack: Stack, count: int
) -> list[Connected]:
    """`count` orgs spread round-robin over the nine sites, each connected through ddbridge
    (the stack's client registered on every site first).

    One after another: the emulator's consent switch is global.
    """
    domains = [site.domain for site in KNOWN_SITES]
    await register_client(emu, stack, domains)
    run_id = secrets.token_hex(3)
    return [
        await connect_org(api, emu, f"bench-{run_id}-{i}", domains[i % len(domains)])
        for i in range(count)
    ]


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class DirectOrg:
    """An org a partner reaches without ddbridge: its id and its API key."""

    dd_oid: str
    api_key: str


async def direct_api_key(emu: httpx.AsyncClient, domain: str = "datadoghq.com") -> DirectOrg:
    """A new org on `domain` and its marketplace API key, obtained as a partner would."""
    app_host = next(site.app_host for site in KNOWN_SITES if site.domain == domain)
    api_host = f"api.{domain}"
    client_id, secret = f"partner-{secrets.token_hex(4)}", secrets.token_urlsafe(24)
    redirect_uri = "https://partner.example/callback"
    await _register(emu, client_id, secret, redirect_uri, [domain], SCOPES)
    dd_oid = await create_org(emu, domain, "Bench partner without ddbridge")
    await approve_as(emu, dd_oid)
    verifier, challenge = _pkce()
    authorized = await emu.get(
        f"/{app_host}/oauth2/v1/authorize",
        params={
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": secrets.token_urlsafe(8),
        },
    )
    code = parse_qs(urlsplit(authorized.headers["location"]).query)["code"][0]
    token = await emu.post(
        f"/{api_host}/oauth2/v1/token",
        data={
            "grant_type": "authorization_code",
            "client_id": client_id,
            "client_secret": secret,
            "redirect_uri": redirect_uri,
            "code": code,
            "code_verifier": verifier,
        },
    )
    token.raise_for_status()
    key = await emu.post(
        f"/{api_host}/api/v2/api_keys/marketplace",
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
    )
    key.raise_for_status()
    return DirectOrg(dd_oid, key.json()["data"]["attributes"]["key"])
