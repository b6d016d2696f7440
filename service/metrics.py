"""Prometheus metrics of the service and worker (labelled by outcome, signal, site; never org)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

OAUTH_FLOWS = Counter(
    "ddbridge_oauth_flows", "Onboarding callbacks and links by outcome", ["outcome"]
)
TOKEN_REFRESHES = Counter(
    "ddbridge_token_refreshes", "Access-token refresh attempts by result", ["result"]
)

CREDENTIAL_FAILURES = Counter(
    "ddbridge_credential_failures",
    "Credential problems that are the operator's to fix (invalid_client, undecryptable secret)",
    ["kind", "site"],
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
BACKLOG = Gauge(
    "ddbridge_backlog_items", "Items waiting in the outbox (read at scrape)", ["signal", "site"]
)
OLDEST_PENDING = Gauge(
    "ddbridge_oldest_pending_seconds",
    "Age of the oldest waiting item (read at scrape)",
    ["signal", "site"],
)
PASSTHROUGH_CALLS = Counter(
    "ddbridge_passthrough_calls",
    "Pass-through calls by Datadog operation (`v1.ListMonitors`; `unknown` when none matched) "
    "and the status answered (Datadog's, or ddbridge's refusal)",
    ["operation", "status"],
)
