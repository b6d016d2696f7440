"""What is wrong with the database, in one line: for start-up checks, 503 answers and logs.

A failure to use PostgreSQL is either the configuration's fault (no such database, role or
password, a host name that does not resolve: fix `DDBRIDGE_DATABASE_URL`) or the server's
(refused, not answering, shutting down: it may come back). `database_problem` tells which and
names the cause without the URL's password; anything else (a bug, a constraint) is not a
database problem and gets None.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from service.db import connection_failure, create_engine

CONFIGURATION_SQLSTATES = {
    "3D000": "no such database",
    "28000": "role refused",
    "28P01": "password refused",
}
CHECK_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class DatabaseProblem:
    cause: str
    """One line naming what failed and where (never the password)."""
    configuration: bool
    """True: the URL is wrong, retrying will not help; False: the server is unavailable."""


def where(url: str) -> str:
    """`user@host:port/database` of a database URL, without its password."""
    try:
        parts = make_url(url)
    except ArgumentError:
        return "(an unreadable URL)"
    return f"{parts.username or ''}@{parts.host or ''}:{parts.port or 5432}/{parts.database or ''}"


def database_problem(exc: BaseException, url: str) -> DatabaseProblem | None:
    """The problem `exc` shows with the database at `url`, or None if it shows none."""
    place = where(url)
    for error in _chain(exc):
        problem = _server_said(error, place) or _network_said(error, place)
        if problem is not None:
            return problem
    if isinstance(exc, (OperationalError, InterfaceError)) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        return DatabaseProblem(f"{_first_line(exc)} (at {place})", configuration=False)
    return None


def _server_said(error: BaseException, place: str) -> DatabaseProblem | None:
    """PostgreSQL's own refusal, by its SQLSTATE."""
    sqlstate = getattr(error, "sqlstate", None) or ""
    if sqlstate in CONFIGURATION_SQLSTATES:
        return DatabaseProblem(f"{_first_line(error)} (at {place})", configuration=True)
    if connection_failure(sqlstate):
        return DatabaseProblem(f"{_first_line(error)} (at {place})", configuration=False)
    return None


def _network_said(error: BaseException, place: str) -> DatabaseProblem | None:
    """A failure to reach the server at all."""
    if isinstance(error, socket.gaierror):
        host = place.split("@", 1)[1].rsplit(":", 1)[0]
        return DatabaseProblem(f"the host {host!r} does not resolve", configuration=True)
    if isinstance(error, ConnectionRefusedError):
        cause = f"nothing answers at {place}: is PostgreSQL running?"
    elif isinstance(error, (TimeoutError, PoolTimeoutError)):
        cause = f"no answer from {place} in time"
    elif isinstance(error, OSError):
        cause = f"cannot reach {place}: {error.strerror or error}"
    else:
        return None
    return DatabaseProblem(cause, configuration=False)


async def check_database(url: str) -> DatabaseProblem | None:
    """Connect once and run `SELECT 1`; the problem, if any."""
    engine = create_engine(url, pool_size=1)
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        problem = database_problem(exc, url)
        if problem is None:
            raise
        return problem
    finally:
        await engine.dispose()
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc`, what SQLAlchemy wrapped (`orig`) and the causes, outermost first."""
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [exc]
    while pending:
        error = pending.pop(0)
        if error is None or any(error is known for known in seen):
            continue
        seen.append(error)
        pending += [getattr(error, "orig", None), error.__cause__, error.__context__]
    return seen


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
