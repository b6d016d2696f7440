"""Real child processes for tests and benchmarks: start `python -m ...` with its output in a
log file, wait until it answers over HTTP (polling against a deadline, never a fixed sleep),
and stop exactly that process (by its id, never by name)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The checkout: children start here; test artifacts and embedded databases live under it."""
POLL_INTERVAL_SECONDS = 0.05


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Child:
    """A running child process and the file its stdout and stderr go to."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def output_tail(self, lines: int = 40) -> str:
        """The last lines of the child's log, for error messages."""
        return "\n".join(self.output().splitlines()[-lines:])

    def stop(self, timeout: float = 15) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


def start(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> Child:
    """Start `python -m <args>` in the repository root with `env` added to ours."""
    return start_command(name, [sys.executable, "-m", *args], env, log_dir)


def start_command(name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> Child:
    """Start `argv` as given (a console script of this environment is found on its PATH)
    in the repository root with `env` added to ours."""
    log = log_dir / f"{name}.log"
    scripts = str(Path(sys.executable).parent)
    with log.open("ab") as sink:
        process = subprocess.Popen(  # noqa: S603 - our own commands
            argv,
            cwd=REPO_ROOT,
            env={**os.environ, "PATH": f"{scripts}:{os.environ.get('PATH', '')}", **env},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return Child(name, process, log)


def wait_until_answers(child: Child, url: str, deadline_seconds: float = 30.0) -> None:
    """Return once `url` answers 200; fail with the child's log if it exits or times out."""
    deadline = time.monotonic() + deadline_seconds
    with httpx.Client(timeout=2.0) as http:
        while time.monotonic() < deadline:
            if child.process.poll() is not None:
                raise RuntimeError(
                    f"{child.name} exited ({child.process.returncode}):\n{child.output()}"
                )
            try:
                if http.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(POLL_INTERVAL_SECONDS)
    raise RuntimeError(
        f"{child.name} did not answer {url} in {deadline_seconds} s:\n{child.output()}"
    )
