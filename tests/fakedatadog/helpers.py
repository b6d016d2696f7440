"""A thin test client for the emulator: set up orgs and clients, walk the OAuth flow."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

EXTRA_DOMAIN = "example-dd.com"
REDIRECT_URI = "https://partner.example/oauth/callback?tenant=7"
SCOPES = ["api_keys_write", "incident_write"]
ALL_SCOPES = ["api_keys_write", "incident_write", "monitors_read"]


def challenge_of(verifier: str) -> str:
    """RFC 7636 S256, computed independently of the emulator."""
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def query_of(response: httpx.Response) -> dict[str, str]:
    """The query parameters of a redirect's Location (each must occur once)."""
    assert response.status_code == 302, response.text
    parsed = parse_qs(urlsplit(response.headers["location"]).query)
    assert all(len(values) == 1 for values in parsed.values()), parsed
    return {name: values[0] for name, values in parsed.items()}


@dataclass
class Flow:
    """One authorization attempt: its PKCE verifier and the parameters sent to authorize."""

    client: dict[str, Any]
    verifier: str
    state: str
    redirect_uri: str = REDIRECT_URI

    @property
    def params(self) -> dict[str, str]:
        return {
            "client_id": self.client["client_id"],
            "redirect_uri": self.redirect_uri,
            "response_type": "code",
            "code_challenge": challenge_of(self.verifier),
            "code_challenge_method": "S256",
            "state": self.state,
        }


@dataclass(frozen=True)
class Tenant:
    """An org connected through OAuth, holding its access token and marketplace API key."""

    org: dict[str, Any]
    access_token: str
    api_key: str

    @property
    def dd_oid(self) -> str:
        value: str = self.org["dd_oid"]
        return value

    @property
    def domain(self) -> str:
        value: str = self.org["domain"]
        return value


@dataclass
class Emu:
    """The emulator as tests drive it: control plane and Datadog hosts over real HTTP."""

    http: httpx.AsyncClient

    async def org(self, name: str, domain: str, subdomain: str | None = None) -> dict[str, Any]:
        body = {"name": name, "domain": domain, "subdomain": subdomain}
        response = await self.http.post("/_emulator/orgs", json=body)
        assert response.status_code == 201, response.text
        org: dict[str, Any] = response.json()
        return org

    async def client(
        self,
        domain: str,
        *,
        published: bool = True,
        sandbox_org: str | None = None,
        scopes: list[str] | None = None,
        client_id: str | None = None,
    ) -> dict[str, Any]:
        body = {
            "client_id": client_id,
            "name": "Partner <App>",
            "domain": domain,
            "redirect_uris": [REDIRECT_URI],
            "scopes": SCOPES if scopes is None else scopes,
            "published": published,
            "sandbox_org": sandbox_org,
        }
        response = await self.http.post("/_emulator/clients", json=body)
        assert response.status_code == 201, response.text
        client: dict[str, Any] = response.json()
        return client

    def flow(self, client: dict[str, Any]) -> Flow:
        return Flow(client, verifier=secrets.token_urlsafe(48), state=secrets.token_urlsafe(8))

    async def decide(
        self, app_host: str, flow: Flow, dd_oid: str, decision: str = "approve"
    ) -> httpx.Response:
        """Post the consent form as the browser would."""
        form = {**flow.params, "decision": decision, "dd_oid": dd_oid}
        return await self.http.post(f"/{app_host}/oauth2/v1/authorize", data=form)

    async def code(self, app_host: str, flow: Flow, dd_oid: str) -> str:
        return query_of(await self.decide(app_host, flow, dd_oid))["code"]

    async def token(self, domain: str, **params: str) -> httpx.Response:
        return await self.http.post(f"/api.{domain}/oauth2/v1/token", data=params)

    async def exchange(
        self, domain: str, flow: Flow, code: str, /, **overrides: str
    ) -> httpx.Response:
        params = {
            "grant_type": "authorization_code",
            "client_id": flow.client["client_id"],
            "client_secret": flow.client["client_secret"],
            "code": code,
            "redirect_uri": flow.redirect_uri,
            "code_verifier": flow.verifier,
        }
        return await self.token(domain, **{**params, **overrides})

    async def connect(self, org: dict[str, Any], client: dict[str, Any]) -> dict[str, Any]:
        """Authorize `client` as `org` on its app host and exchange the code: the tokens."""
        flow = self.flow(client)
        code = await self.code(org["app_host"], flow, org["dd_oid"])
        response = await self.exchange(org["domain"], flow, code)
        assert response.status_code == 200, response.text
        tokens: dict[str, Any] = response.json()
        return tokens

    async def refresh(self, domain: str, client: dict[str, Any], token: str) -> httpx.Response:
        return await self.token(
            domain,
            grant_type="refresh_token",
            client_id=client["client_id"],
            client_secret=client["client_secret"],
            refresh_token=token,
        )

    async def create_api_key(self, domain: str, access_token: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {access_token}"}
        return await self.http.post(f"/api.{domain}/api/v2/api_keys/marketplace", headers=headers)

    async def validate(self, domain: str, api_key: str | None) -> httpx.Response:
        headers = {} if api_key is None else {"DD-API-KEY": api_key}
        return await self.http.get(f"/api.{domain}/api/v1/validate", headers=headers)

    async def requests(self, **filters: str) -> list[dict[str, Any]]:
        response = await self.http.get("/_emulator/requests", params=filters)
        assert response.status_code == 200
        recorded: list[dict[str, Any]] = response.json()["requests"]
        return recorded

    async def tenant(
        self, domain: str, *, name: str = "Acme", scopes: list[str] | None = None
    ) -> Tenant:
        """A new org on `domain`, connected by a new client with `scopes` (all by default),
        with its API key: the normal OAuth flow, then the marketplace key endpoint."""
        org = await self.org(name, domain)
        tokens = await self.connect(org, await self.client(domain, scopes=scopes or ALL_SCOPES))
        created = await self.create_api_key(domain, tokens["access_token"])
        assert created.status_code == 201, created.text
        return Tenant(org, tokens["access_token"], created.json()["data"]["attributes"]["key"])

    async def intake(self, dd_oid: str, signal: str) -> dict[str, Any]:
        """`GET /_emulator/intake`: the org's stored items of `signal` and its request count."""
        response = await self.http.get(
            "/_emulator/intake", params={"dd_oid": dd_oid, "signal": signal}
        )
        assert response.status_code == 200, response.text
        stored: dict[str, Any] = response.json()
        return stored

    async def counts(self) -> dict[str, Any]:
        response = await self.http.get("/_emulator/intake/counts")
        assert response.status_code == 200, response.text
        counts: dict[str, Any] = response.json()["counts"]
        return counts
