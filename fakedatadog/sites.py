"""The emulator's own table of Datadog sites and hosts, written from Datadog's documentation.

It is deliberately independent of ddbridge's `service/sites.py`: the emulator is the witness
the product is measured against, so a wrong host in the product must not be copied here.
`tests/fakedatadog/test_site_table.py` compares the two tables and fails on any difference.

Sources: the site table of Datadog's "Getting Started with Datadog Sites" page (app, API and
logs intake hosts); agentless OTLP traces on `trace.agent.<domain>` and OTLP metrics and logs
on `otlp.<domain>`, neither listed for the FED (GovCloud) sites.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass


class Service(enum.Enum):
    """What a Datadog host serves."""

    APP = "app"
    API = "api"
    LOGS = "logs"
    TRACE = "trace"
    OTLP = "otlp"


@dataclass(frozen=True, slots=True)
class Site:
    """One Datadog site, named by its bare domain, with every host it serves."""

    name: str
    domain: str
    app_host: str
    api_host: str
    logs_host: str
    has_otlp_intake: bool = True
    """Agentless OTLP intake (traces on `trace.agent.`, metrics and logs on `otlp.`)."""

    @property
    def trace_host(self) -> str | None:
        return f"trace.agent.{self.domain}" if self.has_otlp_intake else None

    @property
    def otlp_host(self) -> str | None:
        return f"otlp.{self.domain}" if self.has_otlp_intake else None

    def hosts(self) -> dict[str, Service]:
        """Every host of the site and what it serves."""
        hosts = {
            self.app_host: Service.APP,
            self.api_host: Service.API,
            self.logs_host: Service.LOGS,
        }
        if self.trace_host is not None and self.otlp_host is not None:
            hosts[self.trace_host] = Service.TRACE
            hosts[self.otlp_host] = Service.OTLP
        return hosts


# fmt: off
KNOWN_SITES: tuple[Site, ...] = (
    #    name       domain               app host             API host                 logs intake host
    Site("US1",     "datadoghq.com",     "app.datadoghq.com", "api.datadoghq.com",     "http-intake.logs.datadoghq.com"),
    Site("US3",     "us3.datadoghq.com", "us3.datadoghq.com", "api.us3.datadoghq.com", "http-intake.logs.us3.datadoghq.com"),
    Site("US5",     "us5.datadoghq.com", "us5.datadoghq.com", "api.us5.datadoghq.com", "http-intake.logs.us5.datadoghq.com"),
    Site("EU1",     "datadoghq.eu",      "app.datadoghq.eu",  "api.datadoghq.eu",      "http-intake.logs.datadoghq.eu"),
    Site("AP1",     "ap1.datadoghq.com", "ap1.datadoghq.com", "api.ap1.datadoghq.com", "http-intake.logs.ap1.datadoghq.com"),
    Site("AP2",     "ap2.datadoghq.com", "ap2.datadoghq.com", "api.ap2.datadoghq.com", "http-intake.logs.ap2.datadoghq.com"),
    Site("UK1",     "uk1.datadoghq.com", "uk1.datadoghq.com", "api.uk1.datadoghq.com", "http-intake.logs.uk1.datadoghq.com"),
    Site("US1-FED", "ddog-gov.com",      "app.ddog-gov.com",  "api.ddog-gov.com",      "http-intake.logs.ddog-gov.com",     has_otlp_intake=False),
    Site("US2-FED", "us2.ddog-gov.com",  "us2.ddog-gov.com",  "api.us2.ddog-gov.com",  "http-intake.logs.us2.ddog-gov.com", has_otlp_intake=False),
)
# fmt: on
US1_DOMAIN = "datadoghq.com"

_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


class UnknownSiteError(ValueError):
    """A domain or host that is not one of the emulator's Datadog sites."""


class SiteRegistry:
    """The sites the emulator serves: the nine known ones plus extra test domains.

    An extra domain `example-dd.com` is laid out like US1: `app.`, `api.`, `http-intake.logs.`,
    `trace.agent.` and `otlp.` hosts. Host names are matched case-insensitively (DNS names are).
    """

    def __init__(self, extra_domains: Iterable[str] = ()) -> None:
        sites = list(KNOWN_SITES)
        for domain in extra_domains:
            labels = domain.split(".")
            if len(labels) < 2 or not all(_DNS_LABEL.fullmatch(label) for label in labels):
                raise ValueError(f"extra site {domain!r} is not a lower-case host name")
            if all(site.domain != domain for site in sites):
                sites.append(
                    Site(
                        domain,
                        domain,
                        f"app.{domain}",
                        f"api.{domain}",
                        f"http-intake.logs.{domain}",
                    )
                )
        self.sites: tuple[Site, ...] = tuple(sites)
        self._by_domain = {site.domain: site for site in sites}
        self._hosts = {
            host: (service, site) for site in sites for host, service in site.hosts().items()
        }
        # The labels naming a site's own service hosts (`api`, `app`, ...): never a customer's.
        self._reserved_labels = frozenset(
            host.removesuffix(f".{site.domain}").split(".")[0]
            for site in sites
            for host in site.hosts()
            if host != site.domain
        )

    def by_domain(self, domain: str) -> Site:
        """The site whose bare domain is `domain`; raises `UnknownSiteError`."""
        site = self._by_domain.get(domain.lower())
        if site is None:
            raise UnknownSiteError(f"{domain!r} is not a Datadog site domain")
        return site

    def host(self, name: str) -> tuple[Service, Site] | None:
        """What the Datadog host `name` serves and its site; None if it is not one."""
        return self._hosts.get(name.lower())

    def customer_subdomain(self, name: str) -> Site | None:
        """The site of the lower-case `name` if it has the form of a customer subdomain app host
        (`<label>.<domain>`, such as `acme.datadoghq.com`) and is not a Datadog host."""
        label, _, parent = name.partition(".")
        site = self._by_domain.get(parent)
        if (
            site is None
            or not _DNS_LABEL.fullmatch(label)
            or label in self._reserved_labels
            or self.host(name) is not None
        ):
            return None
        return site
