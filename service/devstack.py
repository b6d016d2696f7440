"""`ddbridge dev`: the emulator, the API and a worker as child processes, wired together.

Dev secrets (encryption key, internal token, OAuth client) are generated once and kept in
`<data dir>/dev.json`, and the emulator keeps its orgs and credentials in
`<data dir>/emulator.state`, so connections made in one run still open and deliver in the
next. Variables already
set in the environment win over the generated ones. Ctrl-C (or any child exiting) stops all.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import httpx
import typer
from sqlalchemy.engine import make_url

from service import devenv
from service.crypto import generate_key
from service.db import migrate
from service.settings import asyncpg_url

READY_TIMEOUT_SECONDS = 60.0


def redacted(url: str) -> str:
    """A database URL as it may be printed: its password replaced by `***`."""
    return make_url(url).render_as_string(hide_password=True)


def port_is_free(port: int) -> bool:
    """Whether 127.0.0.1:`port` can be listened on (as uvicorn would, with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def refuse_taken_ports(api_port: int, emulator_port: int) -> None:
    """Exit 1 at once, before anything starts, if a port the stack needs is taken, naming it
    and how to choose another."""
    for port, variable, option in (
        (api_port, "PORT", "--api-port"),
        (emulator_port, "EMULATOR_PORT", "--emulator-port"),
    ):
        if not port_is_free(port):
            other = next(p for p in range(port + 1, 65536) if port_is_free(p))
            typer.echo(
                f"port {port} is taken by another program; choose another: "
                f"make run {variable}={other} (or ddbridge dev {option} {other})",
                err=True,
            )
            raise typer.Exit(1)


def dev_secrets(data_dir: Path) -> dict[str, str]:
    """The generated dev configuration, created on first use and reused after."""
    path = data_dir / "dev.json"
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
        return stored
    values = {
        "DDBRIDGE_ENCRYPTION_KEYS": generate_key(),
        "DDBRIDGE_INTERNAL_TOKENS": secrets.token_urlsafe(32),
        "DDBRIDGE_CLIENT_ID": f"demo-{secrets.token_hex(8)}",
        "DDBRIDGE_CLIENT_SECRET": secrets.token_urlsafe(32),
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps(values, indent=2))
    return values


def dev_environment(data_dir: Path, api_port: int, emulator_port: int) -> dict[str, str]:
    defaults = {
        **dev_secrets(data_dir),
        "DDBRIDGE_MODE": "dev",
        "DDBRIDGE_PUBLIC_URL": f"http://127.0.0.1:{api_port}",
        "DDBRIDGE_DATADOG_URL_TEMPLATE": f"http://127.0.0.1:{emulator_port}/{{host}}",
    }
    return {**defaults, **os.environ}


def run_dev_stack(*, data_dir: Path, api_port: int, emulator_port: int) -> None:
    """Run until Ctrl-C or until a child exits; always stop every child."""
    stopping = _stop_on_signals()
    env = dev_environment(data_dir, api_port, emulator_port)
    migrate(asyncpg_url(env["DDBRIDGE_DATABASE_URL"]))
    public_url = env["DDBRIDGE_PUBLIC_URL"]
    emulator = f"http://127.0.0.1:{emulator_port}"
    python = sys.executable
    processes: dict[str, subprocess.Popen[bytes]] = {}
    with _stopping(processes), devenv.published(data_dir, env):
        demo = {
            "FAKEDATADOG_DEMO_CLIENT": f"{env['DDBRIDGE_CLIENT_ID']}:{env['DDBRIDGE_CLIENT_SECRET']}",
            "FAKEDATADOG_DEMO_REDIRECT_URI": env.get("DDBRIDGE_REDIRECT_URI")
            or f"{public_url}/oauth/callback",
        }
        # The emulator keeps its orgs and credentials across runs, as Datadog does, so the
        # connections made in an earlier run keep working.
        emulator_command = [python, "-m", "fakedatadog", "--port", str(emulator_port)]
        emulator_command += ["--state-file", str(data_dir / "emulator.state")]
        processes["emulator"] = _start({**env, **demo}, emulator_command)
        _wait_ready(f"{emulator}/_emulator/health")
        processes["api"] = _start(env, [python, "-m", "service", "api", "--port", str(api_port)])
        processes["worker"] = _start(env, [python, "-m", "service", "worker"])
        _wait_ready(f"{public_url}/readyz")
        typer.echo(
            "\nddbridge is running. Open this URL to connect a demo Datadog org:\n\n"
            f"  {public_url}/oauth/onboarding?site=app.datadoghq.com&domain=datadoghq.com\n\n"
            f"Internal API: {public_url}/internal/v1 "
            f"(Authorization: Bearer {env['DDBRIDGE_INTERNAL_TOKENS'].split(',')[0]})\n"
            f"Database: {redacted(env['DDBRIDGE_DATABASE_URL'])} "
            "(`ddbridge connections list` here finds it)\n"
            "Press Ctrl-C to stop.\n",
        )
        _supervise(processes, stopping)


def _start(env: dict[str, str], command: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, env=env)  # noqa: S603 - our own fixed commands


@contextmanager
def _stopping(processes: dict[str, subprocess.Popen[bytes]]) -> Iterator[None]:
    """On exit, SIGTERM every child still running, then wait (kill after 15 s)."""
    try:
        yield
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process in processes.items():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                typer.echo(f"{name} did not stop in 15 s; killing it", err=True)
                process.kill()


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready in {READY_TIMEOUT_SECONDS:.0f} s")


def _stop_on_signals() -> threading.Event:
    """From now on, SIGTERM and Ctrl-C set the returned event instead of interrupting."""
    stopping = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stopping


def _supervise(processes: dict[str, subprocess.Popen[bytes]], stopping: threading.Event) -> None:
    """Return once asked to stop, or when any child exits (naming it)."""
    while not stopping.wait(0.5):
        for name, process in processes.items():
            if process.poll() is not None:
                typer.echo(f"{name} exited with status {process.returncode}; stopping", err=True)
                return
