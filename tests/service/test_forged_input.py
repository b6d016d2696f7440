"""Forged or stale input is refused with a clear page and no request to any 'Datadog' host."""

from __future__ import annotations

from urllib.parse import urlencode

import asyncpg
import pytest

from harness.databases import asyncpg_dsn
from tests.support.stack import Stack, query_of

FORGED = [
    "evil.example",
    "datadoghq.com.evil.example",
    "evil.example/datadoghq.com",
    "api.datadoghq.com@evil.example",
    "https://app.datadoghq.com@evil.example",
    "https://evil.example",
    "http://app.datadoghq.com",
    "app.datadoghq.com:8443",
    "127.0.0.1",
    "localhost",
    "DATADOGHQ.COM",
    "App.Datadoghq.Eu",
    "datadoghq.com.",
    "app.datadoghq.eu.",
    "api.datadoghq.com",
    "",
]


@pytest.mark.parametrize("field", ["site", "domain"])
@pytest.mark.parametrize("value", [v for v in FORGED if v])
async def test_onboarding_refuses_a_forged_site(stack: Stack, field: str, value: str) -> None:
    async with stack.browser() as browser:
        page = await browser.get(f"{stack.api_url}/oauth/onboarding", params={field: value})

    assert page.status_code == 400
    assert "Unknown Datadog site" in page.text
    assert "nothing was sent anywhere" in page.text
    assert await stack.datadog_requests() == []


@pytest.mark.parametrize("field", ["site", "domain"])
@pytest.mark.parametrize("value", [v for v in FORGED if v])
async def test_authorization_api_refuses_a_forged_site(
    stack: Stack, account_id: str, field: str, value: str
) -> None:
    answer = await stack.authorization(account_id, **{field: value})

    assert answer.status_code == 422
    assert answer.json()["problems"][0]["pointer"] == f"/{field}"
    assert await stack.datadog_requests() == []


@pytest.mark.parametrize("value", [*FORGED, "datadoghq.eu"])
async def test_callback_refuses_a_forged_domain(stack: Stack, account_id: str, value: str) -> None:
    """`datadoghq.eu` is a real site, but not the one this flow was started for."""
    async with stack.browser() as browser:
        authorize_url = await stack.start(browser, account_id, domain="datadoghq.com")
        state = query_of(authorize_url)["state"]
        query = {"code": "x", "state": state, "domain": value, "dd_oid": "o", "dd_org_name": "n"}
        page = await browser.get(f"{stack.api_url}/oauth/callback?{urlencode(query)}")

    assert page.status_code == 400
    assert "Unknown Datadog site" in page.text
    assert await stack.datadog_requests() == []


async def test_callback_of_a_siteless_flow_still_needs_a_known_domain(
    stack: Stack, account_id: str
) -> None:
    async with stack.browser() as browser:
        authorize_url = await stack.start(browser, account_id)
        query = {"code": "x", "state": query_of(authorize_url)["state"], "domain": "evil.example"}
        page = await browser.get(f"{stack.api_url}/oauth/callback?{urlencode(query)}")

    assert page.status_code == 400
    assert await stack.datadog_requests() == []


async def test_replayed_state_is_refused_in_another_browser(stack: Stack, account_id: str) -> None:
    org = await stack.create_org("datadoghq.com")
    await stack.consent("approve", org["dd_oid"])
    async with stack.browser() as browser:
        callback = await stack.authorize_at_datadog(
            browser, await stack.start(browser, account_id, domain="datadoghq.com")
        )
        assert (await browser.get(callback)).status_code == 200
    async with stack.browser() as elsewhere:
        replay = await elsewhere.get(callback)

    assert replay.status_code == 400
    assert "not valid here" in replay.text
    assert len(await stack.datadog_requests(path="/oauth2/v1/token")) == 1


async def test_reloading_the_success_page_shows_it_again(stack: Stack, account_id: str) -> None:
    """The same browser reloads the callback: the success page again, nothing exchanged
    twice; once the connection is no longer active, the answer is not valid any more."""
    org = await stack.create_org("datadoghq.com", name="Reload Org")
    await stack.consent("approve", org["dd_oid"])
    async with stack.browser() as browser:
        callback = await stack.authorize_at_datadog(
            browser, await stack.start(browser, account_id, domain="datadoghq.com")
        )
        first = await browser.get(callback)
        reloaded = await browser.get(callback)
        [connection] = await stack.connections(account_id)
        revoked = await stack.api.delete(f"/internal/v1/connections/{connection['id']}")
        after_revoke = await browser.get(callback)

    assert first.status_code == reloaded.status_code == 200
    assert "Connected to Datadog" in reloaded.text
    assert "Reload Org" in reloaded.text
    assert len(await stack.datadog_requests(path="/oauth2/v1/token")) == 1
    assert revoked.status_code in (200, 204), revoked.text
    assert after_revoke.status_code == 400
    assert "not valid here" in after_revoke.text


async def test_expired_state_is_refused(stack: Stack, account_id: str) -> None:
    org = await stack.create_org("datadoghq.com")
    await stack.consent("approve", org["dd_oid"])
    async with stack.browser() as browser:
        callback = await stack.authorize_at_datadog(
            browser, await stack.start(browser, account_id, domain="datadoghq.com")
        )
        await _expire_flows_of(stack, account_id)
        page = await browser.get(callback)

    assert page.status_code == 400
    assert "not valid here" in page.text
    assert await stack.datadog_requests(path="/oauth2/v1/token") == []


async def test_state_from_another_browser_is_refused(stack: Stack, account_id: str) -> None:
    org = await stack.create_org("datadoghq.com")
    await stack.consent("approve", org["dd_oid"])
    async with stack.browser() as victim, stack.browser() as attacker:
        callback = await stack.authorize_at_datadog(
            victim, await stack.start(victim, account_id, domain="datadoghq.com")
        )
        stolen = await attacker.get(callback)
        after = await victim.get(callback)

    assert stolen.status_code == 400
    assert after.status_code == 400, "a state is single-use, even after a refused attempt"
    assert await stack.datadog_requests(path="/oauth2/v1/token") == []
    assert await stack.connections(account_id) == []


async def test_start_link_works_once(stack: Stack, account_id: str) -> None:
    created = await stack.authorization(account_id)
    async with stack.browser() as browser:
        await stack.confirm(browser, created.json()["authorize_url"])
        again = await browser.get(created.json()["authorize_url"])
        confirmed_again = await browser.post(created.json()["authorize_url"])

    assert again.status_code == 410
    assert "expired" in again.text
    assert confirmed_again.status_code == 410


async def test_expired_start_link_is_refused(stack: Stack, account_id: str) -> None:
    created = await stack.authorization(account_id)
    await _expire_flows_of(stack, account_id)
    async with stack.browser() as browser:
        page = await browser.get(created.json()["authorize_url"])

    assert page.status_code == 410
    assert await stack.datadog_requests() == []


@pytest.mark.parametrize(
    "return_to",
    [
        "https://evil.example/x",
        "//evil.example/x",
        "javascript:alert(1)",
        "https://partner.example@evil.example/",
        "http://partner.example/",
    ],
)
async def test_return_to_a_foreign_origin_is_refused(
    stack: Stack, account_id: str, return_to: str
) -> None:
    answer = await stack.authorization(account_id, return_to=return_to)

    assert answer.status_code == 422
    assert answer.json()["problems"] == [
        {"pointer": "/return_to", "reason": "origin is not allowed"}
    ]


async def _expire_flows_of(stack: Stack, account_id: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    try:
        await connection.execute(
            "UPDATE oauth_flows SET expires_at = now() - interval '1 second' WHERE account_id = $1",
            account_id,
        )
    finally:
        await connection.close()
