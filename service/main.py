"""The FastAPI application: routers, error rendering, and the lifespan that opens resources.

`uvicorn service.main:app` works for containers: settings are read when the app starts, not
when this module is imported.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypedDict

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from service.api import browser, internal, ops, otlp, sends
from service.db import database_is_down
from service.errors import ServiceError
from service.intake.parse import InvalidBodyError, pointer
from service.resources import Resources, open_resources
from service.settings import Settings

log = logging.getLogger("ddbridge.http")


class State(TypedDict):
    resources: Resources


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; `settings` default to the environment, read at start-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[State]:
        current = settings or Settings()
        async with open_resources(current) as resources:
            yield {"resources": resources}

    app = FastAPI(title="ddbridge", version="0.1.0", lifespan=lifespan)
    app.include_router(ops.router)
    app.include_router(browser.router)
    app.include_router(internal.router)
    app.include_router(sends.router)
    app.include_router(otlp.router)
    app.include_router(browser.demo_router)
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(InvalidBodyError, _invalid_body)
    for database_error in (DBAPIError, PoolTimeoutError, OSError):
        app.add_exception_handler(database_error, _database_unavailable)
    app.middleware("http")(_log_request)
    return app


async def _service_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers())


async def _validation_error(_: Request, exc: Exception) -> Response:
    """422 listing every problem with its JSON pointer into the body (or parameter name)."""
    assert isinstance(exc, RequestValidationError)
    return _problems(
        [{"pointer": _pointer(error["loc"]), "reason": error["msg"]} for error in exc.errors()]
    )


async def _invalid_body(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, InvalidBodyError)
    return _problems([{"pointer": p.pointer, "reason": p.reason} for p in exc.problems])


def _problems(problems: list[dict[str, str]]) -> Response:
    """422 listing every problem; nothing of the request was stored."""
    return JSONResponse(
        {
            "error": "invalid_body",
            "detail": f"the request has {len(problems)} problem(s); nothing was accepted",
            "problems": problems,
        },
        status_code=422,
    )


async def _database_unavailable(_: Request, exc: Exception) -> Response:
    """503 when PostgreSQL cannot be reached; the transaction never committed."""
    if not database_is_down(exc):
        raise exc
    log.warning("database unavailable: %s", type(exc).__name__)
    return JSONResponse(
        {
            "error": "database_unavailable",
            "detail": "the database is unavailable; nothing was accepted",
        },
        status_code=503,
        headers={"Retry-After": "1"},
    )


def _pointer(loc: tuple[Any, ...]) -> str:
    return pointer(loc[1:] if loc and loc[0] == "body" else loc)


async def _log_request(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """One line per request, naming the route template: paths and queries carry tickets,
    codes and states, which never reach a log."""
    started = time.perf_counter()
    response = await call_next(request)
    route = request.scope.get("route")
    log.info(
        "%s %s %d %.1fms",
        request.method,
        getattr(route, "path", "(no route)"),
        response.status_code,
        (time.perf_counter() - started) * 1000,
    )
    return response


app = create_app()
