"""The usual first-day mistakes, each answered in one line (and the right exit status), not a
traceback; and the first-day chores (`make run`'s install) kept small."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jsonschema
import pytest
from pydantic import ValidationError

from harness import processes
from harness.databases import asyncpg_dsn
from service.crypto import generate_key
from service.settings import DatabaseSettings
from tests.support import payloads
from tests.support.stack import Stack

REPO = processes.REPO_ROOT
NEWCOMER_TOKEN = secrets.token_urlsafe(32)


def _run(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`python -m service <args>` in the checkout, with `env` as its whole environment."""
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{text}"
    return lines[0]


def test_make_run_installs_only_what_running_needs(tmp_path: Path) -> None:
    """`make run` installs the package alone; the test and lint tools come with `make test`."""
    venv = tmp_path / "venv"

    def dry_run(*args: str) -> str:
        done = subprocess.run(
            ["make", "-n", f"VENV={venv}", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return done.stdout

    run = dry_run("run")
    assert f"{venv}/bin/pip install --quiet -e .\n" in run
    assert "[dev]" not in run
    assert "--api-port 8000 --emulator-port 8126" in run
    test = dry_run("test")
    assert f"{venv}/bin/pip install --quiet -e '.[dev]'" in test
    assert "--api-port 8001 " in dry_run("run", "PORT=8001")


def test_package_metadata_has_an_spdx_license() -> None:
    """An SPDX expression (setuptools 77 or newer): no deprecation box on every install."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"
    assert "setuptools>=77" in project["build-system"]["requires"]


def test_a_taken_port_fails_at_once_naming_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _run(
            ["dev", "--api-port", str(port), "--emulator-port", str(processes.free_port()),
             "--data-dir", str(tmp_path)],
            timeout=30,
        )  # fmt: skip
    assert done.returncode == 1
    line = _one_line(done.stderr)
    assert line.startswith(
        f"port {port} is taken by another program; choose another: make run PORT="
    )
    assert not (tmp_path / "postgres").exists(), "nothing was started"


def _env(**settings: str) -> dict[str, str]:
    """This environment without any DDBRIDGE_ setting, plus `settings` (DDBRIDGE_ names)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("DDBRIDGE_")}
    return env | settings


def _app_settings(database_url: str, redis_url: str) -> dict[str, str]:
    return {
        "DDBRIDGE_DATABASE_URL": database_url,
        "DDBRIDGE_REDIS_URL": redis_url,
        "DDBRIDGE_INTERNAL_TOKENS": NEWCOMER_TOKEN,
        "DDBRIDGE_ENCRYPTION_KEYS": generate_key(),
        "DDBRIDGE_CLIENT_ID": "client",
        "DDBRIDGE_CLIENT_SECRET": "secret",
        "DDBRIDGE_SIGNIN_URL": "https://partner.example/datadog/sign-in",
    }


def _server(admin_url: str) -> str:
    """`postgresql+asyncpg://user@host:port` of the test server (no database)."""
    return admin_url.rsplit("/", 1)[0]


def test_migrate_against_a_stopped_database_prints_one_line() -> None:
    port = processes.free_port()
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/ddbridge"
    done = _run(["migrate"], _env(DDBRIDGE_DATABASE_URL=url))
    assert done.returncode == 1
    assert _one_line(done.stderr) == (
        f"cannot migrate: nothing answers at postgres@127.0.0.1:{port}/ddbridge: "
        "is PostgreSQL running?"
    )


async def test_a_plain_postgresql_url_is_taken_as_asyncpg(service_urls: tuple[str, str]) -> None:
    """`postgresql://` as cloud consoles print it works; another driver is refused by name."""
    admin_url = service_urls[0]
    name = f"ddbridge_newcomer_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        plain = asyncpg_dsn(f"{_server(admin_url)}/{name}")
        assert plain.startswith("postgresql://")
        done = await asyncio.to_thread(_run, ["migrate"], _env(DDBRIDGE_DATABASE_URL=plain))
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "database schema is up to date"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    assert DatabaseSettings(database_url=plain).database_url.startswith("postgresql+asyncpg://")
    with pytest.raises(ValidationError, match="through asyncpg, not psycopg2"):
        DatabaseSettings(database_url="postgresql+psycopg2://u@db/ddbridge")


@pytest.mark.parametrize(
    ("database", "user", "cause"),
    [
        ("no_such_database", "postgres", 'database "no_such_database" does not exist'),
        ("postgres", "no_such_role", 'role "no_such_role" does not exist'),
    ],
)
def test_a_wrong_database_or_user_stops_ddbridge_api_in_one_line(
    service_urls: tuple[str, str], database: str, user: str, cause: str
) -> None:
    admin_url, redis_url = service_urls
    server = _server(admin_url).replace("postgres@", f"{user}@", 1)
    settings = _app_settings(f"{server}/{database}", redis_url)
    done = _run(["api", "--port", str(processes.free_port())], _env(**settings))
    assert done.returncode == 1
    line = _one_line(done.stderr)
    assert line.startswith(f"DDBRIDGE_DATABASE_URL: {cause} (at {user}@"), line


async def test_a_wrong_database_answers_internal_routes_with_json_503(
    service_urls: tuple[str, str], log_dir: Path
) -> None:
    """Started without the CLI's check (`uvicorn service.main:app`, as in a container): the
    start-up check names the problem in one log line, and each internal call answers JSON 503
    with the cause, logged in one line, no traceback."""
    admin_url, redis_url = service_urls
    settings = _app_settings(f"{_server(admin_url)}/no_such_database", redis_url)
    port = str(processes.free_port())
    api = processes.start(
        f"uvicorn-wrong-db-{port}",
        ["uvicorn", "service.main:app", "--port", port],
        _env(**settings),
        log_dir,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        await asyncio.to_thread(processes.wait_until_answers, api, f"{url}/healthz")
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            answer = await http.get(
                "/internal/v1/connections", headers={"Authorization": f"Bearer {NEWCOMER_TOKEN}"}
            )
            ready = await http.get("/readyz")
    finally:
        api.stop()
    cause = (
        'database "no_such_database" does not exist (at postgres@127.0.0.1:5432/no_such_database)'
    )
    assert answer.status_code == 503
    assert answer.json() == {
        "error": "database_unavailable",
        "detail": f"the database is unavailable: {cause}; nothing was accepted",
        "cause": cause,
    }
    assert ready.status_code == 503
    log = api.output()
    assert "Traceback" not in log
    assert log.count(f"database check at start-up: {cause}") == 1
    assert log.count(f"database unavailable: {cause}") == 1


def test_showing_an_unknown_connection_prints_one_line(database_url: str) -> None:
    unknown = uuid.uuid4()
    done = _run(["connections", "show", str(unknown)], _env(DDBRIDGE_DATABASE_URL=database_url))
    assert done.returncode == 1
    assert _one_line(done.stderr) == f"no connection with id {unknown}"


SAMPLE_BODIES: dict[str, Any] = {
    "metrics": payloads.metrics(),
    "logs": payloads.logs(2),
    "events": payloads.event(),
    "service_checks": payloads.service_checks(2),
    "incidents": payloads.incident(),
    "traces": payloads.traces(2),
}


async def test_docs_describe_each_send_body(stack: Stack) -> None:
    """Each send route documents its body (Datadog's format) in the OpenAPI document that
    /docs shows; a body the route accepts matches it, one it refuses does not."""
    document = (await stack.api.get("/openapi.json")).json()
    for signal, body in SAMPLE_BODIES.items():
        operation = document["paths"][f"/internal/v1/connections/{{connection_id}}/{signal}"][
            "post"
        ]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        jsonschema.validate(body, schema)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate("not a body", schema)
        if isinstance(body, list):
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.validate([], schema)
