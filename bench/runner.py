"""Running one benchmark against a whole stack that it starts and stops."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from bench.report import Printer
from bench.stack import Stack, data_services, fresh_database, running_stack


def run_on_stack(
    prefix: str,
    body: Callable[[Stack], Coroutine[Any, Any, None]],
    out: Printer,
    *,
    api_workers: int = 1,
) -> None:
    """Start everything (the API as `api_workers` processes), run `body` against it, stop
    everything and drop the database."""
    started = time.monotonic()
    log_dir = Path(tempfile.mkdtemp(prefix=prefix))
    with data_services() as (admin_url, redis_url, origin), fresh_database(admin_url) as url:
        out(f"{origin}; logs of the processes in {log_dir}")
        with running_stack(url, redis_url, log_dir, api_workers) as stack:
            asyncio.run(body(stack))
    out(f"total run time {time.monotonic() - started:.0f} s")
