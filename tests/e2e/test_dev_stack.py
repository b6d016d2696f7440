"""`ddbridge dev`, the README's run command, end to end as a person uses it.

The command runs against the machine's PostgreSQL (a fresh database) and Redis, like CI. The
test waits for the onboarding URL it prints, connects a demo org over plain HTTP the way a
browser would (onboarding, demo sign-in form, start link, the emulator's consent form,
callback), checks the connection through the internal API with the token it printed, then
presses Ctrl-C and expects a clean exit with every child process gone. A second test walks
the same demo in headless Chromium, which enforces the pages' Content-Security-Policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import asyncpg
import httpx
import psutil
import pytest
from playwright.async_api import async_playwright, expect

from harness import processes
from harness.databases import asyncpg_dsn
from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS

READY_DEADLINE_SECONDS = 90.0
STOP_DEADLINE_SECONDS = 20.0
ONBOARDING_LINE = re.compile(r"^\s*(?P<url>http://\S+/oauth/onboarding\?\S+)\s*$")
TOKEN_LINE = re.compile(r"\(Authorization: Bearer (?P<token>[^\s)]+)\)")


# A browser's reading of an HTML form.


@dataclass
class ParsedForm:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    selects: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    buttons: list[tuple[str, str, str]] = field(default_factory=list)


class _FormParser(HTMLParser):
    """Collects each form's inputs, selects (value, label) and submit buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[ParsedForm] = []
        self._select: str | None = None
        self._option: str | None = None
        self._button: tuple[str, str] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append(ParsedForm(a.get("action", ""), a.get("method", "get").lower()))
        elif not self.forms:
            return
        elif tag == "input" and "name" in a:
            self.forms[-1].fields[a["name"]] = a.get("value", "")
        elif tag == "select":
            self._select = a.get("name", "")
            self.forms[-1].selects[self._select] = []
        elif tag == "option" and self._select is not None:
            self._option, self._text = a.get("value", ""), []
        elif tag == "button":
            self._button, self._text = (a.get("name", ""), a.get("value", "")), []

    def handle_data(self, data: str) -> None:
        self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        text = "".join(self._text).strip()
        if tag == "option" and self._select is not None and self._option is not None:
            self.forms[-1].selects[self._select].append((self._option, text))
            self._option = None
        elif tag == "select":
            self._select = None
        elif tag == "button" and self._button is not None:
            self.forms[-1].buttons.append((*self._button, text))
            self._button = None


def only_form(html: str) -> ParsedForm:
    parser = _FormParser()
    parser.feed(html)
    [form] = parser.forms
    return form


# The `ddbridge dev` process.


@dataclass
class DevStack:
    process: asyncio.subprocess.Process
    stdout_lines: list[str]
    printed: asyncio.Event
    log: Path

    def output(self) -> str:
        stderr = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "stdout:\n" + "".join(self.stdout_lines) + "\nstderr:\n" + stderr

    def printed_match(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        return next(filter(None, map(pattern.search, self.stdout_lines)), None)


async def _drain(stream: asyncio.StreamReader, lines: list[str], printed: asyncio.Event) -> None:
    """Keep reading stdout (the children share it, so it must never fill up)."""
    while line := await stream.readline():
        lines.append(line.decode(errors="replace"))
        printed.set()


@pytest.fixture
async def dev_database(service_urls: tuple[str, str]) -> AsyncIterator[str]:
    """A fresh, empty database on the test server; `ddbridge dev` migrates it itself."""
    admin_url, _ = service_urls
    name = f"ddbridge_devtest_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _stop_leftovers(pid: int, children: list[psutil.Process]) -> None:
    """After a failure: kill what the test started (the dev process and its children) by id."""
    for process in [*children, psutil.Process(pid)] if psutil.pid_exists(pid) else children:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(children, timeout=10)


@asynccontextmanager
async def running_dev_stack(
    database_url: str, redis_url: str, data_dir: Path, log_dir: Path
) -> AsyncIterator[DevStack]:
    """`ddbridge dev` on `database_url` and `redis_url`, keeping its data in `data_dir`;
    stopped with Ctrl-C at the end if still running (its process tree killed if it hangs)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("DDBRIDGE_")}
    env |= {"DDBRIDGE_DATABASE_URL": database_url, "DDBRIDGE_REDIS_URL": redis_url}
    api_port, emulator_port = processes.free_port(), processes.free_port()
    log = log_dir / "ddbridge-dev.log"
    with log.open("ab") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "service",
            "dev",
            "--api-port",
            str(api_port),
            "--emulator-port",
            str(emulator_port),
            "--data-dir",
            str(data_dir),
            cwd=processes.REPO_ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
    assert process.stdout is not None
    lines: list[str] = []
    printed = asyncio.Event()
    drain = asyncio.create_task(_drain(process.stdout, lines, printed))
    dev = DevStack(process, lines, printed, log)
    try:
        yield dev
    finally:
        if process.returncode is None:
            children = psutil.Process(process.pid).children(recursive=True)
            process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), STOP_DEADLINE_SECONDS)
            except TimeoutError:
                _stop_leftovers(process.pid, children)
                await process.wait()
        await asyncio.wait_for(drain, timeout=10)
        with (log_dir / "ddbridge-dev.stdout.log").open("a") as stdout_log:
            stdout_log.write("".join(lines))


@pytest.fixture
def dev_redis_url(service_urls: tuple[str, str]) -> str:
    base, db = service_urls[1].rsplit("/", 1)
    return f"{base}/{int(db) + 1}"  # its own Redis database: its worker is not ours


@pytest.fixture
def dev_data_dir(tmp_path: Path) -> Path:
    """`.ddbridge` of a clone at `tmp_path`, where `make run` keeps its data."""
    return tmp_path / ".ddbridge"


@pytest.fixture
async def dev_stack(
    dev_database: str, dev_redis_url: str, dev_data_dir: Path, log_dir: Path
) -> AsyncIterator[DevStack]:
    async with running_dev_stack(dev_database, dev_redis_url, dev_data_dir, log_dir) as dev:
        yield dev


async def _cli(clone: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`ddbridge <args>` run in `clone` without any DDBRIDGE_ setting, as a person types it."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("DDBRIDGE_")}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "service", *args],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def _wait_delivered(
    partner: httpx.AsyncClient, connection_id: str, signal_name: str
) -> dict[str, Any]:
    """Poll the connection until `signal_name` shows a delivered item; its view."""
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    while True:
        view: dict[str, Any] = (
            await partner.get(f"/internal/v1/connections/{connection_id}")
        ).json()
        delivered = [
            p for p in view["delivery"] if p["signal"] == signal_name and p["delivered_items"]
        ]
        if delivered:
            return view
        if time.monotonic() > deadline:
            pytest.fail(f"nothing delivered after the restart: {view}")
        await asyncio.sleep(0.1)


async def _wait_for_onboarding_url(dev: DevStack) -> str:
    """Wait (against a deadline) until the onboarding URL line appears on stdout."""
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    while True:
        dev.printed.clear()  # before looking, so a line printed meanwhile sets it again
        if (found := dev.printed_match(ONBOARDING_LINE)) is not None:
            return found["url"]
        remaining = deadline - time.monotonic()
        if dev.process.returncode is not None or remaining <= 0:
            pytest.fail(f"`ddbridge dev` printed no onboarding URL:\n{dev.output()}")
        # Wake on the next line, or after a second to notice an exit without output.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(dev.printed.wait(), timeout=min(remaining, 1.0))


async def _connect_like_a_person(browser: httpx.AsyncClient, onboarding_url: str) -> str:
    """Onboarding → demo sign-in → start link → consent → callback; return the org approved."""
    api_url = onboarding_url.split("/oauth/onboarding", 1)[0]

    onboarding = await browser.get(onboarding_url)
    assert onboarding.status_code == 303, onboarding.text
    signin_url = onboarding.headers["location"]
    assert signin_url.startswith(f"{api_url}/demo/signin?"), signin_url

    signin = await browser.get(signin_url)
    assert signin.status_code == 200, signin.text
    form = only_form(signin.text)
    assert form.method == "post"
    assert form.fields["site"] == "app.datadoghq.com"
    assert form.fields["domain"] == "datadoghq.com"
    signed_in = await browser.post(
        urljoin(signin_url, form.action), data={**form.fields, "account_id": "dev-account"}
    )
    assert signed_in.status_code == 303, signed_in.text
    start_url = signed_in.headers["location"]
    assert start_url.startswith(f"{api_url}/oauth/start/"), start_url

    confirmation = await browser.get(start_url)
    assert confirmation.status_code == 200, confirmation.text
    assert "dev-account" in confirmation.text
    confirm = only_form(confirmation.text)
    started = await browser.post(urljoin(start_url, confirm.action), data=confirm.fields)
    assert started.status_code == 303, started.text
    authorize_url = started.headers["location"]
    assert "/app.datadoghq.com/oauth2/v1/authorize?" in authorize_url, authorize_url

    consent_page = await browser.get(authorize_url)
    assert consent_page.status_code == 200, consent_page.text
    consent = only_form(consent_page.text)
    assert consent.method == "post"
    assert ("decision", "approve", "Authorize") in consent.buttons
    dd_oid, label = consent.selects["dd_oid"][0]  # the org a browser preselects
    answered = await browser.post(
        urljoin(authorize_url, consent.action),
        data={**consent.fields, "dd_oid": dd_oid, "decision": "approve"},
    )
    assert answered.status_code == 302, answered.text
    callback_url = answered.headers["location"]
    assert callback_url.startswith(f"{api_url}/oauth/callback?"), callback_url

    done = await browser.get(callback_url)
    assert done.status_code == 200, done.text
    assert '<h1 id="title">Connected to Datadog</h1>' in done.text
    org_name = label.rsplit(" (", 1)[0]
    assert org_name in done.text
    return dd_oid


async def test_dev_stack_connects_a_demo_org_and_stops_on_ctrl_c(
    dev_stack: DevStack,
    dev_database: str,
    dev_redis_url: str,
    dev_data_dir: Path,
    log_dir: Path,
) -> None:
    """...then, as a newcomer does next: `ddbridge connections list` in the same clone finds
    the stack's database, and after `make run` again the demo connection still delivers."""
    onboarding_url = await _wait_for_onboarding_url(dev_stack)
    token_line = dev_stack.printed_match(TOKEN_LINE)
    assert token_line is not None, dev_stack.output()
    token = token_line["token"]
    assert token.strip() == token != ""
    children = psutil.Process(dev_stack.process.pid).children(recursive=True)
    commands = sorted(" ".join(child.cmdline()[1:4]) for child in children)
    assert commands == ["-m fakedatadog --port", "-m service api", "-m service worker"], commands

    async with httpx.AsyncClient(timeout=30) as browser:
        dd_oid = await _connect_like_a_person(browser, onboarding_url)

    api_url = onboarding_url.split("/oauth/onboarding", 1)[0]
    async with httpx.AsyncClient(
        base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as partner:
        listed = await partner.get("/internal/v1/connections")
    assert listed.status_code == 200, listed.text
    [connection] = listed.json()
    assert connection["account_id"] == "dev-account"
    assert connection["dd_org_id"] == dd_oid
    assert connection["domain"] == "datadoghq.com"
    assert connection["status"] == "active"
    assert connection["has_api_key"] is True

    database_line = dev_stack.printed_match(re.compile(r"^Database: (?P<url>\S+) "))
    assert database_line is not None, dev_stack.output()
    assert database_line["url"] == dev_database
    clone = dev_data_dir.parent
    listed_by_cli = await _cli(clone, "connections", "list")
    assert listed_by_cli.returncode == 0, listed_by_cli.stderr
    [line] = listed_by_cli.stdout.splitlines()
    assert json.loads(line)["id"] == connection["id"]

    dev_stack.process.send_signal(signal.SIGINT)
    try:
        status = await asyncio.wait_for(dev_stack.process.wait(), STOP_DEADLINE_SECONDS)
    except TimeoutError:
        pytest.fail(f"`ddbridge dev` still running {STOP_DEADLINE_SECONDS} s after Ctrl-C")
    assert status == 0, dev_stack.output()
    alive = [child for child in children if child.is_running()]
    assert alive == [], alive
    assert not (dev_data_dir / "dev.env").exists(), "a stopped stack is not advertised"

    # `make run` again: the emulator remembers the org and its key, so the connection made in
    # the first run still delivers (before, the emulator started empty: key_invalid).
    async with running_dev_stack(dev_database, dev_redis_url, dev_data_dir, log_dir) as again:
        api_url = (await _wait_for_onboarding_url(again)).split("/oauth/onboarding", 1)[0]
        async with httpx.AsyncClient(
            base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as partner:
            series = {"series": [{"metric": "dev.restart", "type": 3, "points": [
                {"timestamp": int(time.time()), "value": 1.0}]}]}  # fmt: skip
            sent = await partner.post(
                f"/internal/v1/connections/{connection['id']}/metrics", json=series
            )
            assert sent.status_code == 202, sent.text
            view = await _wait_delivered(partner, connection["id"], "metrics")
    assert view["status"] == "active", view


async def test_dev_demo_connects_in_a_real_browser(dev_stack: DevStack, log_dir: Path) -> None:
    """The README's demo as a person does it: Chromium, demo sign-in, consent, success page."""
    onboarding_url = await _wait_for_onboarding_url(dev_stack)
    api_url = onboarding_url.split("/oauth/onboarding", 1)[0]
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await chromium.new_page(viewport={"width": 1000, "height": 700})
            page.set_default_timeout(15_000)
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            await page.goto(onboarding_url)
            await expect(page.get_by_role("heading", level=1)).to_have_text(
                "Sign in to the partner's product"
            )
            await page.get_by_label("Your account in the partner's product").fill("dev-browser")

            await page.get_by_role("button", name="Continue").click()
            await expect(page.locator("#explanation")).to_contain_text("'dev-browser'")
            await page.get_by_role("button", name="Continue to Datadog").click()

            try:
                await expect(page).to_have_url(
                    re.compile(r"/app\.datadoghq\.com/oauth2/v1/authorize\?")
                )
            except AssertionError as exc:
                raise AssertionError(f"{exc}\nbrowser console: {console}") from exc
            finally:
                await page.screenshot(path=log_dir / "e2e-dev-after-signin.png", full_page=True)
            await page.get_by_role("button", name="Authorize").click()
            await expect(page).to_have_url(re.compile(re.escape(f"{api_url}/oauth/callback?")))
            await page.screenshot(path=log_dir / "e2e-dev-connected.png", full_page=True)
            await expect(page.get_by_role("heading", level=1)).to_have_text("Connected to Datadog")
        finally:
            await chromium.close()
