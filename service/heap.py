"""The garbage collector's settings for an API process.

A send's parse allocates thousands of containers (a dict per log line or series, and what
they hold) that reference counting frees at the end of the request, none of them in cycles.
With Python's default threshold (700 allocations), each 500-line send triggered one or two
collections, and every tenth of those scanned the older generation too, which holds what
start-up built (FastAPI's routes, pydantic's schemas, SQLAlchemy's mappers). That cost about a
quarter of a 500-line log send's parse (bench/RESULTS.md, issue 11).

Not for the worker: it allocates few containers per byte it holds (a drain's rows and request
bodies are large `bytes`), so a count of allocations is a poor clock for its cycles; with this
threshold, cycles holding request bodies piled up to 499 MiB during a 10 M point backlog's
drain (233 MiB with Python's default).
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
"""Allocations (less deallocations) of containers between two young collections: about ten
500-item sends, so a collection scans what those left at most, and cycles still die soon."""


def settle() -> None:
    """Call once start-up is done: what it built is moved out of the collector's sight for
    good (`gc.freeze`), and young collections run every `YOUNG_THRESHOLD` allocations."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
