"""A missing or wrong setting stops every way of starting ddbridge with status 2 and one line
per problem naming the `DDBRIDGE_...` variable and the fix, and never shows a value (pydantic's
own error prints every input, database password and internal tokens included). Production
mode also refuses what only a trial may use: short internal tokens, plain-http Datadog URLs,
and an embedded PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.processes import REPO_ROOT, free_port
from service.crypto import generate_key

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
        "DDBRIDGE_SIGNIN_URL": "https://partner.example/datadog/sign-in",
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


# Production mode's refusals.


def _production(redis_url: str, **changes: str | None) -> dict[str, str]:
    """A valid production environment, with `changes` applied (None: unset)."""
    env = {
        **_environment(redis_url),
        "DDBRIDGE_ENCRYPTION_KEYS": generate_key(),
        "DDBRIDGE_MODE": "production",
    }
    del env["DDBRIDGE_FLOW_TTL_SECONDS"]
    for name, value in changes.items():
        if value is None:
            env.pop(f"DDBRIDGE_{name}", None)
        else:
            env[f"DDBRIDGE_{name}"] = value
    return env


@pytest.mark.parametrize(
    ("changes", "problems"),
    [
        (
            {"INTERNAL_TOKENS": f"{INTERNAL_TOKEN},short-token-1a2b"},
            ["DDBRIDGE_INTERNAL_TOKENS: each token needs at least 32 characters"],
        ),
        (
            {"DATADOG_URL_TEMPLATE": "http://proxy.internal:8126/{host}"},
            ["DDBRIDGE_DATADOG_URL_TEMPLATE: production mode reaches Datadog over https:// only"],
        ),
        (
            {"DATADOG_BROWSER_URL_TEMPLATE": "http://datadog.example/{host}"},
            ["DDBRIDGE_DATADOG_BROWSER_URL_TEMPLATE: production mode reaches Datadog over"],
        ),
        (
            {"DATABASE_URL": None, "REDIS_URL": None},
            [
                "DDBRIDGE_DATABASE_URL is not set: production mode runs on a server of its own",
                "DDBRIDGE_REDIS_URL is not set: production mode runs on a server of its own",
            ],
        ),
        (
            {"SIGNIN_URL": None},
            ["DDBRIDGE_SIGNIN_URL is not set: production mode hands customers arriving from"],
        ),
    ],
    ids=[
        "short token",
        "http template",
        "http browser template",
        "embedded databases",
        "no sign-in",
    ],
)
def test_production_mode_refuses_what_only_a_trial_may_use(
    service_urls: tuple[str, str],
    tmp_path: Path,
    changes: dict[str, str | None],
    problems: list[str],
) -> None:
    _, redis_url = service_urls
    data_dir = tmp_path / "data"

    status, output = _run(
        ["ddbridge", "api", "--port", str(free_port()), "--data-dir", str(data_dir)],
        _production(redis_url, **changes),
    )

    assert status == 2, output
    found = _problems(output)
    assert len(found) == len(problems), output
    for line, expected in zip(found, problems, strict=True):
        assert line.startswith(f"ddbridge: {expected}"), output
    assert "short-token-1a2b" not in output
    assert not data_dir.exists(), "no embedded server was started"


def test_dev_mode_allows_a_short_token_a_plain_http_emulator_and_no_sign_in(
    service_urls: tuple[str, str],
) -> None:
    """What production refuses is a setting's problem there only (checked without starting)."""
    _, redis_url = service_urls
    env = _production(
        redis_url,
        MODE="dev",
        INTERNAL_TOKENS="demo-internal-token",
        DATADOG_URL_TEMPLATE="http://emulator:8126/{host}",
        SIGNIN_URL=None,
    )
    check = "from service.settings import Settings, load; print(load(Settings).mode)"

    status, output = _run([sys.executable, "-c", check], env)

    assert (status, output.strip()) == (0, "dev")


@pytest.mark.parametrize(("value", "accepted"), [("5", True), ("60", True), ("7", False)])
def test_the_refresh_reconciler_ticks_at_a_divisor_of_the_minute(
    service_urls: tuple[str, str], value: str, accepted: bool
) -> None:
    """`ddbridge worker` schedules the reconciler at every multiple of the setting past the
    minute, so only a divisor of 60 keeps its ticks evenly spaced; another is refused."""
    _, redis_url = service_urls
    env = {**_environment(redis_url), "DDBRIDGE_ENCRYPTION_KEYS": generate_key()}
    del env["DDBRIDGE_FLOW_TTL_SECONDS"]
    env["DDBRIDGE_REFRESH_RECONCILE_SECONDS"] = value
    check = (
        "from service.settings import Settings, load; from worker.main import crons; "
        "s = load(Settings).refresh_reconcile_seconds; "
        "print(sorted(crons(refresh_reconcile_seconds=s)[0].second))"
    )

    status, output = _run([sys.executable, "-c", check], env)

    if accepted:
        assert status == 0, output
        assert output.strip() == str(list(range(0, 60, int(value))))
    else:
        assert status == 1, output
        assert (
            "DDBRIDGE_REFRESH_RECONCILE_SECONDS: must divide 60: one of 1, 2, 3, 4, 5, 6, "
            in output
        )
