"""The trusted-site table and the parsing of untrusted `site`/`domain` values."""

from __future__ import annotations

import pytest

from service.sites import KNOWN_SITES, SiteRegistry, UnknownSiteError

SITES = SiteRegistry()


@pytest.mark.parametrize(
    ("value", "domain", "app_host"),
    [
        ("app.datadoghq.com", "datadoghq.com", "app.datadoghq.com"),
        ("https://app.datadoghq.eu", "datadoghq.eu", "app.datadoghq.eu"),
        ("https://us5.datadoghq.com/", "us5.datadoghq.com", "us5.datadoghq.com"),
        ("acme.datadoghq.com", "datadoghq.com", "acme.datadoghq.com"),
        ("acme.us5.datadoghq.com", "us5.datadoghq.com", "acme.us5.datadoghq.com"),
        ("https://team-7.ap2.datadoghq.com", "ap2.datadoghq.com", "team-7.ap2.datadoghq.com"),
        ("app.ddog-gov.com", "ddog-gov.com", "app.ddog-gov.com"),
    ],
)
def test_site_values_datadog_sends(value: str, domain: str, app_host: str) -> None:
    site, host = SITES.parse_site(value)
    assert (site.domain, host) == (domain, app_host)


@pytest.mark.parametrize(
    "value",
    [
        "api.datadoghq.com",
        "us3.datadoghq.com.evil.example",
        "x.y.datadoghq.com",
        "-acme.datadoghq.com",
        "https://acme.datadoghq.com/path",
        "https://acme.datadoghq.com?q=1",
        "ftp://app.datadoghq.com",
        "trace.datadoghq.com",
    ],
)
def test_site_values_that_are_refused(value: str) -> None:
    with pytest.raises(UnknownSiteError):
        SITES.parse_site(value)


def test_every_known_site_is_its_own_app_host_and_domain() -> None:
    assert len(KNOWN_SITES) == 9
    for site in KNOWN_SITES:
        assert SITES.authorize_target(site.app_host, site.domain).site == site
        assert SITES.authorize_target(None, site.domain).app_host == site.app_host


def test_site_must_belong_to_the_domain() -> None:
    with pytest.raises(UnknownSiteError, match="does not belong"):
        SITES.authorize_target("app.datadoghq.eu", "datadoghq.com")


def test_extra_sites_are_trusted_like_known_ones() -> None:
    sites = SiteRegistry(["example-dd.com"])
    site = sites.by_domain("example-dd.com")
    assert (site.app_host, site.api_host) == ("app.example-dd.com", "api.example-dd.com")
    with pytest.raises(ValueError, match="not a lower-case host name"):
        SiteRegistry(["Example.com"])


def test_no_site_goes_to_us1_and_waits_for_the_callback() -> None:
    target = SITES.authorize_target(None, None)
    assert (target.site, target.app_host) == (None, "app.datadoghq.com")
