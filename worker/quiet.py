"""Quiet idle cron ticks in the worker's log.

arq logs the start and the end of every job at INFO. The reconciling crons tick every 5 s,
so an idle worker printed four lines every 5 s and scrolled the `ddbridge dev` banner away.
This filter drops a cron's start line, and its end line when it found nothing to do (its
result is 0); a tick that rang, refreshed or notified something still logs its end line with
how many. Failures are logged by arq at ERROR and pass. `ddbridge_cron_ticks_total` counts
every tick, idle or not.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

ARQ_LOGGER = "arq.worker"


class QuietIdleCrons(logging.Filter):
    """Drops the INFO lines of idle ticks of the crons named (see the module docstring)."""

    def __init__(self, cron_names: Iterable[str]) -> None:
        super().__init__()
        self._names = frozenset(cron_names)

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.levelno != logging.INFO or not isinstance(args, tuple) or len(args) < 3:
            return True
        if args[1] not in self._names:
            return True
        if "→" in str(record.msg):  # started
            return False
        return not ("←" in str(record.msg) and args[2] == "0")  # ended with nothing done


def install(cron_names: Iterable[str]) -> None:
    """Add the filter to arq's logger once per process."""
    logger = logging.getLogger(ARQ_LOGGER)
    if not any(isinstance(existing, QuietIdleCrons) for existing in logger.filters):
        logger.addFilter(QuietIdleCrons(cron_names))
