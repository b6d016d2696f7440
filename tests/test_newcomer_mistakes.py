"""The usual first-day mistakes, each answered in one line (and the right exit status), not a
traceback; and the first-day chores (`make run`'s install) kept small."""

from __future__ import annotations

import socket
import subprocess
import sys
import tomllib
from pathlib import Path

from harness import processes

REPO = processes.REPO_ROOT


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
