"""Start one emulator process per test session; give each test a reset emulator."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from harness.processes import REPO_ROOT, free_port
from tests.fakedatadog.helpers import EXTRA_DOMAIN, Emu

STARTUP_DEADLINE_SECONDS = 20.0


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    with httpx.Client(timeout=1.0) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"fakedatadog exited with {process.returncode}:\n{log.read_text()}")
            try:
                if http.get(f"{url}/_emulator/health").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.02)  # polling interval while the port opens, not synchronisation
    pytest.fail(f"fakedatadog not healthy in {STARTUP_DEADLINE_SECONDS}s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def emulator_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a real emulator process, trusting one extra site besides the nine."""
    port = free_port()
    log = tmp_path_factory.mktemp("fakedatadog") / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fakedatadog",
                "--port",
                str(port),
                "--extra-sites",
                EXTRA_DOMAIN,
            ],
            cwd=REPO_ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
async def emu(emulator_url: str) -> AsyncIterator[Emu]:
    """A client of the emulator, reset to its empty state before the test."""
    async with httpx.AsyncClient(base_url=emulator_url, timeout=10.0) as http:
        response = await http.post("/_emulator/reset")
        assert response.status_code == 204
        yield Emu(http)
