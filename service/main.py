"""The FastAPI application: routers, error rendering, and the lifespan that opens resources.

`uvicorn service.main:app` works too: settings are read when the app starts, not when this
module is imported; invalid ones end the process with status 2 and one line per problem.
Whichever server runs the app, no request's path or query reaches a log: ddbridge logs the
route template, and uvicorn's own access lines lose their query and start ticket.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any, TypedDict

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import heap
from service.api import browser, docs, internal, ops, otlp, passthrough, sends
from service.api.guard import PREFIX
from service.dbcheck import check_database, database_problem
from service.errors import InvalidInput, Problem, ServiceError
from service.intake.parse import pointer
from service.resources import Resources, open_resources
from service.settings import Settings, SettingsInvalid, load, refuse_to_start
from service.shutdown import Drain

log = logging.getLogger("ddbridge.http")


class State(TypedDict):
    resources: Resources
    drain: Drain


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; `settings` default to the environment, read at start-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[State]:
        try:
            current = settings or load(Settings)
        except SettingsInvalid as problem:
            refuse_to_start(problem)
        redact_access_log()
        drain = Drain()
        drain.install(current.shutdown_drain_seconds)
        database = await check_database(current.database_url)
        if database is not None:  # serve anyway: /readyz says 503 until it is fixed or back
            log.error("database check at start-up: %s", database.cause)
        async with open_resources(current) as resources:
            heap.settle()
            yield {"resources": resources, "drain": drain}

    # The description and its page are `service.api.docs`, served as DDBRIDGE_API_DOCS says.
    app = FastAPI(
        title="ddbridge",
        version="0.1.0",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(ops.router)
    app.include_router(docs.router)
    app.include_router(browser.router)
    app.include_router(internal.router)
    app.include_router(sends.router)
    app.include_router(passthrough.router)
    app.include_router(otlp.router)
    app.include_router(browser.demo_router)
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for database_error in (DBAPIError, PoolTimeoutError, OSError):
        app.add_exception_handler(database_error, _database_unavailable)
    app.add_middleware(RequestLog)
    return app


async def _service_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers())


async def _validation_error(request: Request, exc: Exception) -> Response:
    """FastAPI's own validation (bodies of models, parameters, headers) as `InvalidInput`:
    every problem with its JSON pointer into the body, or `/query/<name>`, `/header/<name>`."""
    assert isinstance(exc, RequestValidationError)
    problems = [Problem(_pointer(error["loc"]), error["msg"]) for error in exc.errors()]
    return await _service_error(request, InvalidInput(problems))


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's and FastAPI's own refusals in the error body's shape: 404 and 405 from
    routing, and 400 for a body FastAPI cannot decode (not UTF-8, say), which is a 422 here
    as it is on the send routes."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        problem = Problem("", "malformed body: it does not decode as JSON")
        return await _service_error(request, InvalidInput([problem]))
    code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
    return JSONResponse(
        {"error": code, "detail": str(exc.detail)},
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    """503 when PostgreSQL cannot be used (down, or a wrong database, role or password), with
    the cause in one log line and, on internal routes, in the answer; nothing was committed."""
    resources: Resources = request.state.resources
    problem = database_problem(exc, resources.settings.database_url)
    if problem is None:
        raise exc
    log.warning("database unavailable: %s", problem.cause)
    body = {
        "error": "database_unavailable",
        "detail": "the database is unavailable; nothing was accepted",
    }
    if request.url.path.startswith(PREFIX):  # the partner's backend, not a customer's browser
        body |= {"detail": f"the database is unavailable: {problem.cause}; nothing was accepted"}
        body["cause"] = problem.cause
    return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})


def _pointer(loc: tuple[Any, ...]) -> str:
    return pointer(loc[1:] if loc and loc[0] == "body" else loc)


class _RedactedAccessLine(logging.Filter):
    """uvicorn's access line (`client - "METHOD path HTTP/v" status`) without the query
    string (OAuth codes and states) or the start link's ticket."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, version, status = record.args
            record.args = (client, method, redacted_path(str(path)), version, status)
        return True


def redacted_path(path: str) -> str:
    """A request path fit for a log: no query, and `/oauth/start/<ticket>` for any ticket."""
    bare, query, _ = path.partition("?")
    if bare.startswith("/oauth/start/"):
        bare = "/oauth/start/<ticket>"
    return bare + ("?<query>" if query else "")


def redact_access_log() -> None:
    """Redact uvicorn's access log in this process (once), however uvicorn was started."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _RedactedAccessLine) for f in access.filters):
        access.addFilter(_RedactedAccessLine())


class RequestLog:
    """One line per request, naming the route template: paths and queries carry tickets,
    codes and states, which never reach a log.

    Plain ASGI rather than `BaseHTTPMiddleware`, which runs each request in a task of its
    own behind a memory stream: it only watches the status go by.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, watched)
        log.info(
            "%s %s %d %.1fms",
            scope["method"],
            getattr(scope.get("route"), "path", "(no route)"),
            status,
            (time.perf_counter() - started) * 1000,
        )


app = create_app()
