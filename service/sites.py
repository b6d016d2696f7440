"""Datadog sites: the one table of known sites, and strict parsing of untrusted `site`/`domain`.

The allowlist is a security boundary: ddbridge sends its client secret and authorization codes
to `api.<domain>`, so a domain reaches an outbound request only as a `Site` from this registry.
Nothing normalises input: Datadog sends lower-case hosts without trailing dots, and anything
else is refused rather than guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from service.errors import InvalidInput, Problem

US1_DOMAIN = "datadoghq.com"

_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# Labels that name Datadog's own hosts; they are never a customer's subdomain.
_RESERVED_LABELS = frozenset({"api", "app", "trace", "http-intake", "www", "intake", "agent"})


@dataclass(frozen=True, slots=True)
class Site:
    """One Datadog site, named by its bare domain (`datadoghq.eu`)."""

    name: str
    domain: str
    app_host: str
    has_otlp_intake: bool = True
    """Agentless OTLP intake (traces on `trace.agent.`, metrics and logs on `otlp.`); Datadog
    lists none for the FED sites."""

    @property
    def api_host(self) -> str:
        """Every API call (OAuth token, API keys, metrics, events) goes here."""
        return f"api.{self.domain}"

    @property
    def logs_host(self) -> str:
        return f"http-intake.logs.{self.domain}"

    @property
    def trace_host(self) -> str:
        """Agentless OTLP trace intake."""
        return f"trace.agent.{self.domain}"

    @property
    def otlp_host(self) -> str:
        """Agentless OTLP metrics and logs intake."""
        return f"otlp.{self.domain}"


KNOWN_SITES: tuple[Site, ...] = (
    Site("US1", "datadoghq.com", "app.datadoghq.com"),
    Site("US3", "us3.datadoghq.com", "us3.datadoghq.com"),
    Site("US5", "us5.datadoghq.com", "us5.datadoghq.com"),
    Site("EU1", "datadoghq.eu", "app.datadoghq.eu"),
    Site("AP1", "ap1.datadoghq.com", "ap1.datadoghq.com"),
    Site("AP2", "ap2.datadoghq.com", "ap2.datadoghq.com"),
    Site("UK1", "uk1.datadoghq.com", "uk1.datadoghq.com"),
    Site("US1-FED", "ddog-gov.com", "app.ddog-gov.com", has_otlp_intake=False),
    Site("US2-FED", "us2.ddog-gov.com", "us2.ddog-gov.com", has_otlp_intake=False),
)


class UnknownSiteError(InvalidInput):
    """A `site` or `domain` that is not a Datadog site ddbridge trusts: 422 naming the field
    on the internal API; the browser routes show `onboarding.unknown_site_failure` instead."""

    def __init__(self, field: str, value: str, reason: str) -> None:
        super().__init__(
            [Problem(f"/{field}", reason)],
            detail=f"{field} {value!r} is not a known Datadog site: {reason}",
        )
        self.field = field
        self.value = value
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AuthorizeTarget:
    """Where a browser authorizes: the site (if known yet) and the app host it browses.

    `site` is None for a flow started without `site`/`domain`: the browser goes to the US1 app
    host, the user picks a region there, and the region arrives with the callback.
    """

    site: Site | None
    app_host: str


class SiteRegistry:
    """The trusted sites: the nine known ones plus operator-configured extra domains.

    An extra domain `example-dd.com` gets the app host `app.example-dd.com`, like US1 and EU1.
    """

    def __init__(self, extra_domains: Iterable[str] = ()) -> None:
        sites = list(KNOWN_SITES)
        for domain in extra_domains:
            if not _is_hostname(domain):
                raise ValueError(f"extra site {domain!r} is not a lower-case host name")
            if all(site.domain != domain for site in sites):
                sites.append(Site(domain, domain, f"app.{domain}"))
        self._by_domain = {site.domain: site for site in sites}
        self._by_app_host = {site.app_host: site for site in sites}

    @property
    def sites(self) -> tuple[Site, ...]:
        return tuple(self._by_domain.values())

    def by_domain(self, domain: str, *, field: str = "domain") -> Site:
        """The site whose bare domain is exactly `domain`; raises `UnknownSiteError`."""
        site = self._by_domain.get(domain)
        if site is None:
            raise UnknownSiteError(field, domain, "not one of the supported Datadog domains")
        return site

    def parse_site(self, value: str) -> tuple[Site, str]:
        """Parse a browsed `site` (a bare host or an https origin) into (site, app host).

        The app host is the site's own app host or a customer subdomain of the domain
        (`acme.datadoghq.com`, `acme.us5.datadoghq.com`), and is used only to authorize.
        """
        host = _host_of(value)
        site = self._by_app_host.get(host)
        if site is not None:
            return site, host
        label, _, parent = host.partition(".")
        site = self._by_domain.get(parent)
        if (
            site is None
            or not _DNS_LABEL.fullmatch(label)
            or label in _RESERVED_LABELS
            or host in self._by_domain
        ):
            raise UnknownSiteError("site", value, "not a Datadog app host or customer subdomain")
        return site, host

    def authorize_target(self, site: str | None, domain: str | None) -> AuthorizeTarget:
        """Decide where a browser authorizes, from the untrusted `site`/`domain` pair."""
        by_domain = self.by_domain(domain) if domain else None
        if site:
            parsed, app_host = self.parse_site(site)
            if by_domain is not None and parsed != by_domain:
                raise UnknownSiteError("site", site, f"does not belong to domain {domain!r}")
            return AuthorizeTarget(parsed, app_host)
        if by_domain is not None:
            return AuthorizeTarget(by_domain, by_domain.app_host)
        us1 = self._by_domain[US1_DOMAIN]
        return AuthorizeTarget(None, us1.app_host)


def _is_hostname(value: str) -> bool:
    labels = value.split(".")
    return len(labels) >= 2 and all(_DNS_LABEL.fullmatch(label) for label in labels)


def _host_of(value: str) -> str:
    """The host of a bare host or of an `https://host` origin, refusing anything more."""
    if "://" in value:
        try:
            parts = urlsplit(value)
        except ValueError:  # an unbalanced or misplaced IPv6 bracket
            parts = None
        if (
            parts is None
            or parts.scheme != "https"
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or "@" in parts.netloc
            or ":" in parts.netloc
        ):
            raise UnknownSiteError("site", value, "only an https origin or a bare host is allowed")
        host = parts.netloc
    else:
        host = value
    if not _is_hostname(host):
        raise UnknownSiteError("site", value, "not a lower-case host name")
    return host
