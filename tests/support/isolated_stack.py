"""A stack of its own for one test: its own settings, database, Redis and worker processes.

The session stack (`tests/conftest.py`) is shared and configured like production; crash and
outage tests need short leases, small timeouts, a Redis they may flush and workers they may
kill. `isolated_stack` starts, for one test:

- a fresh database on the PostgreSQL at `admin_url` (the machine's, or an `EmbeddedPostgres`
  the test owns and may stop), migrated by Alembic, dropped afterwards;
- an `EmbeddedRedis` under `work_dir` unless a `redis_url` is given, so the test may
  `FLUSHALL` it without touching any other stack (the machine's Redis is shared by concurrent
  test sessions, and arq's cron job ids are not namespaced by queue);
- the emulator and the API as real processes, and workers the test starts and kills itself.

Processes write to `<log_dir>/<name>.log`. Every wait polls against a deadline.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio
from arq.connections import RedisSettings, create_pool

from harness import processes
from harness.databases import admin_execute, asyncpg_dsn
from harness.processes import Child
from service.crypto import generate_key
from service.db import migrate
from service.embedded import EmbeddedRedis
from service.jobs import REFRESH_CONNECTION
from tests.support.stack import CLIENT_SCOPES, Recorder, Stack, port_of

POLL_SECONDS = 0.05


@dataclass
class IsolatedStack:
    """The running stack (`stack`, with open clients) and the handles a test needs to hurt it."""

    stack: Stack
    env: dict[str, str]
    log_dir: Path
    emulator: Child
    api: Child
    redis_url: str
    workers: list[Child] = field(default_factory=list)
    more_apis: list[Child] = field(default_factory=list)
    """API processes started by `start_api` (the first one is `api`)."""

    # Processes.

    async def start_api(self, port: str | None = None, deadline_seconds: float = 30) -> Child:
        """Start one more API process (on `port`, or a free one) and return once it is ready."""
        port = port or str(processes.free_port())
        name = f"api-{port}-{len(self.more_apis) + 2}"
        api = processes.start(name, ["service", "api", "--port", port], self.env, self.log_dir)
        self.more_apis.append(api)
        await asyncio.to_thread(
            processes.wait_until_answers,
            api,
            f"http://127.0.0.1:{port}/readyz",
            deadline_seconds,
        )
        return api

    async def start_worker(self, port: int | None = None, deadline_seconds: float = 30) -> Child:
        """Start one more worker and return once it has opened its resources (its metrics
        port answers)."""
        port = port or processes.free_port()
        name = f"worker-{len(self.workers) + 1}"
        env = {**self.env, "DDBRIDGE_WORKER_METRICS_PORT": str(port)}
        worker = processes.start(name, ["service", "worker"], env, self.log_dir)
        self.workers.append(worker)
        await asyncio.to_thread(
            processes.wait_until_answers,
            worker,
            f"http://127.0.0.1:{port}/metrics",
            deadline_seconds,
        )
        return worker

    @staticmethod
    def kill(child: Child) -> None:
        """SIGKILL: no shutdown handler runs, nothing is released."""
        child.process.send_signal(signal.SIGKILL)
        child.process.wait()

    @classmethod
    async def terminate(cls, child: Child, deadline_seconds: float = 40) -> int:
        """SIGTERM, as Kubernetes sends it; the exit status once the process has stopped."""
        child.process.send_signal(signal.SIGTERM)
        return await cls.wait_exit(child, deadline_seconds)

    @staticmethod
    async def wait_exit(child: Child, deadline_seconds: float = 40) -> int:
        """The exit status of `child`, polled until it stops (fails after the deadline)."""
        deadline = time.monotonic() + deadline_seconds
        while child.process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"{child.name} still running:\n{child.output_tail()}")
            await asyncio.sleep(POLL_SECONDS)
        returncode: int = child.process.returncode
        return returncode

    def stop_all(self) -> None:
        for child in [*self.workers, *self.more_apis, self.api, self.emulator]:
            child.stop()

    # Redis.

    async def flush_redis(self) -> None:
        """FLUSHALL on this stack's own Redis."""
        client = redis.asyncio.Redis.from_url(self.redis_url)
        try:
            await client.flushall()
        finally:
            await client.aclose()

    async def redis_keys(self, pattern: str = "*") -> list[str]:
        client = redis.asyncio.Redis.from_url(self.redis_url)
        try:
            return sorted(key.decode() for key in await client.keys(pattern))
        finally:
            await client.aclose()

    async def redis_ttls(self, pattern: str = "arq:*") -> dict[str, float]:
        """Keys matching `pattern` and their time to live in seconds (-1: none)."""
        client = redis.asyncio.Redis.from_url(self.redis_url)
        try:
            keys = await client.keys(pattern)
            return {key.decode(): (await client.pttl(key)) / 1000 for key in sorted(keys)}
        finally:
            await client.aclose()

    async def diagnostics(self) -> str:
        """The delivery state, for failure messages: partitions, outbox, arq's keys."""
        partitions = await self.fetch(
            "SELECT signal, lease_until, paused_until, failures, retried_requests, "
            "delivered_items, last_error, now() AT TIME ZONE 'UTC' AS db_now FROM partitions"
        )
        outbox = await self.fetch(
            "SELECT signal, count(*) AS rows, sum(item_count) AS items FROM outbox GROUP BY signal"
        )
        try:
            keys = await self.redis_ttls()
        except (OSError, redis.RedisError) as exc:
            keys = {f"(redis unavailable: {exc})": 0}
        lines = ["partitions:", *(f"  {dict(row)}" for row in partitions)]
        lines += ["outbox:", *(f"  {dict(row)}" for row in outbox)]
        lines += ["redis keys (ttl s):", *(f"  {key} {ttl}" for key, ttl in keys.items())]
        return "\n".join(lines)

    async def ring_refreshes(self, connection_ids: list[str], times: int = 1) -> None:
        """Ring each connection's refresh `times` times, under distinct ids, as lost-and-found
        doorbells and reconciler ticks would."""
        pool = await create_pool(
            RedisSettings.from_dsn(self.redis_url), default_queue_name=self.stack.queue_name
        )
        try:
            for ring in range(times):
                for connection_id in connection_ids:
                    await pool.enqueue_job(
                        REFRESH_CONNECTION, connection_id, _job_id=f"test:{connection_id}:{ring}"
                    )
        finally:
            await pool.aclose()

    # PostgreSQL.

    async def make_tokens_due(self, connection_ids: list[str]) -> None:
        """Age the connections' access tokens so they are due for a refresh now."""
        await self.fetch(
            "UPDATE connections SET access_token_expires_at = now() WHERE id = ANY($1::uuid[])"
            " RETURNING id",
            connection_ids,
        )

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        """Run a read-only query against this stack's database."""
        connection = await asyncpg.connect(asyncpg_dsn(self.stack.database_url))
        try:
            return list(await connection.fetch(query, *args))
        finally:
            await connection.close()

    async def wait_outbox_empty(self, deadline_seconds: float = 30) -> int:
        """Poll until the outbox holds no row (every row delivered or dead-lettered); the
        number of rows left when the deadline passed (0 on success)."""
        deadline = time.monotonic() + deadline_seconds
        while True:
            [row] = await self.fetch("SELECT count(*) AS n FROM outbox")
            left: int = row["n"]
            if left == 0 or time.monotonic() > deadline:
                return left
            await asyncio.sleep(POLL_SECONDS)

    # The emulator.

    async def fault(self, **fields: Any) -> None:
        """Queue an emulator fault (see `fakedatadog.faults`)."""
        (await self.stack.emu.post("/_emulator/faults", json=fields)).raise_for_status()

    async def clear_faults(self) -> None:
        (await self.stack.emu.delete("/_emulator/faults")).raise_for_status()

    async def counts(self, dd_oid: str, signal_name: str) -> dict[str, int]:
        """The emulator's counters of accepted requests and items for the org and signal."""
        response = await self.stack.emu.get("/_emulator/intake/counts")
        response.raise_for_status()
        counts: dict[str, int] = (
            response.json()["counts"]
            .get(dd_oid, {})
            .get(signal_name, {"requests": 0, "items": 0, "dropped": 0})
        )
        return counts

    async def wait_requests_answered(self, deadline_seconds: float = 20) -> int:
        """Poll until every request in the emulator's log has been answered (a request held by
        a delay fault is answered, and ingested, after its client may have given up); the
        number still open when the deadline passed."""
        deadline = time.monotonic() + deadline_seconds
        while True:
            requests = await self.stack.datadog_requests()
            still_open = sum(request["status"] is None for request in requests)
            if still_open == 0 or time.monotonic() > deadline:
                return still_open
            await asyncio.sleep(POLL_SECONDS)

    async def wait_for_request(
        self, path: str, *, answered: bool | None = None, deadline_seconds: float = 20
    ) -> dict[str, Any]:
        """The first request to `path` in the emulator's log (unanswered ones have status None),
        polled until one matches or the deadline passes."""
        deadline = time.monotonic() + deadline_seconds
        while True:
            for request in await self.stack.datadog_requests(path=path):
                if answered is None or (request["status"] is not None) is answered:
                    return request
            if time.monotonic() > deadline:
                raise AssertionError(f"no request to {path} (answered={answered}) in time")
            await asyncio.sleep(POLL_SECONDS)


@asynccontextmanager
async def isolated_stack(
    admin_url: str,
    work_dir: Path,
    log_dir: Path,
    *,
    settings: Mapping[str, str | None] | None = None,
    redis_url: str | None = None,
    workers: int = 1,
) -> AsyncIterator[IsolatedStack]:
    """Start a stack of its own (see the module docstring) with `settings` added to the
    environment (`DDBRIDGE_*` names; None removes one), and `workers` workers running."""
    await asyncio.to_thread(log_dir.mkdir, parents=True, exist_ok=True)
    async with AsyncExitStack() as exit_stack:
        if redis_url is None:
            server = EmbeddedRedis(work_dir / "redis")
            await asyncio.to_thread(server.start)
            exit_stack.callback(server.stop)
            redis_url = server.url()
        name = f"ddbridge_resilience_{secrets.token_hex(4)}"
        await admin_execute(admin_url, f'CREATE DATABASE "{name}"')
        database_url = admin_url.rsplit("/", 1)[0] + f"/{name}"
        exit_stack.push_async_callback(
            admin_execute, admin_url, f'DROP DATABASE "{name}" WITH (FORCE)'
        )
        await asyncio.to_thread(migrate, database_url)

        stack = Stack.allocate(
            database_url=database_url,
            redis_url=redis_url,
            queue_name=f"ddbridge-resilience-{secrets.token_hex(4)}",
            encryption_keys=[generate_key()],
            log_dir=log_dir,
        )
        env = {
            name: value
            for name, value in {**stack.environment(), **(settings or {})}.items()
            if value is not None
        }
        emulator_port, api_port = port_of(stack.emulator_url), port_of(stack.api_url)
        first_worker_port = int(port_of(stack.worker_metrics_url))
        emulator = processes.start(
            "emulator", ["fakedatadog", "--port", emulator_port], env, log_dir
        )
        api = processes.start("api", ["service", "api", "--port", api_port], env, log_dir)
        isolated = IsolatedStack(
            stack=stack,
            env=env,
            log_dir=log_dir,
            emulator=emulator,
            api=api,
            redis_url=redis_url,
        )
        exit_stack.callback(isolated.stop_all)
        stack.children = [emulator, api]
        await asyncio.to_thread(
            processes.wait_until_answers, emulator, f"{stack.emulator_url}/_emulator/health"
        )
        await asyncio.to_thread(processes.wait_until_answers, api, f"{stack.api_url}/readyz")
        for number in range(workers):
            await isolated.start_worker(first_worker_port if number == 0 else None)
        async with stack.clients(Recorder()) as ready:
            isolated.stack = ready
            await ready.reset_emulator()
            await ready.register_client(scopes=CLIENT_SCOPES)
            yield isolated
