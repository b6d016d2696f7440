"""Send bodies in Datadog's formats, the same for ddbridge and for the baselines.

Each body holds `items` of what Datadog counts (`DEFAULT_ITEMS` unless the run says):
metrics, a v2 series payload of series of `POINTS_PER_SERIES` points each (the last one
shorter if `items` is not a multiple), gauges stamped in the last few seconds; logs, an array
of `items` log lines with the attributes partners set.
"""

from __future__ import annotations

import gzip
import time
from typing import Any

import orjson
import zstandard

POINTS_PER_SERIES = 10
DEFAULT_ITEMS = {"metrics": 100 * POINTS_PER_SERIES, "logs": 500}
"""Items per send when the run does not say: 100 series of 10 points, 500 log lines."""


def metrics_document(items: int, now: float | None = None) -> dict[str, Any]:
    """`items` points in series of `POINTS_PER_SERIES` points, one second apart."""
    stamp = int(now if now is not None else time.time())
    sizes = [POINTS_PER_SERIES] * (items // POINTS_PER_SERIES)
    if items % POINTS_PER_SERIES:
        sizes.append(items % POINTS_PER_SERIES)
    return {
        "series": [
            {
                "metric": f"partner.bench.metric_{s % 20}",
                "type": 3,
                "points": [
                    {"timestamp": stamp - p, "value": float(s * 1000 + p) / 7}
                    for p in range(points)
                ],
                "tags": ["env:bench", f"series:{s}", "team:core"],
                "resources": [{"type": "host", "name": f"worker-{s % 10}"}],
            }
            for s, points in enumerate(sizes)
        ]
    }


def logs_document(items: int) -> list[dict[str, Any]]:
    """`items` log lines of about 200 bytes each."""
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
        for i in range(items)
    ]


def document(signal: str, items: int) -> Any:
    return metrics_document(items) if signal == "metrics" else logs_document(items)


def body(signal: str, items: int) -> bytes:
    """The JSON body of one send of `signal`, as a partner serializes it."""
    return orjson.dumps(document(signal, items))


def wire_body(signal: str, items: int) -> tuple[bytes, dict[str, str]]:
    """One request straight to the intake, compressed as ddbridge compresses it (series zstd1,
    logs gzip), with its headers."""
    raw = body(signal, items)
    if signal == "metrics":
        return zstandard.ZstdCompressor(level=1).compress(raw), {"Content-Encoding": "zstd1"}
    return gzip.compress(raw, compresslevel=1, mtime=0), {"Content-Encoding": "gzip"}
