"""Send bodies in Datadog's formats, as a partner backend would build them."""

from __future__ import annotations

import random
import secrets
import time
from typing import Any


def metrics(
    series: int = 1,
    points: int = 1,
    *,
    at: float | None = None,
    name: str = "partner.jobs",
    random_values: bool = False,
) -> dict[str, Any]:
    """`points` per series, a second apart back from `at`; random values barely compress."""
    now = int(at if at is not None else time.time())
    rng = random.Random(7)
    return {
        "series": [
            {
                "metric": f"{name}.{s}",
                "type": 3,
                "points": [
                    {
                        "timestamp": now - p % 3000,
                        "value": rng.random() if random_values else float(s * 1000 + p),
                    }
                    for p in range(points)
                ],
                "tags": ["env:test", f"series:{s}"],
                "resources": [{"type": "host", "name": "worker-1"}],
            }
            for s in range(series)
        ]
    }


def logs(count: int = 1, *, size: int = 0) -> list[dict[str, Any]]:
    padding = "x" * size
    return [
        {
            "message": f"line {i} {padding}",
            "ddsource": "partner",
            "ddtags": "env:test,team:core",
            "hostname": "worker-1",
            "service": "jobs",
            "customer_attribute": {"nested": i},
        }
        for i in range(count)
    ]


def event(title: str = "Deploy finished") -> dict[str, Any]:
    return {
        "title": title,
        "text": "Version 42 is live",
        "alert_type": "info",
        "date_happened": int(time.time()),
        "tags": ["env:test"],
        "source_type_name": "partner",
    }


def service_checks(count: int = 1) -> list[dict[str, Any]]:
    return [
        {
            "check": "partner.can_connect",
            "host_name": f"db-{i}",
            "status": i % 4,
            "tags": ["env:test"],
            "timestamp": int(time.time()),
            "message": "checked",
        }
        for i in range(count)
    ]


def incident(title: str = "Checkout is failing") -> dict[str, Any]:
    return {
        "data": {
            "type": "incidents",
            "attributes": {"title": title, "customer_impacted": False},
        }
    }


def traces(spans: int = 1) -> dict[str, Any]:
    now = time.time_ns()
    trace_id = secrets.token_hex(16)
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "jobs"}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "partner"},
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": secrets.token_hex(8),
                                "name": f"job-{i}",
                                "kind": 1,
                                "startTimeUnixNano": str(now - 1_000_000),
                                "endTimeUnixNano": str(now),
                            }
                            for i in range(spans)
                        ],
                    }
                ],
            }
        ]
    }
