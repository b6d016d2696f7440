"""A missing or wrong setting stops every way of starting ddbridge with status 2 and one line
per problem naming the `DDBRIDGE_...` variable and the fix, and never shows a value (pydantic's
own error prints every input, database password and internal tokens included)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.processes import REPO_ROOT, free_port

BIN = Path(sys.executable).parent
DATABASE_PASSWORD = "db-password-8d2f0c1e9a"
INTERNAL_TOKEN = "internal-token-5e1b7c9d3f2a4e6b8c0d1f3a5b7c9e1d"
CLIENT_SECRET = "client-secret-0a9b8c7d6e5f"
SECRETS = [DATABASE_PASSWORD, INTERNAL_TOKEN, CLIENT_SECRET]

ENCRYPTION_KEYS_MISSING = (
    "ddbridge: DDBRIDGE_ENCRYPTION_KEYS is not set: generate a key with `ddbridge keys generate`"
)
FLOW_TTL_NOT_A_NUMBER = "ddbridge: DDBRIDGE_FLOW_TTL_SECONDS: Input should be a valid integer"


def _environment(redis_url: str) -> dict[str, str]:
    """Secrets set, `ENCRYPTION_KEYS` missing and `FLOW_TTL_SECONDS` not a number."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DDBRIDGE_")}
    return {
        **environ,
        "PATH": f"{BIN}:{environ.get('PATH', '')}",
        "DDBRIDGE_DATABASE_URL": f"postgresql+asyncpg://ddbridge:{DATABASE_PASSWORD}@127.0.0.1:1/x",
        "DDBRIDGE_REDIS_URL": redis_url,
        "DDBRIDGE_INTERNAL_TOKENS": INTERNAL_TOKEN,
        "DDBRIDGE_CLIENT_ID": "client",
        "DDBRIDGE_CLIENT_SECRET": CLIENT_SECRET,
        "DDBRIDGE_FLOW_TTL_SECONDS": "soon",
        "DDBRIDGE_QUEUE_NAME": f"settings-errors-{os.getpid()}",
    }


def _run(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    done = subprocess.run(
        argv,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def _problems(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("ddbridge: ")]


STARTS = {
    "ddbridge api": ["ddbridge", "api", "--port", "{port}"],
    "ddbridge worker": ["ddbridge", "worker"],
    "uvicorn service.main:app": ["uvicorn", "service.main:app", "--port", "{port}"],
    "arq worker.main.WorkerSettings": ["arq", "worker.main.WorkerSettings"],
}


@pytest.mark.parametrize("start", sorted(STARTS))
def test_every_way_of_starting_names_each_bad_setting_and_no_value(
    service_urls: tuple[str, str], start: str
) -> None:
    _, redis_url = service_urls
    argv = [part.replace("{port}", str(free_port())) for part in STARTS[start]]

    status, output = _run(argv, _environment(redis_url))

    assert status == 2, output
    problems = _problems(output)
    assert len(problems) == 2, output
    assert problems[0].startswith(ENCRYPTION_KEYS_MISSING), output
    assert problems[1].startswith(FLOW_TTL_NOT_A_NUMBER), output
    for secret in SECRETS:
        assert secret not in output, f"a setting's value was printed:\n{output}"
    assert "input_value" not in output
    assert "Traceback" not in output


def test_operator_commands_name_the_missing_key_ring(service_urls: tuple[str, str]) -> None:
    _, redis_url = service_urls

    status, output = _run(["ddbridge", "keys", "status"], _environment(redis_url))

    assert status == 2, output
    assert [p[: len(ENCRYPTION_KEYS_MISSING)] for p in _problems(output)] == [
        ENCRYPTION_KEYS_MISSING
    ]
    assert DATABASE_PASSWORD not in output


def test_a_malformed_key_is_named_without_its_value(service_urls: tuple[str, str]) -> None:
    _, redis_url = service_urls
    key = "not-a-key-6c5d4e3f2a1b"
    env = {**_environment(redis_url), "DDBRIDGE_ENCRYPTION_KEYS": key}
    del env["DDBRIDGE_FLOW_TTL_SECONDS"]

    status, output = _run(["ddbridge", "worker"], env)

    assert status == 2, output
    [problem] = _problems(output)
    assert problem.startswith("ddbridge: DDBRIDGE_ENCRYPTION_KEYS: an encryption key must be")
    assert key not in output
