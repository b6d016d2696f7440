"""Classify the host named by a request's first path segment.

Plain HTTP cannot fail a TLS handshake, so a host whose certificate check would fail on the real
Datadog (`api.<customer subdomain>`, e.g. `api.acme.datadoghq.com`) is classified as
`TLS_MISMATCH`; the gateway answers it with status 495 and the text Node's TLS stack prints for it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from fakedatadog.state import EmulatorState, Org
from service.sites import Site, UnknownSiteError


class HostKind(enum.Enum):
    APP = "app"
    API = "api"
    LOGS = "logs"
    TRACE = "trace"
    TLS_MISMATCH = "tls_mismatch"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Host:
    """A classified host. `site` is set for every kind but UNKNOWN; `org` for an org subdomain."""

    name: str
    kind: HostKind
    site: Site | None = None
    org: Org | None = None


_SERVICE_PREFIXES = {
    "api.": HostKind.API,
    "http-intake.logs.": HostKind.LOGS,
    "trace.agent.": HostKind.TRACE,
}


def classify(state: EmulatorState, name: str) -> Host:
    """What `name` is: a site's app host, a registered org's subdomain, a service host or neither.

    A customer subdomain is an app host only once an org with that subdomain is registered.
    """
    for site in state.registry.sites:
        if name == site.app_host:
            return Host(name, HostKind.APP, site)
        for prefix, kind in _SERVICE_PREFIXES.items():
            if name == prefix + site.domain:
                return Host(name, kind, site)
    for org in state.orgs.values():
        if name == org.app_host:
            return Host(name, HostKind.APP, org.site, org)
    if name.startswith("api."):
        try:
            site, _ = state.registry.parse_site(name.removeprefix("api."))
        except UnknownSiteError:
            return Host(name, HostKind.UNKNOWN)
        return Host(name, HostKind.TLS_MISMATCH, site)
    return Host(name, HostKind.UNKNOWN)


def tls_mismatch_message(name: str) -> str:
    """The error a TLS client reports for a host outside Datadog's certificate."""
    return (
        f"Hostname/IP does not match certificate's altnames: "
        f"Host: {name}. is not in the cert's altnames"
    )
