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


async def test_custom_subdomain_authorizes_there_and_calls_the_bare_api_host(
    stack: Stack, account_id: str
) -> None:
    org = await stack.create_org("us5.datadoghq.com", name="Acme", subdomain="acme")

    page = await stack.connect(
        account_id, org, site="acme.us5.datadoghq.com", domain="us5.datadoghq.com"
    )

    assert page.status_code == 200, page.text
    [connection] = await stack.connections(account_id)
    assert (connection["domain"], connection["dd_org_id"]) == ("us5.datadoghq.com", org["dd_oid"])
    calls = await stack.datadog_requests()
    assert [(c["host"], c["path"]) for c in calls] == [
        ("acme.us5.datadoghq.com", "/oauth2/v1/authorize"),
        ("api.us5.datadoghq.com", "/oauth2/v1/token"),
        ("api.us5.datadoghq.com", "/api/v2/api_keys/marketplace"),
    ]


async def test_flow_without_site_picks_the_region_at_datadog(stack: Stack, account_id: str) -> None:
    org = await stack.create_org("datadoghq.eu", name="Euro Org")

    page = await stack.connect(account_id, org)

    assert page.status_code == 200, page.text
    [connection] = await stack.connections(account_id)
    assert connection["domain"] == "datadoghq.eu"
    calls = await stack.datadog_requests()
    assert [(c["host"], c["path"]) for c in calls] == [
        ("app.datadoghq.com", "/oauth2/v1/authorize"),
        ("api.datadoghq.eu", "/oauth2/v1/token"),
        ("api.datadoghq.eu", "/api/v2/api_keys/marketplace"),
    ]


async def test_reauthorizing_the_same_org_keeps_the_connection_and_its_key(
    stack: Stack, account_id: str
) -> None:
    org = await stack.create_org("ap1.datadoghq.com")
    await stack.connect(account_id, org, domain="ap1.datadoghq.com")
    [first] = await stack.connections(account_id)

    page = await stack.connect(account_id, org, domain="ap1.datadoghq.com")

    assert page.status_code == 200, page.text
    [again] = await stack.connections(account_id)
    assert again["id"] == first["id"]
    assert again["status"] == "active"
    assert again["has_api_key"] is True
    key_calls = await stack.datadog_requests(path="/api/v2/api_keys/marketplace")
    # The new grant asks first; Datadog's 409 says its org already holds the key, and only
    # then is the stored key kept (after it validates).
    assert [call["status"] for call in key_calls] == [201, 409]
    assert len(await stack.datadog_requests(path="/api/v1/validate")) == 1


async def test_api_key_conflict_leaves_a_token_usable_connection_and_explains_recovery(
    stack: Stack, account_id: str
) -> None:
    org = await stack.create_org("datadoghq.com")
    await stack.connect(account_id, org, domain="datadoghq.com")
    [connection] = await stack.connections(account_id)
    # Disconnecting erases the key here; Datadog keeps it, so reconnecting meets a 409.
    assert (await stack.api.delete(f"/internal/v1/connections/{connection['id']}")).is_success

    page = await stack.connect(account_id, org, domain="datadoghq.com")

    assert page.status_code == 200, page.text
    assert "revoke the key named &#34;OAuth Client API Key&#34; in Datadog" in page.text
    [connection] = await stack.connections(account_id)
    assert connection["status"] == "active"
    assert connection["status_reason"] == "api key exists but was not received"
    assert connection["has_api_key"] is False
    assert connection["access_token_expires_at"] is not None

    # The documented recovery: the customer revokes the key in Datadog and reconnects.
    await stack.emu.post("/_emulator/api_keys/revoke", json={"dd_oid": org["dd_oid"]})
    page = await stack.connect(account_id, org, domain="datadoghq.com")
    assert "Connected to Datadog" in page.text
    [recovered] = await stack.connections(account_id)
    assert (recovered["id"], recovered["has_api_key"]) == (connection["id"], True)
    assert recovered["status_reason"] == "authorized"


async def test_return_to_gets_the_browser_back_with_the_connection(
    stack: Stack, account_id: str
) -> None:
    org = await stack.create_org("datadoghq.com")

    answer = await stack.connect(
        account_id, org, domain="datadoghq.com", return_to="https://partner.example/settings?tab=dd"
    )

    assert answer.status_code == 303
    [connection] = await stack.connections(account_id)
    assert answer.headers["location"] == (
        f"https://partner.example/settings?tab=dd&connection_id={connection['id']}&status=connected"
    )
