"""Building Datadog requests from outbox rows: coalescing, compressing, splitting, expiring.

Pure functions over bytes. A row's `items` are serialized items joined by the signal's
separator (a comma; nothing for OTLP protobuf, see `service.otlp`), so a request body is the
signal's envelope around rows joined by it; items are parsed only to split a row or to drop
stale items, both rare.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import zstandard

from service import otlp
from service.signals import Signal, SignalSpec, item_timestamp

_ZSTD = zstandard.ZstdCompressor(level=1)


class RowLike(Protocol):
    @property
    def items(self) -> bytes: ...

    @property
    def item_count(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Body:
    raw_bytes: int
    wire: bytes
    headers: dict[str, str]


def encode(spec: SignalSpec, rows: Sequence[RowLike]) -> Body:
    """The request body for `rows`, compressed as the signal's intake accepts."""
    raw = spec.prefix + spec.separator.join(row.items for row in rows) + spec.suffix
    headers = {"Content-Type": spec.content_type}
    if spec.encoding == "zstd1":
        wire = _ZSTD.compress(raw)
    elif spec.encoding == "gzip":
        wire = gzip.compress(raw, compresslevel=1, mtime=0)
    elif spec.encoding == "deflate":
        wire = zlib.compress(raw, 1)
    else:
        wire = raw
    if spec.encoding is not None:
        headers["Content-Encoding"] = spec.encoding
    return Body(len(raw), wire, headers)


def take(spec: SignalSpec, rows: Sequence[RowLike]) -> int:
    """How many leading rows fit one request by item count and raw size (at least one)."""
    room = spec.max_raw_bytes - len(spec.prefix) - len(spec.suffix)
    joint = len(spec.separator)
    count = size = 0
    for taken, row in enumerate(rows):
        if taken and (
            count + row.item_count > spec.max_items or size + len(row.items) + joint > room
        ):
            return taken
        count += row.item_count
        size += len(row.items) + joint
    return len(rows)


def split_items(spec: SignalSpec, items: bytes) -> tuple[bytes, bytes, int, int]:
    """Halve a row's items: (first, second, first count, second count). Needs >= 2 items."""
    kind = otlp.KINDS.get(spec.signal)
    if kind is not None:
        first, second = otlp.halve(kind, otlp.from_protobuf(kind, items))
        return (
            first.SerializeToString(),
            second.SerializeToString(),
            kind.count(first),
            kind.count(second),
        )
    parsed = orjson.loads(b"[" + items + b"]")
    half = len(parsed) // 2
    first, second = parsed[:half], parsed[half:]
    return _join(first), _join(second), len(first), len(second)


def _join(items: Sequence[Any]) -> bytes:
    return b",".join(orjson.dumps(item) for item in items)


@dataclass(frozen=True, slots=True)
class Freshness:
    """A row's items split at a cutoff: what may still be sent, and what is too old."""

    fresh: bytes
    fresh_count: int
    stale: bytes
    stale_count: int


def split_stale(signal: Signal, items: bytes, cutoff: float) -> Freshness:
    """Separate items older than `cutoff` (seconds); for metrics, stale points leave a series."""
    fresh: list[Any] = []
    stale: list[Any] = []
    for item in orjson.loads(b"[" + items + b"]"):
        if signal is Signal.METRICS:
            old = [p for p in item["points"] if p["timestamp"] < cutoff]
            new = [p for p in item["points"] if p["timestamp"] >= cutoff]
            if old:
                stale.append({**item, "points": old})
            if new:
                fresh.append({**item, "points": new})
        elif (stamp := item_timestamp(signal, item)) is not None and stamp < cutoff:
            stale.append(item)
        else:
            fresh.append(item)
    return Freshness(_join(fresh), len(fresh), _join(stale), len(stale))
