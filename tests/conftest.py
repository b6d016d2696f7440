"""The test stack: real PostgreSQL, real Redis, and real emulator, API and worker processes.

PostgreSQL and Redis are the machine's when `DDBRIDGE_TEST_DATABASE_URL` (an admin URL such
as `postgresql+asyncpg://postgres@127.0.0.1:5432/postgres`) and `DDBRIDGE_TEST_REDIS_URL` are
set, as `.ci/run` does; otherwise embedded ones from wheels under `.ddbridge/test-*`. Each run
gets a fresh database, migrated by Alembic. Tests do not truncate: each uses its own account
id and emulator orgs, so the database and logs of the whole run stay inspectable at the end
(the secret-leak test relies on that).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from harness import processes
from harness.databases import admin_execute
from service.crypto import generate_key
from service.db import migrate
from service.embedded import EmbeddedPostgres, EmbeddedRedis
from tests.support.stack import CLIENT_SCOPES, Recorder, Stack, port_of
from tests.support.webhook_receiver import Receiver, webhook_receiver

ARTIFACTS = processes.REPO_ROOT / "test-artifacts"
WEBHOOK_SECRET = secrets.token_urlsafe(32)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `last` inspect what the whole run left behind, so they run at the end."""
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


@pytest.fixture(scope="session")
def service_urls() -> Iterator[tuple[str, str]]:
    """(PostgreSQL admin URL, Redis URL) of real servers."""
    with ExitStack() as stack:
        admin_url = os.environ.get("DDBRIDGE_TEST_DATABASE_URL")
        if not admin_url:
            postgres = stack.enter_context(
                EmbeddedPostgres(processes.REPO_ROOT / ".ddbridge/test-postgres")
            )
            admin_url = postgres.url()
        redis_url = os.environ.get("DDBRIDGE_TEST_REDIS_URL")
        if not redis_url:
            redis = stack.enter_context(EmbeddedRedis(processes.REPO_ROOT / ".ddbridge/test-redis"))
            redis_url = redis.url(db=9)
        yield admin_url, redis_url


@pytest.fixture(scope="session")
async def database_url(service_urls: tuple[str, str]) -> AsyncIterator[str]:
    """A fresh database for this run, migrated to head; dropped afterwards."""
    admin_url, _ = service_urls
    name = f"ddbridge_test_{secrets.token_hex(4)}"
    await admin_execute(admin_url, f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    await asyncio.to_thread(migrate, url)
    yield url
    await admin_execute(admin_url, f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def log_dir() -> Path:
    path = ARTIFACTS / f"run-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def webhook() -> Iterator[Receiver]:
    """The partner's webhook endpoint the stack notifies of connection transitions."""
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def stack_processes(
    database_url: str, service_urls: tuple[str, str], log_dir: Path, webhook: Receiver
) -> Iterator[Stack]:
    """The emulator, the API and one worker as real processes, configured like production."""
    _, redis_url = service_urls
    stack = Stack.allocate(
        database_url=database_url,
        redis_url=redis_url,
        queue_name=f"ddbridge-test-{os.getpid()}",
        encryption_keys=[generate_key(), generate_key()],
        log_dir=log_dir,
    )
    env = {
        **stack.environment(),
        # A second, unused token: any configured token is accepted (rotation).
        "DDBRIDGE_INTERNAL_TOKENS": f"{secrets.token_urlsafe(32)},{stack.internal_token}",
        "DDBRIDGE_RETURN_TO_ORIGINS": "https://partner.example",
        "DDBRIDGE_REFRESH_MARGIN_SECONDS": "30",
        "DDBRIDGE_BACKLOG_CAP_ITEMS": "5000",
        "DDBRIDGE_DATADOG_TIMEOUT_SECONDS": "5",
        "DDBRIDGE_WEBHOOK_URL": webhook.url,
        "DDBRIDGE_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    emulator_port, api_port = port_of(stack.emulator_url), port_of(stack.api_url)
    emulator = processes.start("emulator", ["fakedatadog", "--port", emulator_port], env, log_dir)
    api = processes.start("api", ["service", "api", "--port", api_port], env, log_dir)
    worker = processes.start("worker", ["service", "worker"], env, log_dir)
    stack.children = [emulator, api, worker]
    try:
        processes.wait_until_answers(emulator, f"{stack.emulator_url}/_emulator/health")
        processes.wait_until_answers(api, f"{stack.api_url}/readyz")
        yield stack
    finally:
        for child in stack.children:
            child.stop()


@pytest.fixture(scope="session")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def stack(stack_processes: Stack, recorder: Recorder) -> AsyncIterator[Stack]:
    """The running stack with a reset emulator that knows our OAuth client on every site."""
    async with stack_processes.clients(recorder) as ready:
        await ready.reset_emulator()
        await ready.register_client(scopes=CLIENT_SCOPES)
        yield ready
        await ready.collect_secrets()


@pytest.fixture
def account_id() -> str:
    return f"acct-{uuid.uuid4().hex[:12]}"
