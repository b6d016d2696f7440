"""Datadog's refusals reach the customer as explanations, and leave nothing half-connected."""

from __future__ import annotations

from urllib.parse import urlencode

from tests.support.stack import CLIENT_SCOPES, Stack, query_of


async def test_code_used_with_another_flows_verifier_is_refused(
    stack: Stack, account_id: str
) -> None:
    """PKCE: a code from flow A presented by flow B fails Datadog's verifier check."""
    org = await stack.create_org("datadoghq.com")
    await stack.consent("approve", org["dd_oid"])
    async with stack.browser() as browser:
        callback_a = await stack.authorize_at_datadog(
            browser, await stack.start(browser, account_id, domain="datadoghq.com")
        )
        authorize_b = await stack.start(browser, account_id, domain="datadoghq.com")
        swapped = {**query_of(callback_a), "state": query_of(authorize_b)["state"]}
        page = await browser.get(f"{stack.api_url}/oauth/callback?{urlencode(swapped)}")

    assert page.status_code == 400
    assert "The authorization code was not accepted" in page.text
    assert "Invalid code or code verifier" in page.text
    assert await stack.connections(account_id) == []


async def test_replayed_code_is_refused(stack: Stack, account_id: str) -> None:
    org = await stack.create_org("datadoghq.com")
    await stack.consent("approve", org["dd_oid"])
    async with stack.browser() as browser:
        callback = await stack.authorize_at_datadog(
            browser, await stack.start(browser, account_id, domain="datadoghq.com")
        )
        assert (await browser.get(callback)).status_code == 200
        authorize_b = await stack.start(browser, account_id, domain="datadoghq.com")
        replay = {**query_of(callback), "state": query_of(authorize_b)["state"]}
        page = await browser.get(f"{stack.api_url}/oauth/callback?{urlencode(replay)}")

    assert page.status_code == 400
    assert "Invalid code or code verifier" in page.text
    token_calls = await stack.datadog_requests(path="/oauth2/v1/token")
    assert [call["status"] for call in token_calls] == [200, 400]


async def test_denied_consent_is_explained(stack: Stack, account_id: str) -> None:
    org = await stack.create_org("datadoghq.com")
    await stack.consent("deny", org["dd_oid"])
    async with stack.browser() as browser:
        callback = await stack.authorize_at_datadog(
            browser, await stack.start(browser, account_id, domain="datadoghq.com")
        )
        page = await browser.get(callback)

    assert page.status_code == 403
    assert "Authorization was denied" in page.text
    assert await stack.datadog_requests(path="/oauth2/v1/token") == []


async def test_unpublished_client_outside_its_sandbox_is_explained(
    stack: Stack, account_id: str
) -> None:
    sandbox = await stack.create_org("datadoghq.com", name="Partner sandbox")
    customer = await stack.create_org("datadoghq.com", name="Customer")
    await stack.register_client(
        scopes=CLIENT_SCOPES, published=False, sandbox_org=sandbox["dd_oid"]
    )
    await stack.consent("approve", customer["dd_oid"])
    async with stack.browser() as browser:
        callback = await stack.authorize_at_datadog(
            browser, await stack.start(browser, account_id, domain="datadoghq.com")
        )
        page = await browser.get(callback)

    assert page.status_code == 400
    assert "Invalid client_id parameter value" in page.text
    assert "not published yet" in page.text
    assert await stack.datadog_requests(path="/oauth2/v1/token") == []


async def test_mismatching_redirect_uri_is_explained(stack: Stack, account_id: str) -> None:
    async with stack.browser() as browser:
        state = query_of(await stack.start(browser, account_id))["state"]
        query = {
            "state": state,
            "error": "invalid_request",
            "error_description": "Mismatching redirect URI",
        }
        page = await browser.get(f"{stack.api_url}/oauth/callback?{urlencode(query)}")

    assert page.status_code == 400
    assert "Mismatching redirect URI" in page.text
    assert "test and published client settings are mixed up" in page.text


async def test_wrong_client_secret_is_explained(stack: Stack, account_id: str) -> None:
    org = await stack.create_org("datadoghq.eu")
    await stack.emu.post(
        "/_emulator/clients",
        json={
            "client_id": stack.client_id,
            "client_secret": "rotated-at-datadog",
            "name": "ddbridge tests",
            "domain": "datadoghq.eu",
            "redirect_uris": [f"{stack.api_url}/oauth/callback"],
            "scopes": CLIENT_SCOPES,
            "published": True,
        },
    )

    page = await stack.connect(account_id, org, domain="datadoghq.eu")

    assert page.status_code == 502
    assert "credentials were refused" in page.text
    assert await stack.connections(account_id) == []


async def test_datadog_outage_during_token_exchange_is_explained(
    stack: Stack, account_id: str
) -> None:
    org = await stack.create_org("datadoghq.com")
    await stack.emu.post(
        "/_emulator/faults",
        json={"host": "api.datadoghq.com", "path": "/oauth2/v1/token", "status": 503},
    )

    page = await stack.connect(account_id, org, domain="datadoghq.com")

    assert page.status_code == 503
    assert "Datadog could not be reached" in page.text
    assert await stack.connections(account_id) == []


async def test_missing_api_key_scope_connects_for_token_calls_only(
    stack: Stack, account_id: str
) -> None:
    org = await stack.create_org("datadoghq.com")
    await stack.register_client(scopes=["monitors_read"])

    page = await stack.connect(account_id, org, domain="datadoghq.com")

    assert page.status_code == 200
    assert "api_keys_write" in page.text
    [connection] = await stack.connections(account_id)
    assert connection["has_api_key"] is False
    assert connection["status_reason"] == "API key not created: Forbidden"
