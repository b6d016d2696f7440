"""The pipeline under test as real processes: PostgreSQL, Redis, emulator, API and worker.

PostgreSQL and Redis are the machine's when `DDBRIDGE_BENCH_DATABASE_URL` /
`DDBRIDGE_BENCH_REDIS_URL` (or the test suite's `DDBRIDGE_TEST_*` variables) are set, else
embedded ones from wheels under `.ddbridge/bench-*`. Each run gets a fresh database migrated
by Alembic (dropped at the end) and its own arq queue, and configures the API and worker the
way the test suite does, through `DDBRIDGE_*` variables.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from harness import processes
from harness.databases import admin_execute
from service.crypto import generate_key
from service.db import migrate
from service.embedded import EmbeddedPostgres, EmbeddedRedis

BACKLOG_CAP_ITEMS = 100_000_000


def _env_first(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


@contextmanager
def data_services() -> Iterator[tuple[str, str, str]]:
    """(PostgreSQL admin URL, Redis URL, where they came from), started if not given."""
    with ExitStack() as stack:
        origin = []
        admin_url = _env_first("DDBRIDGE_BENCH_DATABASE_URL", "DDBRIDGE_TEST_DATABASE_URL")
        if admin_url:
            origin.append("PostgreSQL: the machine's")
        else:
            postgres = stack.enter_context(
                EmbeddedPostgres(processes.REPO_ROOT / ".ddbridge/bench-postgres")
            )
            admin_url = postgres.url()
            origin.append("PostgreSQL: embedded (wheel)")
        redis_url = _env_first("DDBRIDGE_BENCH_REDIS_URL", "DDBRIDGE_TEST_REDIS_URL")
        if redis_url:
            origin.append("Redis: the machine's")
        else:
            redis = stack.enter_context(
                EmbeddedRedis(processes.REPO_ROOT / ".ddbridge/bench-redis")
            )
            redis_url = redis.url(db=8)
            origin.append("Redis: embedded (wheel)")
        yield admin_url, redis_url, ", ".join(origin)


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new database migrated to head; dropped (with its connections) afterwards."""
    name = f"ddbridge_bench_{secrets.token_hex(4)}"
    asyncio.run(admin_execute(admin_url, f'CREATE DATABASE "{name}"'))
    try:
        url = admin_url.rsplit("/", 1)[0] + f"/{name}"
        migrate(url)
        yield url
    finally:
        asyncio.run(admin_execute(admin_url, f'DROP DATABASE "{name}" WITH (FORCE)'))


@dataclass
class Stack:
    """The running emulator, API and worker, and what clients need to reach them."""

    api_url: str
    emulator_url: str
    worker_metrics_url: str
    internal_token: str
    client_id: str
    client_secret: str
    env: dict[str, str]
    log_dir: Path
    api_workers: int = 1
    """`ddbridge api --workers`: uvicorn processes behind the API's one port."""
    emulator: processes.Child | None = None
    api: processes.Child | None = None
    worker: processes.Child | None = None
    extra: list[processes.Child] = field(default_factory=list)

    def start_worker(self) -> processes.Child:
        """Start a worker (again); wait until its metrics endpoint answers."""
        self.worker = processes.start("worker", ["service", "worker"], self.env, self.log_dir)
        processes.wait_until_answers(self.worker, self.worker_metrics_url, 60)
        return self.worker

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop()

    def children(self) -> list[processes.Child]:
        return [c for c in (self.worker, self.api, self.emulator, *self.extra) if c is not None]

    def stop(self) -> None:
        """Stop every process this stack started, worker first."""
        for child in self.children():
            child.stop()


@contextmanager
def running_stack(
    database_url: str, redis_url: str, log_dir: Path, api_workers: int = 1
) -> Iterator[Stack]:
    """Start the emulator (bench mode), the API (`api_workers` processes) and one worker;
    stop them all on exit."""
    emulator_port, api_port, metrics_port = (
        processes.free_port(),
        processes.free_port(),
        processes.free_port(),
    )
    api_url = f"http://127.0.0.1:{api_port}"
    emulator_url = f"http://127.0.0.1:{emulator_port}"
    token = secrets.token_urlsafe(32)
    client_id = f"bench-{secrets.token_hex(4)}"
    client_secret = secrets.token_urlsafe(32)
    env = {
        "DDBRIDGE_DATABASE_URL": database_url,
        "DDBRIDGE_REDIS_URL": redis_url,
        "DDBRIDGE_PUBLIC_URL": api_url,
        "DDBRIDGE_SIGNIN_URL": "https://partner.example/datadog/sign-in",
        "DDBRIDGE_INTERNAL_TOKENS": token,
        "DDBRIDGE_ENCRYPTION_KEYS": generate_key(),
        "DDBRIDGE_CLIENT_ID": client_id,
        "DDBRIDGE_CLIENT_SECRET": client_secret,
        "DDBRIDGE_DATADOG_URL_TEMPLATE": f"{emulator_url}/{{host}}",
        "DDBRIDGE_QUEUE_NAME": f"ddbridge-bench-{os.getpid()}-{secrets.token_hex(3)}",
        "DDBRIDGE_BACKLOG_CAP_ITEMS": str(BACKLOG_CAP_ITEMS),
        "DDBRIDGE_WORKER_METRICS_PORT": str(metrics_port),
    }
    stack = Stack(
        api_url=api_url,
        emulator_url=emulator_url,
        worker_metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
        internal_token=token,
        client_id=client_id,
        client_secret=client_secret,
        env=env,
        log_dir=log_dir,
        api_workers=api_workers,
    )
    try:
        stack.emulator = processes.start(
            "emulator", ["fakedatadog", "--bench", "--port", str(emulator_port)], env, log_dir
        )
        stack.api = processes.start(
            "api",
            ["service", "api", "--port", str(api_port), "--workers", str(api_workers)],
            env,
            log_dir,
        )
        processes.wait_until_answers(stack.emulator, f"{emulator_url}/_emulator/health", 60)
        processes.wait_until_answers(stack.api, f"{api_url}/readyz", 60)
        stack.start_worker()
        yield stack
    finally:
        stack.stop()
