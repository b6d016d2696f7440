"""Calls to Datadog for one org's site: OAuth, the API key, intake submissions, reads and
forwarded operations.

Every method takes a `Site` from the trusted registry, never a raw string, so an untrusted
domain cannot become a destination. The `httpx.AsyncClient` is injected; the URL of a host
comes from `DDBRIDGE_DATADOG_URL_TEMPLATE`, which changes where requests go, never which
sites are trusted. Nothing here retries: callers decide with the typed errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from service.datadog.errors import (
    DatadogRejected,
    DatadogUnauthorized,
    error_from_response,
    transport_error,
)
from service.settings import ClientCredentials
from service.sites import Site


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """A token answer. `refresh_token` is None when Datadog did not send a new one."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_in: int
    scopes: list[str]


class DatadogUrls:
    """Turns a real Datadog host and path into the URL requests go to (and browsers go to,
    which differs only when the service and browsers reach Datadog by different routes)."""

    def __init__(self, template: str, browser_template: str | None = None) -> None:
        self._template = template
        self._browser_template = browser_template or template

    def url(self, host: str, path: str) -> str:
        return self._template.format(host=host) + path

    def browser_url(self, host: str, path: str) -> str:
        return self._browser_template.format(host=host) + path


class DatadogClient:
    """OAuth token, revoke, marketplace API key and key validation calls."""

    def __init__(self, http: httpx.AsyncClient, urls: DatadogUrls) -> None:
        self._http = http
        self.urls = urls

    def authorize_url(self, app_host: str) -> str:
        """The authorize page on a validated app host (a site's or a customer subdomain)."""
        return self.urls.browser_url(app_host, "/oauth2/v1/authorize")

    async def exchange_code(
        self,
        site: Site,
        client: ClientCredentials,
        *,
        code: str,
        code_verifier: str,
        redirect_uri: str,
    ) -> TokenGrant:
        return await self._token(
            site,
            client,
            {
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": code_verifier,
                "redirect_uri": redirect_uri,
            },
        )

    async def refresh(
        self, site: Site, client: ClientCredentials, refresh_token: str
    ) -> TokenGrant:
        return await self._token(
            site, client, {"grant_type": "refresh_token", "refresh_token": refresh_token}
        )

    async def revoke(self, site: Site, client: ClientCredentials, token: str) -> None:
        """Revoke a token; Datadog answers 200 even for a token it does not know."""
        await self._post(
            site.api_host,
            "/oauth2/v1/revoke",
            data={
                "client_id": client.client_id,
                "client_secret": client.client_secret.get_secret_value(),
                "token": token,
            },
        )

    async def create_api_key(self, site: Site, auth: dict[str, str]) -> str:
        """Create the org's marketplace API key; Datadog shows it once (409 the second time)."""
        body = await self._post(site.api_host, "/api/v2/api_keys/marketplace", headers=auth)
        try:
            key = body["data"]["attributes"]["key"]
        except (KeyError, TypeError) as exc:
            raise DatadogRejected("API key answer has no data.attributes.key") from exc
        if not isinstance(key, str) or not key:
            raise DatadogRejected("API key answer has an empty key")
        return key

    async def validate_api_key(self, site: Site, auth: dict[str, str]) -> bool:
        """True for 200 `{"valid": true}`, False for 403; other answers raise."""
        try:
            body = await self._request("GET", site.api_host, "/api/v1/validate", headers=auth)
        except DatadogUnauthorized as exc:
            if exc.status == 403:
                return False
            raise
        return body.get("valid") is True

    async def submit(
        self, host: str, path: str, body: bytes, *, headers: dict[str, str]
    ) -> httpx.Response:
        """POST a prepared intake body (`headers` carry the credential's auth header); the
        2xx answer (an OTLP intake's may report a partial success); any other raises the
        typed error it means."""
        try:
            response = await self._http.post(
                self.urls.url(host, path), content=body, headers=headers
            )
        except httpx.TransportError as exc:
            raise transport_error(exc) from exc
        if not response.is_success:
            raise error_from_response(response)
        return response

    async def read(
        self, site: Site, path: str, auth: dict[str, str], params: dict[str, str]
    ) -> Any:
        """GET a read endpoint on `api.<domain>` with the org's token; the JSON answer."""
        try:
            response = await self._http.get(
                self.urls.url(site.api_host, path), params=params, headers=auth
            )
        except httpx.TransportError as exc:
            raise transport_error(exc) from exc
        if not response.is_success:
            raise error_from_response(response)
        return response.json()

    async def forward(
        self,
        site: Site,
        method: str,
        path: str,
        query: str,
        *,
        headers: dict[str, str],
        body: bytes,
    ) -> httpx.Response:
        """Send a request as prepared (path and query percent-encoded as the caller sent
        them) to `api.<domain>`; Datadog's answer whatever its status. Only a transport
        failure raises (`DatadogUnavailable`)."""
        url = self.urls.url(site.api_host, path) + (f"?{query}" if query else "")
        try:
            return await self._http.request(method, url, content=body or None, headers=headers)
        except httpx.TransportError as exc:
            raise transport_error(exc) from exc

    async def _token(
        self, site: Site, client: ClientCredentials, form: dict[str, str]
    ) -> TokenGrant:
        body = await self._post(
            site.api_host,
            "/oauth2/v1/token",
            data={
                **form,
                "client_id": client.client_id,
                "client_secret": client.client_secret.get_secret_value(),
            },
        )
        try:
            return TokenGrant(
                access_token=str(body["access_token"]),
                refresh_token=str(body["refresh_token"]) if body.get("refresh_token") else None,
                expires_in=int(body.get("expires_in", 3600)),
                scopes=str(body.get("scope", "")).split(),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DatadogRejected("token answer is missing access_token") from exc

    async def _post(
        self,
        host: str,
        path: str,
        *,
        data: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        return await self._request("POST", host, path, data=data, headers=headers)

    async def _request(
        self,
        method: str,
        host: str,
        path: str,
        *,
        data: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        try:
            response = await self._http.request(
                method, self.urls.url(host, path), data=data, headers=headers
            )
        except httpx.TransportError as exc:
            raise transport_error(exc) from exc
        if not response.is_success:
            raise error_from_response(response)
        try:
            body = response.json()
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}
