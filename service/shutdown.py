"""An API process's graceful stop on SIGTERM: first drain, then uvicorn's own stop.

On the first SIGTERM the process keeps listening for `DDBRIDGE_SHUTDOWN_DRAIN_SECONDS`, while
`/readyz` answers 503 `draining` (a load balancer or Kubernetes takes the process out of
rotation) and every send answers 503 `shutting_down` with `Retry-After` (nothing read, nothing
accepted: the client sends again, to another process); the other routes are served as usual.
Then uvicorn's own handler runs: it stops listening, finishes the requests it took, runs the
lifespan's shutdown and exits. With no drain time, or on a second SIGTERM, uvicorn's stop
starts at once; SIGINT (Ctrl-C) is uvicorn's alone.

The drain takes SIGTERM over from the server only in the main thread and only from a
server that installed a Python handler (uvicorn does, for each process it runs); an app run
in a test client's thread keeps the default behaviour.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from service.errors import ServiceError

log = logging.getLogger(__name__)

SignalHandler = Callable[[int, FrameType | None], object]


class ShuttingDown(ServiceError):
    """This process is stopping; the same request to another one will be taken."""

    status_code = 503
    code = "shutting_down"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.extra["retry_after"])}


class Drain:
    """Whether this process is draining (see the module docstring)."""

    def __init__(self) -> None:
        self.draining = False
        self._server_handler: SignalHandler | None = None

    def install(self, seconds: float) -> None:
        """Take SIGTERM over from the server for a drain of `seconds` (0: none)."""
        if seconds <= 0 or threading.current_thread() is not threading.main_thread():
            return
        current = signal.getsignal(signal.SIGTERM)
        if not callable(current):
            return
        self._server_handler = current
        loop = asyncio.get_running_loop()

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            if self.draining:  # a second SIGTERM: stop now
                current(signum, frame)
                return
            self.draining = True
            loop.call_soon_threadsafe(self._hand_over_after, loop, seconds)

        signal.signal(signal.SIGTERM, on_sigterm)

    def _hand_over_after(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        log.info("SIGTERM: draining for %.1f s, then stopping", seconds)
        loop.call_later(seconds, self._hand_over)

    def _hand_over(self) -> None:
        assert self._server_handler is not None
        self._server_handler(signal.SIGTERM, None)

    def refuse_if_draining(self) -> None:
        if self.draining:
            raise ShuttingDown(
                "this process is shutting down; nothing was accepted; send again",
                retry_after=1,
            )
