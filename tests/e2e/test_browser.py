"""Onboarding in a real browser: headless Chromium on the emulator's consent page.

The partner backend creates an authorization over the internal API; the browser follows
`authorize_url` through ddbridge's start link to the emulator's consent page, where the test
clicks like a person would, and lands back on ddbridge's outcome page. A screenshot of each
outcome page is kept in the run's log directory for people to look at.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.support.stack import Stack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
SITE = "app.datadoghq.eu"
DOMAIN = "datadoghq.eu"


@pytest.fixture(scope="session")
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def page(chromium: Browser) -> AsyncIterator[Page]:
    """A fresh browser profile (own cookies) with one tab."""
    context = await chromium.new_context(viewport={"width": 1000, "height": 700})
    try:
        tab = await context.new_page()
        tab.set_default_timeout(15_000)
        yield tab
    finally:
        await context.close()


async def _to_consent_page(stack: Stack, page: Page, account_id: str) -> None:
    """The partner creates an authorization; the browser opens it and reaches Datadog's page."""
    created = await stack.authorization(
        account_id, account_label="Browser Test Co", site=SITE, domain=DOMAIN
    )
    assert created.status_code == 201, created.text
    authorize_url: str = created.json()["authorize_url"]
    assert authorize_url.startswith(f"{stack.api_url}/oauth/start/"), authorize_url

    await page.goto(authorize_url)
    await expect(page.locator("#explanation")).to_contain_text("'Browser Test Co'")
    await page.get_by_role("button", name="Continue to Datadog").click()

    await expect(page).to_have_url(
        re.compile(re.escape(f"{stack.emulator_url}/{SITE}/oauth2/v1/authorize?"))
    )
    await expect(page.get_by_role("heading", level=1)).to_have_text("Authorize ddbridge tests")


async def _screenshot(page: Page, log_dir: Path, name: str) -> None:
    """Keep the page as a person saw it (taken before asserting, so failures are kept too)."""
    await page.wait_for_load_state("load")
    await page.screenshot(path=log_dir / f"{name}.png", full_page=True)


async def test_approving_on_the_consent_page_connects_the_org(
    stack: Stack, page: Page, account_id: str, log_dir: Path
) -> None:
    org = await stack.create_org(DOMAIN, name="Browser Org EU")
    await _to_consent_page(stack, page, account_id)
    await expect(page.get_by_label("Signed in to organization")).to_have_value(org["dd_oid"])

    await page.get_by_role("button", name="Authorize").click()

    await expect(page).to_have_url(re.compile(re.escape(f"{stack.api_url}/oauth/callback?")))
    await _screenshot(page, log_dir, "e2e-browser-connected")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Connected to Datadog")
    await expect(page.locator("#explanation")).to_contain_text("Browser Org EU")
    await expect(page.locator("#explanation")).to_contain_text(DOMAIN)
    [connection] = await stack.connections(account_id)
    assert connection["status"] == "active"
    assert connection["has_api_key"] is True
    assert connection["dd_org_id"] == org["dd_oid"]
    assert connection["dd_org_name"] == "Browser Org EU"
    assert connection["domain"] == DOMAIN


async def test_denying_on_the_consent_page_connects_nothing(
    stack: Stack, page: Page, account_id: str, log_dir: Path
) -> None:
    await stack.create_org(DOMAIN, name="Browser Org Denied")
    await _to_consent_page(stack, page, account_id)

    await page.get_by_role("button", name="Deny").click()

    await expect(page).to_have_url(re.compile(re.escape(f"{stack.api_url}/oauth/callback?")))
    await _screenshot(page, log_dir, "e2e-browser-denied")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Authorization was denied")
    assert await stack.connections(account_id) == []
