"""docker-compose.yml and the Dockerfile name services, commands, settings and probes that exist.

No Docker is needed: every command a container would run is resolved to this venv's console
script and asked for `--help`, and every object or URL path it names is imported or looked up.
"""

from __future__ import annotations

import base64
import importlib
import itertools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.settings import Settings

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
APP_SERVICES = ["emulator", "migrate", "api", "worker"]
COMMANDS = {
    "migrate": ["ddbridge", "migrate"],
    "api": ["ddbridge", "api", "--host", "0.0.0.0", "--port", "8000"],
    "worker": ["ddbridge", "worker"],
    "emulator": ["fakedatadog", "--host", "0.0.0.0", "--port", "8126"],
}
PROBED_PATHS = {"api": "/readyz", "emulator": "/_emulator/health", "worker": "/healthz"}
WORKER_ONLY = {"DDBRIDGE_WORKER_METRICS_PORT"}
"""Settings the worker has and the other services do not (its own HTTP port)."""


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


def _services() -> dict[str, Any]:
    services: dict[str, Any] = _compose()["services"]
    return services


def _dockerfile() -> list[tuple[str, str]]:
    """The instructions of the final stage as (INSTRUCTION, arguments), continuations joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    instructions = [tuple(line.split(maxsplit=1)) for line in lines if line and line[0] != "#"]
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return [(name.upper(), args) for name, args in instructions[last_from:]]


def _paths(service: str) -> set[str]:
    """The URL paths served by the app a service runs."""
    if service == "worker":
        return {"/healthz", "/metrics"}  # worker.health: /healthz, and metrics on any other
    if service == "emulator":
        from fakedatadog.app import create_app  # noqa: PLC0415

        app = create_app()
    else:
        app = importlib.import_module("service.main").app
    paths: dict[str, Any] = app.openapi()["paths"]
    return set(paths)


def _import_object(target: str) -> object:
    """Import `pkg.module:attr` (uvicorn's form) or `pkg.module.Attr` (arq's form)."""
    module, sep, attr = target.partition(":")
    if not sep:
        module, _, attr = target.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def _check_command(argv: list[str]) -> None:
    """Fail unless `argv` would start here: its program is a console script of this venv that
    answers `--help` and knows every `--option` used, and any object it names imports."""
    program, *args = argv
    exe = shutil.which(program, path=str(BIN))
    assert exe is not None, f"{program} is not a console script in {BIN}"
    leading = list(itertools.takewhile(lambda arg: not arg.startswith("-"), args))
    if program == "ddbridge":
        help_argv = [exe, *leading, "--help"]
    elif program in ("uvicorn", "arq"):
        assert _import_object(leading[0]) is not None
        help_argv = [exe, "--help"]
    else:
        assert program == "fakedatadog", f"no check for {program}"
        help_argv = [exe, "--help"]
    done = subprocess.run(help_argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"{help_argv} failed:\n{done.stdout}{done.stderr}"
    for option in (arg for arg in args if arg.startswith("--")):
        known = re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", done.stdout)
        assert known is not None, f"{program} has no {option}"


def _check_probe(code: str, service: str, port: str) -> None:
    """A health check's Python snippet compiles and requests a path the service serves."""
    compile(code, "<healthcheck>", "exec")
    match = re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/]+)", code)
    assert match is not None, code
    assert match[1] == port
    assert match[2] in _paths(service)


def test_services_and_their_dependencies() -> None:
    services = _services()
    assert set(services) == {"postgres", "redis", *APP_SERVICES}
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert services["redis"]["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("api", "worker"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "redis": {"condition": "service_healthy"},
        }
    for name in APP_SERVICES:
        assert services[name]["image"] == "ddbridge:local"
        assert services[name]["build"] == "."
    # The image's own health check probes the API; the migration serves nothing.
    assert services["migrate"]["healthcheck"] == {"disable": True}
    # Long-running services come back after a crash or a reboot; the migration runs once.
    for name in ("postgres", "redis", "emulator", "api", "worker"):
        assert services[name]["restart"] == "unless-stopped", name
    assert services["migrate"]["restart"] == "no"
    # SIGTERM, then SIGKILL after the grace period: longer than the worker's job wait.
    from worker.main import WorkerSettings  # noqa: PLC0415 - only this check needs it

    for name in ("api", "worker"):
        grace = int(services[name]["stop_grace_period"].removesuffix("s"))
        assert grace > WorkerSettings.job_completion_wait, name


@pytest.mark.parametrize("service", APP_SERVICES)
def test_service_command_exists(service: str) -> None:
    command = _services()[service]["command"]
    assert command == COMMANDS[service]
    _check_command(command)


@pytest.mark.parametrize("service", sorted(PROBED_PATHS))
def test_service_health_check_probes_a_served_path(service: str) -> None:
    definition = _services()[service]
    test = definition["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    assert PROBED_PATHS[service] in test[3]
    if service == "worker":
        port = definition["environment"]["DDBRIDGE_WORKER_METRICS_PORT"]
    else:
        port = definition["command"][-1]
    _check_probe(test[3], service, port)


def test_environment_is_a_valid_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    services = _services()
    environment = services["api"]["environment"]
    for name in ("migrate", "worker"):
        shared = {k: v for k, v in services[name]["environment"].items() if k not in WORKER_ONLY}
        assert shared == environment, name
    demo = services["emulator"]["environment"]
    assert demo["FAKEDATADOG_DEMO_CLIENT"] == (
        f"{environment['DDBRIDGE_CLIENT_ID']}:{environment['DDBRIDGE_CLIENT_SECRET']}"
    )
    assert (
        demo["FAKEDATADOG_DEMO_REDIRECT_URI"]
        == f"{environment['DDBRIDGE_PUBLIC_URL']}/oauth/callback"
    )
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.mode == "dev"
    assert settings.database_url.startswith("postgresql+asyncpg://postgres:postgres@postgres:5432/")
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.datadog_url_template == "http://emulator:8126/{host}"
    assert settings.client_id
    assert settings.client_secret
    for key in settings.encryption_keys:
        assert len(base64.urlsafe_b64decode(key.get_secret_value())) == 32


def test_dockerfile_runs_and_probes_what_exists() -> None:
    instructions = _dockerfile()
    cmd = json.loads(next(args for name, args in instructions if name == "CMD"))
    assert cmd == COMMANDS["api"]
    _check_command(cmd)

    options, probe = next(args for name, args in instructions if name == "HEALTHCHECK").split(
        "CMD ", 1
    )
    assert "--interval" in options
    python, flag, code = json.loads(probe)
    assert (python, flag) == ("python", "-c")
    assert "/healthz" in code
    _check_probe(code, "api", cmd[-1])

    assert ("USER", "ddbridge") in instructions
    for name, args in instructions:
        if name == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
