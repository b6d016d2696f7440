"""An idle worker's log stays quiet: its cron ticks (every 5 s) print nothing at INFO."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.isolated_stack import POLL_SECONDS, isolated_stack
from worker.main import CRONS
from worker.quiet import QuietIdleCrons

TICKS = 3
"""Ticks of the deliveries cron to wait for: the one at start-up and two 5-second ones."""


def ticks(exposition: str, cron: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        if family.name == "ddbridge_cron_ticks"
        for sample in family.samples
        if sample.labels.get("cron") == cron and sample.name.endswith("_total")
    )


async def test_idle_cron_ticks_log_nothing(
    service_urls: tuple[str, str], tmp_path: Path, log_dir: Path
) -> None:
    logs = log_dir / "quiet-worker"
    async with isolated_stack(service_urls[0], tmp_path, logs) as iso:
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient() as http:
            while ticks((await http.get(iso.stack.worker_metrics_url)).text, "deliveries") < TICKS:
                assert time.monotonic() < deadline, "the deliveries cron did not tick"
                await asyncio.sleep(POLL_SECONDS)
        [worker] = iso.workers
        lines = worker.output().splitlines()
    assert any("Starting worker" in line for line in lines)
    noisy = [
        line
        for line in lines
        if any(name in line for name in CRONS.values()) and ("→" in line or "←" in line)
    ]
    assert noisy == []


def test_a_tick_that_did_something_still_logs() -> None:
    quiet = QuietIdleCrons(CRONS.values())

    def record(message: str, *args: object) -> logging.LogRecord:
        return logging.LogRecord("arq.worker", logging.INFO, __file__, 1, message, args, None)

    name = CRONS["deliveries"]
    assert not quiet.filter(record("%6.2fs → %s(%s)%s", 0.1, name, "", ""))
    assert not quiet.filter(record("%6.2fs ← %s ● %s", 0.1, name, "0"))
    assert quiet.filter(record("%6.2fs ← %s ● %s", 0.1, name, "3"))
    assert quiet.filter(record("%6.2fs → %s(%s)%s", 0.1, "job:deliver", "'id'", ""))
