"""The `ddbridge` command line: run the API or worker, the whole dev stack, migrations, and
operator tasks.

When `DDBRIDGE_DATABASE_URL` / `DDBRIDGE_REDIS_URL` are unset, `ddbridge dev` and the run
commands in dev mode start a real PostgreSQL and Redis from wheels with their data under
`./.ddbridge/` (see `service.embedded`). Production mode refuses to: the embedded PostgreSQL
trusts every local user.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated, NoReturn, TypeVar

import typer
import uvicorn
import uvloop
from arq.worker import run_worker
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from service import deliveries, devenv, metrics
from service.api.schemas import DeadLetterOut, ReplayRequest
from service.api.views import connection_view, connection_views
from service.crypto import generate_key
from service.db import create_engine, create_sessionmaker, migrate
from service.dbcheck import check_database, database_problem
from service.embedded import EmbeddedPostgres, EmbeddedRedis
from service.errors import ServiceError
from service.keys import KeyUsage, rotate
from service.keys import status as key_status
from service.resources import open_resources, redis_settings
from service.settings import (
    DatabaseSettings,
    KeyRingSettings,
    RunMode,
    Settings,
    SettingsInvalid,
    configured,
    load,
    print_problems,
)
from service.verify import Check, verify

T = TypeVar("T")

DATA_DIR = Path(".ddbridge")
EMBEDDED_DATABASE = "ddbridge"

app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_enable=False)
connections_app = typer.Typer(help="Inspect connections (never shows a secret).")
app.add_typer(connections_app, name="connections")
deadletters_app = typer.Typer(help="Inspect and replay what could not be delivered.")
app.add_typer(deadletters_app, name="deadletters")
keys_app = typer.Typer(help="Encryption keys for secrets at rest.")
app.add_typer(keys_app, name="keys")


RUN_COMMANDS = {"api", "worker", "dev", "migrate"}
"""Commands that start or change things: they never adopt a running dev stack's settings."""


@app.callback()
def _find_the_dev_stack(ctx: typer.Context) -> None:
    # Operator commands without a database URL read a running `ddbridge dev`'s (service.devenv).
    if ctx.invoked_subcommand not in RUN_COMMANDS and not configured("DDBRIDGE_DATABASE_URL"):
        devenv.adopt(DATA_DIR)


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    # httpx logs every request URL at INFO; ours carry no secrets, but keep it quiet.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _exit_on_sigterm(_signum: int, _frame: FrameType | None) -> NoReturn:
    raise SystemExit(0)


@contextmanager
def embedded_services(data_dir: Path, *, redis: bool = True, trial: bool = False) -> Iterator[None]:
    """Start embedded PostgreSQL/Redis (unless `redis` is False) for whichever URL is unset
    (in the environment and in `DDBRIDGE_SECRETS_DIR`), exporting the URL.

    Only for a trial (`ddbridge dev`) or in dev mode; production mode raises
    `SettingsInvalid` naming the unset URLs instead. From here on SIGTERM ends the process as
    Ctrl-C does, through `finally` blocks, so the embedded servers are stopped either way
    (uvicorn, after its graceful stop, raises the SIGTERM it caught again).
    """
    needed = ["DDBRIDGE_DATABASE_URL", "DDBRIDGE_REDIS_URL"] if redis else ["DDBRIDGE_DATABASE_URL"]
    unset = [name for name in needed if not configured(name)]
    if unset and not trial and load(RunMode).mode == "production":
        raise SettingsInvalid(
            [
                f"{name} is not set: production mode runs on a server of its own, not an "
                "embedded one that trusts every local user; set it, or DDBRIDGE_MODE=dev "
                "for a trial"
                for name in unset
            ]
        )
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with ExitStack() as stack:
        if not configured("DDBRIDGE_DATABASE_URL"):
            postgres = stack.enter_context(EmbeddedPostgres(data_dir / "postgres"))
            postgres.create_database(EMBEDDED_DATABASE)
            os.environ["DDBRIDGE_DATABASE_URL"] = postgres.url(EMBEDDED_DATABASE)
            typer.echo(f"embedded PostgreSQL on port {postgres.port}", err=True)
        if redis and not configured("DDBRIDGE_REDIS_URL"):
            redis_server = stack.enter_context(EmbeddedRedis(data_dir / "redis"))
            os.environ["DDBRIDGE_REDIS_URL"] = redis_server.url()
            typer.echo(f"embedded Redis on port {redis_server.port}", err=True)
        yield


MAX_HEADER_BYTES = 64 * 1024
"""Request line and headers the API reads before answering 400 (h11's limit)."""

DataDirOption = Annotated[Path, typer.Option(help="Where embedded services keep their data.")]


@app.command()
def api(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="API processes behind the one port; /metrics sums them.")
    ] = 1,
    data_dir: DataDirOption = DATA_DIR,
    log_level: str = "INFO",
) -> None:
    """Serve the HTTP API (onboarding, callback, internal API, health, metrics)."""
    configure_logging(log_level)
    with ExitStack() as stack:
        stack.enter_context(embedded_services(data_dir))
        load(Settings)  # refuse invalid settings here, in one line each, before any process
        _refuse_a_wrong_database()
        if workers > 1:
            stack.enter_context(metrics.shared_by_processes())
        uvicorn.run(
            "service.main:app",
            host=host,
            port=port,
            access_log=False,
            log_config=None,
            proxy_headers=True,
            # h11, not httptools: it bounds the request line and headers (httptools reads
            # headers of any size into memory).
            http="h11",
            h11_max_incomplete_event_size=MAX_HEADER_BYTES,
            workers=workers,
        )


@app.command()
def worker(data_dir: DataDirOption = DATA_DIR, log_level: str = "INFO") -> None:
    """Run an arq worker: token refreshes and the reconciling cron."""
    from worker.main import WorkerSettings, crons  # noqa: PLC0415 - worker code only for this command

    configure_logging(log_level)
    with embedded_services(data_dir):
        _refuse_a_wrong_database()
        settings = load(Settings)
        # uvloop, as uvicorn uses for the API: the worker is round trips to PostgreSQL, Redis
        # and Datadog, and asyncio's pure-Python socket transports cost a fifth of its CPU.
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        run_worker(
            WorkerSettings,  # type: ignore[arg-type]  # arq's protocol type is stricter than its API
            redis_settings=redis_settings(settings),
            queue_name=settings.queue_name,
            job_completion_wait=settings.worker_shutdown_seconds,
            cron_jobs=crons(refresh_reconcile_seconds=settings.refresh_reconcile_seconds),
        )


@app.command("migrate")
def migrate_command(data_dir: DataDirOption = DATA_DIR) -> None:
    """Upgrade the database schema to the newest migration."""
    configure_logging("WARNING")
    with embedded_services(data_dir, redis=False):
        url = load(DatabaseSettings).database_url
        try:
            migrate(url)
        except Exception as exc:
            problem = database_problem(exc, url)
            if problem is None:
                raise
            typer.echo(f"cannot migrate: {problem.cause}", err=True)
            raise typer.Exit(1) from None
    typer.echo("database schema is up to date")


@app.command()
def dev(
    api_port: int = 8000,
    emulator_port: int = 8126,
    data_dir: DataDirOption = DATA_DIR,
) -> None:
    """Run everything locally: PostgreSQL, Redis, the Datadog emulator, the API and a worker."""
    from service.devstack import refuse_taken_ports, run_dev_stack  # noqa: PLC0415 - dev only

    configure_logging("INFO")
    refuse_taken_ports(api_port, emulator_port)
    with embedded_services(data_dir, trial=True):
        run_dev_stack(data_dir=data_dir, api_port=api_port, emulator_port=emulator_port)


@connections_app.command("list")
def connections_list(account_id: Annotated[str | None, typer.Option()] = None) -> None:
    """List connections (all, or one account's) as JSON lines."""

    for connection in _with_session(lambda session: connection_views(session, account_id)):
        typer.echo(connection.model_dump_json())


@connections_app.command("show")
def connections_show(connection_id: uuid.UUID) -> None:
    """Show one connection with its status history."""

    view = _with_session(lambda session: connection_view(session, connection_id))
    typer.echo(view.model_dump_json(indent=2))


@deadletters_app.command("list")
def deadletters_list(
    connection_id: Annotated[uuid.UUID | None, typer.Option("--connection")] = None,
    limit: int = 100,
) -> None:
    """Dead letters (newest first) as JSON lines: what Datadog refused or what expired."""
    letters = _with_session(
        lambda session: deliveries.dead_letters(session, connection_id, limit=limit)
    )
    for letter in letters:
        typer.echo(DeadLetterOut.of(letter).model_dump_json())


@deadletters_app.command("replay")
def deadletters_replay(
    connection_id: uuid.UUID,
    ids: Annotated[list[int] | None, typer.Argument(help="Dead letter ids; all when none")] = None,
) -> None:
    """Put a connection's dead letters back in the outbox (the worker's reconciler sends them)."""
    try:
        ReplayRequest(ids=ids)  # the API's bounds: ids within bigint, at most MAX_REPLAY_IDS
    except ValidationError as exc:
        reasons = "; ".join(f"{e['loc'][-1]}: {e['msg']}" for e in exc.errors(include_input=False))
        raise typer.BadParameter(reasons, param_hint="ids") from None
    replayed = _with_session(lambda session: deliveries.replay(session, connection_id, ids))
    for _, signal_name, items in replayed:
        typer.echo(f"replayed {items} {signal_name} item(s)")


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new key for DDBRIDGE_ENCRYPTION_KEYS (put it first to start rotating)."""
    typer.echo(generate_key())


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-seal every stored secret under the first of DDBRIDGE_ENCRYPTION_KEYS."""
    settings = load(KeyRingSettings)

    async def run() -> int:
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            return await rotate(create_sessionmaker(engine), settings.keyring())
        finally:
            await engine.dispose()

    typer.echo(f"re-sealed {asyncio.run(run())} secret(s) under the first key")


@keys_app.command("status")
def keys_status() -> None:
    """How many stored secrets each key id protects (0 under every old key: safe to drop it)."""
    settings = load(KeyRingSettings)

    async def run() -> list[KeyUsage]:
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            return await key_status(create_sessionmaker(engine), settings.keyring())
        finally:
            await engine.dispose()

    for usage in asyncio.run(run()):
        typer.echo(f"{usage.key_id}  {usage.role:<8}  {usage.secrets} secret(s)")


@app.command("verify")
def verify_command(connection_id: uuid.UUID) -> None:
    """Check a connection as Datadog's review asks (token, API key, each used scope); exit 1
    if a check fails."""

    async def run() -> list[Check]:
        async with open_resources(load(Settings)) as res:
            return await verify(res, connection_id)

    checks = asyncio.run(run())
    for check in checks:
        result = {True: "pass", False: "FAIL", None: "-"}[check.passed]
        typer.echo(f"{result:<4}  {check.name:<28}  {check.detail}")
    if any(check.passed is False for check in checks):
        raise typer.Exit(1)


def _with_session(query: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run one read against `DDBRIDGE_DATABASE_URL` in a short-lived engine. What it refuses
    (an unknown connection, say) or a database it cannot use ends the command with one line
    and exit status 1."""
    url = load(DatabaseSettings).database_url

    async def run() -> T:
        engine = create_engine(url, pool_size=1)
        try:
            async with create_sessionmaker(engine)() as session:
                return await query(session)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except ServiceError as exc:
        typer.echo(exc.detail, err=True)
        raise typer.Exit(1) from None
    except Exception as exc:
        problem = database_problem(exc, url)
        if problem is None:
            raise
        typer.echo(f"cannot read the database: {problem.cause}", err=True)
        raise typer.Exit(1) from None


def _refuse_a_wrong_database() -> None:
    """Exit 1 with one line if `DDBRIDGE_DATABASE_URL` names a database, role or password
    PostgreSQL refuses (retrying would not help); a server that is only unavailable is
    waited for (`/readyz` answers 503 meanwhile)."""
    url = load(DatabaseSettings).database_url
    problem = asyncio.run(check_database(url))
    if problem is not None and problem.configuration:
        typer.echo(f"DDBRIDGE_DATABASE_URL: {problem.cause}", err=True)
        raise typer.Exit(1)
    if problem is not None:
        typer.echo(f"database unavailable, starting anyway: {problem.cause}", err=True)


def main() -> None:
    """`ddbridge`: a setting that is missing or wrong ends it with status 2 and one line per
    problem naming the variable (never a value)."""
    try:
        app()
    except SettingsInvalid as problem:
        print_problems(problem)
        raise SystemExit(2) from None
