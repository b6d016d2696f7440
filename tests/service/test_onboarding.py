"""Onboarding end to end: partner link, browser, emulator's Datadog, callback, stored org."""

from __future__ import annotations

import pytest

from service.sites import KNOWN_SITES
from tests.support.stack import CLIENT_SCOPES, Stack


def _hosts(requests: list[dict[str, object]]) -> set[object]:
    return {request["host"] for request in requests}


@pytest.mark.parametrize("site", KNOWN_SITES, ids=lambda site: site.name)
async def test_connects_an_org_on_every_site(stack: Stack, account_id: str, site) -> None:  # type: ignore[no-untyped-def]
    org = await stack.create_org(site.domain, name=f"Org on {site.name}")

    page = await stack.connect(account_id, org, site=f"https://{site.app_host}", domain=site.domain)

    assert page.status_code == 200, page.text
    assert "Connected to Datadog" in page.text
    [connection] = await stack.connections(account_id)
    assert connection["domain"] == site.domain
    assert connection["dd_org_id"] == org["dd_oid"]
    assert connection["dd_org_name"] == f"Org on {site.name}"
    assert connection["scopes"] == CLIENT_SCOPES
    assert connection["status"] == "active"
    assert connection["has_api_key"] is True
    calls = await stack.datadog_requests()
    ddbridge_calls = [c for c in calls if c["path"] != "/oauth2/v1/authorize"]
    assert [(c["host"], c["path"]) for c in ddbridge_calls] == [
        (site.api_host, "/oauth2/v1/token"),
        (site.api_host, "/api/v2/api_keys/marketplace"),
    ]
