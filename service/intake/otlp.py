"""Accepting an OTLP/HTTP export: read the body, keep what Datadog takes, cut it into rows.

A body is `application/x-protobuf` or `application/json` (OTLP's JSON encoding), gzip- or
deflate-compressed or not, and must decode as its signal's official `Export*ServiceRequest`
(`opentelemetry-proto`), else the whole send is refused (400). Leaves Datadog would refuse are
left out and reported as OTLP's partial success, naming the first reasons; the rest is
accepted:

- spans: a 16-byte trace id and an 8-byte span id, neither all zero; a parent span id empty or
  8 bytes; a name; start and end times, the end not before the start; a kind from 0 to 5;
- data points: of a named metric whose temporality is delta (Datadog's OTLP metrics intake
  takes delta only; gauges and summaries carry no temporality);
- log records: a severity number from 0 to 24.

What is stored is the request re-serialized as protobuf, or the body itself when it was
protobuf and nothing was left out, cut into rows of at most one Datadog request each
(`service.otlp.fit`).
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from service import otlp
from service.errors import ServiceError
from service.intake.accept import Chunk, Prepared, accept
from service.otlp import Kind, MalformedRequest
from service.resources import Resources
from service.signals import SPECS, Signal

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MEDIA_TYPES = (PROTOBUF, JSON)
MAX_REASONS = 5
"""How many refusal reasons the partial success names (the count covers them all)."""


class UnsupportedMediaType(ServiceError):
    status_code = 415
    code = "unsupported_media_type"


class MalformedExport(ServiceError):
    status_code = 400
    code = "malformed_export"


class DecodedTooLarge(ServiceError):
    status_code = 413
    code = "body_too_large"


@dataclass(frozen=True, slots=True)
class Export:
    """An export request as it arrived."""

    body: bytes
    media_type: str
    content_encoding: str | None


def media_type(content_type: str | None) -> str:
    """The lower-cased media type of a `Content-Type`, parameters dropped."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_media_type(value: str) -> None:
    if value not in MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type {value or '(none)'!r} is not an OTLP/HTTP encoding: send "
            f"{PROTOBUF} or {JSON}; nothing was accepted",
            accepted=list(MEDIA_TYPES),
        )


async def accept_export(
    res: Resources,
    connection_id: uuid.UUID,
    signal: Signal,
    export: Export,
    idempotency_key: str | None,
) -> dict[str, Any]:
    """Commit an export to the outbox; the answer `{"accepted", "batch_id", "rejected",
    "rejection"}` (`rejected` leaves were left out for `rejection`). Raises what `accept`
    raises, `UnsupportedMediaType` (415), `MalformedExport` (400) or `DecodedTooLarge` (413)."""
    check_media_type(export.media_type)
    limit = res.settings.max_body_bytes
    return await accept(
        res,
        connection_id,
        signal,
        export.body,
        idempotency_key,
        prepare=lambda: prepare(otlp.KINDS[signal], SPECS[signal].max_raw_bytes, export, limit),
    )


def prepare(kind: Kind, room: int, export: Export, max_decoded: int) -> Prepared:
    """Decode, check and cut an export into rows of at most `room` bytes each."""
    raw = _decompressed(export.body, export.content_encoding, max_decoded)
    try:
        if export.media_type == PROTOBUF:
            request = otlp.from_protobuf(kind, raw)
        else:
            request = otlp.from_json(kind, raw)
    except MalformedRequest as exc:
        raise MalformedExport(f"the body is {exc}; nothing was accepted") from exc
    refusals = _CHECKS[kind.name](request)
    if refusals:
        request = _without(kind, request, {where for where, _ in refusals})
    pieces = otlp.fit(kind, request, room)
    if len(pieces) == 1 and not refusals and export.media_type == PROTOBUF:
        serialized = [raw]
    else:
        serialized = [piece.SerializeToString() for piece in pieces]
    counted = [(body, kind.count(piece)) for body, piece in zip(serialized, pieces, strict=True)]
    chunks = [Chunk(body, count, None) for body, count in counted if count]
    reasons = list(dict.fromkeys(reason for _, reason in refusals))
    extra: dict[str, Any] = {"rejected": len(refusals), "rejection": ""}
    if refusals:
        named = "; ".join(reasons[:MAX_REASONS])
        more = f" (and {len(reasons) - MAX_REASONS} more)" if len(reasons) > MAX_REASONS else ""
        extra["rejection"] = f"refused {len(refusals)} {kind.leaf}(s): {named}{more}"
    return Prepared(chunks, sum(chunk.count for chunk in chunks), extra)


def _decompressed(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body inflated as `Content-Encoding` says (gzip, of one or more members, deflate or
    none), refusing (413) past `limit` bytes without inflating further."""
    coding = (encoding or "identity").strip().lower()
    if coding == "identity":
        return body
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}.get(coding)
    if wbits is None:
        raise UnsupportedMediaType(
            f"Content-Encoding {coding!r} is not taken: send gzip, deflate or none; "
            "nothing was accepted"
        )
    raw = bytearray()
    rest = body
    while rest:
        inflater = zlib.decompressobj(wbits)
        try:
            raw += inflater.decompress(rest, limit + 1 - len(raw))
        except zlib.error as exc:
            raise MalformedExport(
                f"the body is not a valid {coding} stream; nothing was accepted"
            ) from exc
        if len(raw) > limit:
            raise DecodedTooLarge(
                f"the body inflates past the limit of {limit} bytes; nothing was accepted",
                limit=limit,
            )
        if not inflater.eof:
            raise MalformedExport(f"the body is a truncated {coding} stream; nothing was accepted")
        rest = inflater.unused_data
    return bytes(raw)


# What Datadog refuses, per leaf: (the leaf's JSON pointer, reason) pairs.

Refusals = list[tuple[str, str]]


def _traces(request: Message) -> Refusals:
    refused: Refusals = []
    for where, span, _ in otlp.TRACES.leaves(request):
        reason = _span_problem(span)
        if reason is not None:
            refused.append((where, f"{where}: {reason}"))
    return refused


_SPAN_RULES: tuple[tuple[Callable[[Any], bool], str], ...] = (
    (lambda s: len(s.trace_id) == 16 and any(s.trace_id), "traceId must be 16 bytes, not all zero"),
    (lambda s: len(s.span_id) == 8 and any(s.span_id), "spanId must be 8 bytes, not all zero"),
    (lambda s: len(s.parent_span_id) in (0, 8), "parentSpanId must be empty or 8 bytes"),
    (lambda s: bool(s.name), "name is required"),
    (
        lambda s: bool(s.start_time_unix_nano and s.end_time_unix_nano),
        "startTimeUnixNano and endTimeUnixNano are required",
    ),
    (
        lambda s: s.end_time_unix_nano >= s.start_time_unix_nano,
        "endTimeUnixNano is before startTimeUnixNano",
    ),
    (lambda s: 0 <= s.kind <= 5, "kind must be a SpanKind (0 to 5)"),
)


def _span_problem(span: Any) -> str | None:
    return next((reason for holds, reason in _SPAN_RULES if not holds(span)), None)


_DELTA = 1  # AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
_TEMPORALITY_NAMES = {0: "unspecified", 1: "delta", 2: "cumulative"}


def _metrics(request: Message) -> Refusals:
    refused: Refusals = []
    for where, _, (_, _, metric) in otlp.METRICS.leaves(request):
        metric_at = where.rsplit("/dataPoints/", 1)[0]
        data = getattr(metric, metric.WhichOneof("data"))
        temporality = getattr(data, "aggregation_temporality", _DELTA)
        if not metric.name:
            refused.append((where, f"{metric_at}/name: a metric needs a name"))
        elif temporality != _DELTA:
            named = _TEMPORALITY_NAMES.get(temporality, str(temporality))
            refused.append(
                (
                    where,
                    f"metric {metric.name!r} has {named} temporality; Datadog's OTLP intake "
                    "takes delta metrics only (set the exporter's temporality preference "
                    "to delta)",
                )
            )
    return refused


def _logs(request: Message) -> Refusals:
    return [
        (
            where,
            f"{where}/severityNumber: {record.severity_number} is not a SeverityNumber (0 to 24)",
        )
        for where, record, _ in otlp.LOGS.leaves(request)
        if not 0 <= record.severity_number <= 24
    ]


_CHECKS: dict[str, Callable[[Message], Refusals]] = {
    otlp.TRACES.name: _traces,
    otlp.METRICS.name: _metrics,
    otlp.LOGS.name: _logs,
}


def _without(kind: Kind, request: Message, refused: set[str]) -> Message:
    """A copy of `request` without the leaves at the `refused` pointers, and without the
    metrics, scopes and resources left empty."""
    kept = kind.request()
    kept.CopyFrom(request)
    _prune(kept, kind.path, kind.pointer, "", refused)
    return kept


def _prune(
    message: Any, path: tuple[otlp.Entries, ...], names: tuple[str, ...], at: str, refused: set[str]
) -> bool:
    """Drop the refused leaves under `message` (last index first, so that the pointers of
    those before stay right); whether anything is left."""
    entries_of, *deeper = path
    name, *deeper_names = names
    entries = entries_of(message)
    for index in reversed(range(len(entries))):
        where = f"{at}/{name}/{index}"
        if deeper:
            empty = not _prune(entries[index], tuple(deeper), tuple(deeper_names), where, refused)
        else:
            empty = where in refused
        if empty:
            del entries[index]
    return len(entries) > 0
