"""Classify the host named by a request's first path segment, from the emulator's site table.

Host names are case-insensitive (DNS names are); a `Host` keeps the name lower-cased. Plain HTTP
cannot fail a TLS handshake, so a host whose certificate check would fail on the real Datadog
(`api.` in front of an app host or a customer subdomain, e.g. `api.acme.datadoghq.com`) is
classified as `TLS_MISMATCH`; the gateway answers it with status 495 and the text Node's TLS
stack prints for it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from fakedatadog.sites import Service, Site
from fakedatadog.state import EmulatorState, Org


class HostKind(enum.Enum):
    APP = "app"
    API = "api"
    LOGS = "logs"
    TRACE = "trace"
    OTLP = "otlp"
    TLS_MISMATCH = "tls_mismatch"
    UNKNOWN = "unknown"


_KIND_OF = {service: HostKind(service.value) for service in Service}


@dataclass(frozen=True, slots=True)
class Host:
    """A classified host. `site` is set for every kind but UNKNOWN; `org` for an org subdomain."""

    name: str
    kind: HostKind
    site: Site | None = None
    org: Org | None = None


def classify(state: EmulatorState, name: str) -> Host:
    """What `name` is: a site's host, a registered org's subdomain, a TLS mismatch or neither.

    A customer subdomain is an app host only once an org with that subdomain is registered.
    """
    name = name.lower()
    if (found := state.registry.host(name)) is not None:
        service, site = found
        return Host(name, _KIND_OF[service], site)
    for org in state.orgs.values():
        if name == org.app_host:
            return Host(name, HostKind.APP, org.site, org)
    if name.startswith("api."):
        app_site = _app_site(state, name.removeprefix("api."))
        if app_site is not None:
            return Host(name, HostKind.TLS_MISMATCH, app_site)
    return Host(name, HostKind.UNKNOWN)


def _app_site(state: EmulatorState, name: str) -> Site | None:
    """The site of `name` if it is a site's app host or has the form of a customer subdomain."""
    found = state.registry.host(name)
    if found is not None:
        service, site = found
        return site if service is Service.APP else None
    return state.registry.customer_subdomain(name)


def tls_mismatch_message(name: str) -> str:
    """The error a TLS client reports for a host outside Datadog's certificate."""
    return (
        f"Hostname/IP does not match certificate's altnames: "
        f"Host: {name}. is not in the cert's altnames"
    )
