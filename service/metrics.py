"""Prometheus metrics of the service and worker (labelled by outcome, signal, site; never org)."""

from __future__ import annotations

from prometheus_client import Counter

OAUTH_FLOWS = Counter(
    "ddbridge_oauth_flows", "Onboarding callbacks and links by outcome", ["outcome"]
)
TOKEN_REFRESHES = Counter(
    "ddbridge_token_refreshes", "Access-token refresh attempts by result", ["result"]
)
