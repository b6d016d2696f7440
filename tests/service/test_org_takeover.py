"""Nothing a browser sends can merge two orgs' credentials or move a connection between
partner accounts: the edited-callback takeover and the foreign start link, replayed."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode, urlsplit

import asyncpg
import httpx

from harness.databases import asyncpg_dsn
from tests.support.stack import Stack, query_of

DOMAIN = "datadoghq.com"


async def _secrets_of(stack: Stack, connection_id: str) -> dict[str, Any]:
    """The sealed columns and owner of a connection, exactly as stored."""
    db = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    try:
        row = await db.fetchrow(
            "SELECT account_id, access_token, refresh_token, api_key, status, dd_org_name"
            " FROM connections WHERE id = $1",
            connection_id,
        )
    finally:
        await db.close()
    assert row is not None
    return dict(row)


def _edited(callback: str, **changes: str) -> str:
    """The callback URL with query parameters replaced, as an attacker edits it."""
    parts = urlsplit(callback)
    return parts._replace(query=urlencode({**query_of(callback), **changes})).geturl()


async def _victim(stack: Stack, account_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    org = await stack.create_org(DOMAIN, name="Victim Org")
    page = await stack.connect(account_id, org, domain=DOMAIN)
    assert page.status_code == 200, page.text
    [connection] = await stack.connections(account_id)
    return org, connection


async def test_edited_dd_oid_cannot_take_over_another_accounts_connection(
    stack: Stack, account_id: str
) -> None:
    victim_org, victim = await _victim(stack, account_id)
    before = await _secrets_of(stack, victim["id"])
    attacker_account = f"{account_id}-attacker"
    attacker_org = await stack.create_org(DOMAIN, name="Attacker Org")
    await stack.consent("approve", attacker_org["dd_oid"])
    tokens_before = len(await stack.datadog_requests(path="/oauth2/v1/token"))

    async with stack.browser() as browser:
        authorize_url = await stack.start(browser, attacker_account, domain=DOMAIN)
        callback = await stack.authorize_at_datadog(browser, authorize_url)
        page = await browser.get(_edited(callback, dd_oid=victim_org["dd_oid"]))

    assert page.status_code == 409, page.text
    assert "connected to another account" in page.text
    assert await _secrets_of(stack, victim["id"]) == before, "victim's row untouched"
    assert await stack.connections(attacker_account) == []
    assert len(await stack.datadog_requests(path="/oauth2/v1/token")) == tokens_before, (
        "refused before the code was exchanged: no grant left orphaned at Datadog"
    )
    # The victim's data still goes to the victim's org with the victim's key.
    sent = await stack.send(victim["id"], "events", {"title": "still mine", "text": "t"})
    assert sent.status_code == 202, sent.text
    assert len(await stack.wait_received(victim_org["dd_oid"], "events", 1)) == 1
    assert await stack.received(attacker_org["dd_oid"], "events") == []


async def test_reauthorizing_from_another_account_leaves_the_connection_alone(
    stack: Stack, account_id: str
) -> None:
    victim_org, victim = await _victim(stack, account_id)
    before = await _secrets_of(stack, victim["id"])

    page = await stack.connect(f"{account_id}-other", victim_org, domain=DOMAIN)

    assert page.status_code == 409, page.text
    assert await _secrets_of(stack, victim["id"]) == before
    assert await stack.connections(f"{account_id}-other") == []


async def test_a_disconnected_org_can_be_connected_by_another_account_as_a_new_connection(
    stack: Stack, account_id: str
) -> None:
    org, first = await _victim(stack, account_id)
    assert (await stack.api.delete(f"/internal/v1/connections/{first['id']}")).is_success
    await stack.emu.post("/_emulator/api_keys/revoke", json={"dd_oid": org["dd_oid"]})

    page = await stack.connect(f"{account_id}-new-owner", org, domain=DOMAIN)

    assert page.status_code == 200, page.text
    [taken] = await stack.connections(f"{account_id}-new-owner")
    assert taken["id"] != first["id"]
    assert taken["status"] == "active"
    [old] = await stack.connections(account_id)
    assert (old["id"], old["status"]) == (first["id"], "disconnected")


async def test_start_link_shows_the_account_and_needs_confirmation(
    stack: Stack, account_id: str
) -> None:
    created = await stack.authorization(account_id, account_label="Acme <Ops> team")
    start_url = created.json()["authorize_url"]

    async with stack.browser() as browser:
        shown = await browser.get(start_url)
        shown_again = await browser.get(start_url)
    async with stack.browser() as forger:
        # A form posted from another site carries no SameSite=Lax cookie.
        unconfirmed = await forger.post(start_url)

    assert shown.status_code == 200
    assert "the partner account &#39;Acme &lt;Ops&gt; team&#39;" in shown.text
    assert shown_again.status_code == 200, "showing the page claims nothing"
    assert unconfirmed.status_code == 400
    assert "confirm" in unconfirmed.text
    assert await stack.datadog_requests() == []
    async with stack.browser() as browser:
        assert "/oauth2/v1/authorize?" in await stack.confirm(browser, start_url)


async def test_start_page_names_the_account_id_without_a_label(
    stack: Stack, account_id: str
) -> None:
    created = await stack.authorization(account_id)
    async with stack.browser() as browser:
        shown = await browser.get(created.json()["authorize_url"])

    assert f"the partner account &#39;{account_id}&#39;" in shown.text


async def test_reauthorization_with_a_grant_of_another_org_does_not_keep_the_stored_key(
    stack: Stack, account_id: str
) -> None:
    """Same account, same claimed org, but Datadog issues a new key to the grant's org: the
    grant is for an org without this integration's key, so the stored key is not carried."""
    claimed_org, connection = await _victim(stack, account_id)
    before = await _secrets_of(stack, connection["id"])
    other_org = await stack.create_org(DOMAIN, name="Really Another Org")
    await stack.consent("approve", other_org["dd_oid"])

    async with stack.browser() as browser:
        authorize_url = await stack.start(browser, account_id, domain=DOMAIN)
        callback = await stack.authorize_at_datadog(browser, authorize_url)
        page = await browser.get(_edited(callback, dd_oid=claimed_org["dd_oid"]))

    assert page.status_code == 200, page.text
    after = await _secrets_of(stack, connection["id"])
    assert after["api_key"] != before["api_key"]
    sent = await stack.send(connection["id"], "events", {"title": "where", "text": "t"})
    assert sent.status_code == 202
    await stack.wait_received(other_org["dd_oid"], "events", 1)
    assert await stack.received(claimed_org["dd_oid"], "events") == [], (
        "the claimed org's key was not carried onto the other org's grant"
    )


async def test_concurrent_first_callbacks_for_one_org_make_one_connection(
    stack: Stack, account_id: str
) -> None:
    org = await stack.create_org(DOMAIN, name="Busy Org")
    await stack.consent("approve", org["dd_oid"])
    browsers = [httpx.AsyncClient(timeout=30) for _ in range(10)]
    try:
        callbacks = [
            await stack.authorize_at_datadog(b, await stack.start(b, account_id, domain=DOMAIN))
            for b in browsers
        ]
        pages = await asyncio.gather(
            *(b.get(url) for b, url in zip(browsers, callbacks, strict=True))
        )
    finally:
        for browser in browsers:
            await browser.aclose()

    assert [page.status_code for page in pages] == [200] * 10, [p.text for p in pages]
    [connection] = await stack.connections(account_id)
    assert connection["status"] == "active"
    assert connection["has_api_key"] is True
    statuses = [
        c["status"] for c in await stack.datadog_requests(path="/api/v2/api_keys/marketplace")
    ]
    assert sorted(statuses) == [201] + [409] * 9


async def test_callback_org_fields_are_checked_before_the_code_is_exchanged(
    stack: Stack, account_id: str
) -> None:
    org = await stack.create_org(DOMAIN, name="Checked Org")
    await stack.consent("approve", org["dd_oid"])
    async with stack.browser() as browser:
        callback = await stack.authorize_at_datadog(
            browser, await stack.start(browser, account_id, domain=DOMAIN)
        )
        too_long = await browser.get(_edited(callback, dd_oid="a" * 65))
    async with stack.browser() as browser:
        callback = await stack.authorize_at_datadog(
            browser, await stack.start(browser, account_id, domain=DOMAIN)
        )
        long_name = await browser.get(_edited(callback, dd_org_name="N" * 300 + "\x00"))

    assert too_long.status_code == 400
    assert "organization id" in too_long.text
    assert long_name.status_code == 200, long_name.text
    [connection] = await stack.connections(account_id)
    assert connection["dd_org_name"] == "N" * 200
    assert len(await stack.datadog_requests(path="/oauth2/v1/token")) == 1
