"""Build the emulator's ASGI app; nothing is created at import time."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI
from starlette.exceptions import HTTPException

from fakedatadog.errors import EmulatorError, handle_emulator_error, handle_http_error
from fakedatadog.gateway import Gateway
from fakedatadog.routes import api_host, app_host, control
from fakedatadog.state import EmulatorState
from service.sites import SiteRegistry


def create_app(extra_domains: Sequence[str] = ()) -> FastAPI:
    """A fresh emulator knowing the nine Datadog sites plus `extra_domains`, with empty state.

    A router for another kind of host is added to the `include_router` list below; its routes
    reach the state, org lookups by API key or token included, through `fakedatadog.deps`.
    """
    state = EmulatorState(SiteRegistry(extra_domains))
    app = FastAPI(title="fakedatadog", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.emulator = state
    for router in (control.router, app_host.router, api_host.router):
        app.include_router(router)
    app.add_exception_handler(EmulatorError, handle_emulator_error)
    app.add_exception_handler(HTTPException, handle_http_error)
    app.add_middleware(Gateway, state=state)
    return app
