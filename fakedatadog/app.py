"""Build the emulator's ASGI app; nothing is created at import time."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI
from starlette.exceptions import HTTPException

from fakedatadog.errors import EmulatorError, handle_emulator_error, handle_http_error
from fakedatadog.gateway import Gateway
from fakedatadog.routes import api_host, app_host, control, control_intake, intake, reads
from fakedatadog.sites import SiteRegistry
from fakedatadog.state import EmulatorState, Settings


def create_app(extra_domains: Sequence[str] = (), *, bench: bool = False) -> FastAPI:
    """A fresh emulator knowing the nine Datadog sites plus `extra_domains`, with empty state;
    `bench` starts it (and every reset returns it) in bench mode.

    A router for another kind of host is added to `routers` below; its routes
    reach the state, org lookups by API key or token included, through `fakedatadog.deps`.
    """
    state = EmulatorState(SiteRegistry(extra_domains), Settings(bench=bench))
    app = FastAPI(title="fakedatadog", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.emulator = state
    routers = (
        control.router,
        control_intake.router,
        app_host.router,
        api_host.router,
        intake.api_router,
        reads.router,
        intake.logs_router,
        intake.trace_router,
        intake.otlp_router,
    )
    for router in routers:
        app.include_router(router)
    app.add_exception_handler(EmulatorError, handle_emulator_error)
    app.add_exception_handler(HTTPException, handle_http_error)
    app.add_middleware(Gateway, state=state)
    return app
