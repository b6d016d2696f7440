"""Send bodies in Datadog's formats, the same for ddbridge and for the baselines.

Metrics: a v2 series payload of `series` series with `points` points each (gauges stamped in
the last few seconds). Logs: an array of `lines` log items with the attributes partners set.
Metric: one series of one point, the smallest send (for the fixed cost of a send).
"""

from __future__ import annotations

import gzip
import time
from dataclasses import dataclass
from typing import Any

import orjson
import zstandard

SERIES_PER_REQUEST = 100
POINTS_PER_SERIES = 10
LINES_PER_REQUEST = 500


@dataclass(frozen=True, slots=True)
class Shape:
    """How big each send is: `items` is what Datadog counts (points or log lines)."""

    signal: str
    items: int


METRICS = Shape("metrics", SERIES_PER_REQUEST * POINTS_PER_SERIES)
LOGS = Shape("logs", LINES_PER_REQUEST)
METRIC = Shape("metric", 1)
SHAPES = {shape.signal: shape for shape in (METRICS, LOGS, METRIC)}


def metrics_document(now: float | None = None) -> dict[str, Any]:
    """`SERIES_PER_REQUEST` series of `POINTS_PER_SERIES` points, one second apart."""
    stamp = int(now if now is not None else time.time())
    return {
        "series": [
            {
                "metric": f"partner.bench.metric_{s % 20}",
                "type": 3,
                "points": [
                    {"timestamp": stamp - p, "value": float(s * 1000 + p) / 7}
                    for p in range(POINTS_PER_SERIES)
                ],
                "tags": ["env:bench", f"series:{s}", "team:core"],
                "resources": [{"type": "host", "name": f"worker-{s % 10}"}],
            }
            for s in range(SERIES_PER_REQUEST)
        ]
    }


def logs_document() -> list[dict[str, Any]]:
    """`LINES_PER_REQUEST` log lines of about 200 bytes each."""
    return [
        {
            "message": f"job {i} finished in {i % 97} ms for customer {i % 13}: ok",
            "ddsource": "partner",
            "ddtags": "env:bench,team:core",
            "hostname": f"worker-{i % 10}",
            "service": "jobs",
            "status": "info",
            "job": {"id": i, "queue": "default"},
        }
        for i in range(LINES_PER_REQUEST)
    ]


def document(signal: str) -> Any:
    if signal == "metric":
        return {"series": [{"metric": "partner.bench.one", "type": 3, "points": [{"timestamp": int(time.time()), "value": 1.0}]}]}  # fmt: skip
    return metrics_document() if signal == "metrics" else logs_document()


def body(signal: str) -> bytes:
    """The JSON body of one send of `signal`, as a partner serializes it."""
    return orjson.dumps(document(signal))


def wire_body(signal: str) -> tuple[bytes, dict[str, str]]:
    """One request straight to the intake, compressed as ddbridge compresses it (series zstd1,
    logs gzip), with its headers."""
    raw = body(signal)
    if signal in ("metrics", "metric"):
        return zstandard.ZstdCompressor(level=1).compress(raw), {"Content-Encoding": "zstd1"}
    return gzip.compress(raw, compresslevel=1, mtime=0), {"Content-Encoding": "gzip"}
