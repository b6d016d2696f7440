"""Prometheus metrics of the service and worker (labelled by outcome, signal, site; never org).

Counters and histograms live in each process. With `PROMETHEUS_MULTIPROC_DIR` set (several API
processes behind one port, `ddbridge api --workers N`), each process writes them to files
there and `/metrics` sums every process's files (`process_registry`). The outbox figures are
no process's state: they are read from PostgreSQL at each scrape (`Backlog`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

OAUTH_FLOWS = Counter(
    "ddbridge_oauth_flows", "Onboarding callbacks and links by outcome", ["outcome"]
)
TOKEN_REFRESHES = Counter(
    "ddbridge_token_refreshes", "Access-token refresh attempts by result", ["result"]
)

CRON_TICKS = Counter("ddbridge_cron_ticks", "Runs of the worker's reconciling crons", ["cron"])

CREDENTIAL_FAILURES = Counter(
    "ddbridge_credential_failures",
    "Credential problems that are the operator's to fix (invalid_client, "
    "client_secret_unreadable, undecryptable)",
    ["kind", "site"],
)
PASSTHROUGH_CALLS = Counter(
    "ddbridge_passthrough_calls",
    "Pass-through calls by Datadog operation (`v1.ListMonitors`; `unknown` when none matched) "
    "and the status answered (Datadog's, or ddbridge's refusal)",
    ["operation", "status"],
)
ACCEPTED = Counter("ddbridge_accepted_items", "Items committed to the outbox", ["signal", "site"])
DELIVERED = Counter("ddbridge_delivered_items", "Items Datadog accepted", ["signal", "site"])
RETRIED = Counter(
    "ddbridge_retried_requests",
    "Requests that will be tried again, by cause",
    ["signal", "site", "cause"],
)
DROPPED = Counter(
    "ddbridge_dropped_items",
    "Items not delivered, by reason (dead letters and expired)",
    ["signal", "site", "reason"],
)
DELIVERY_LATENCY = Histogram(
    "ddbridge_accept_to_deliver_seconds",
    "From commit in the outbox to Datadog's 2xx",
    ["signal", "site"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600),
)


@contextmanager
def shared_by_processes() -> Iterator[Path]:
    """A clean `PROMETHEUS_MULTIPROC_DIR` for the API processes about to start (exported to
    them): the directory already named there, emptied of a previous run's files, else a
    temporary one, removed afterwards. Must be entered before the processes import
    prometheus_client."""
    named = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
    if named:
        directory = Path(named)
        directory.mkdir(parents=True, exist_ok=True)
        for leftover in directory.glob("*.db"):
            leftover.unlink()
        yield directory
        return
    directory = Path(tempfile.mkdtemp(prefix="ddbridge-metrics-"))
    os.environ[MULTIPROCESS_DIR_VARIABLE] = str(directory)
    try:
        yield directory
    finally:
        del os.environ[MULTIPROCESS_DIR_VARIABLE]
        shutil.rmtree(directory, ignore_errors=True)


def process_registry() -> CollectorRegistry:
    """This process's metrics, or every API process's when they share a multiprocess dir."""
    if not os.environ.get(MULTIPROCESS_DIR_VARIABLE):
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


@dataclass(frozen=True, slots=True)
class Pending:
    """What waits in the outbox for one (signal, site)."""

    signal: str
    site: str
    items: int
    oldest_accepted_at: datetime


class Backlog(Collector):
    """The outbox backlog as read at one scrape."""

    def __init__(self, pending: Iterable[Pending], now: datetime) -> None:
        self._pending = list(pending)
        self._now = now

    def collect(self) -> Iterator[Metric]:
        labels = ["signal", "site"]
        items = GaugeMetricFamily(
            "ddbridge_backlog_items", "Items waiting in the outbox (read at scrape)", labels=labels
        )
        oldest = GaugeMetricFamily(
            "ddbridge_oldest_pending_seconds",
            "Age of the oldest waiting item (read at scrape)",
            labels=labels,
        )
        for pending in self._pending:
            items.add_metric([pending.signal, pending.site], pending.items)
            age = (self._now - pending.oldest_accepted_at).total_seconds()
            oldest.add_metric([pending.signal, pending.site], age)
        yield items
        yield oldest
