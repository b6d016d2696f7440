"""The worker's HTTP port: Prometheus metrics, and `/healthz`, a liveness check of its event loop.

A worker serves no traffic, so it has no readiness; it is alive while its event loop turns.
A task in the loop beats every `BEAT_SECONDS`; `/healthz` answers 200 while the last beat is
younger than `STALE_SECONDS`, else 503 (a loop blocked or wedged: restart the process). Redis
and PostgreSQL are left out on purpose: restarting a worker does not bring them back, and the
worker waits for them by itself. The port is served from a thread, so it answers even while
the loop is blocked, which is what lets it say so.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

BEAT_SECONDS = 1.0
STALE_SECONDS = 10.0


@dataclass
class Heartbeat:
    """When the worker's event loop last turned (monotonic seconds)."""

    last: float = field(default_factory=time.monotonic)

    async def beat(self) -> None:
        """Run in the worker's loop until cancelled."""
        while True:
            self.last = time.monotonic()
            await asyncio.sleep(BEAT_SECONDS)

    def age(self) -> float:
        return time.monotonic() - self.last


class _QuietHandler(WSGIRequestHandler):
    """No line on stderr per probe or scrape."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class HealthPort:
    """The HTTP port (see the module docstring), served by a daemon thread until `close()`."""

    def __init__(self, host: str, port: int, heartbeat: Heartbeat) -> None:
        self._heartbeat = heartbeat
        self._metrics = make_wsgi_app()
        self._server = make_server(host, port, self._app, ThreadingWSGIServer, _QuietHandler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="worker-http", daemon=True
        )
        self._thread.start()

    def _app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/healthz":
            metrics: Iterable[bytes] = self._metrics(environ, start_response)
            return metrics
        age = self._heartbeat.age()
        alive = age < STALE_SECONDS
        body = json.dumps(
            {"status": "ok" if alive else "stalled", "loop_seconds_since_beat": round(age, 3)}
        ).encode()
        start_response(
            "200 OK" if alive else "503 Service Unavailable",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
