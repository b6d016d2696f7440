"""The intake rules of each signal, and `receive`, which applies them to one request.

Order of checks, as Datadog's intake answers them: Content-Type (415), Content-Encoding
(415), size on the wire (413), decompression (400 corrupt, 413 too large), JSON or protobuf
(400), count limits (413), then the body (400), unless bench mode skips the body checks.

The OTLP intakes take `application/x-protobuf` and `application/json`, both decoded with the
official definitions (`otlp_wire`); every other intake takes JSON only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from fakedatadog.errors import ApiError
from fakedatadog.intake import otlp, otlp_wire, validation
from fakedatadog.intake.decoding import (
    AGENT_ZSTD,
    DEFLATE,
    GZIP,
    ZSTD,
    decode,
    encoding_of,
    parse_json,
    too_large,
)
from fakedatadog.intake.otlp_wire import JSON, PROTOBUF, media_type_of
from fakedatadog.intake.store import Arrival, Signal
from fakedatadog.intake.validation import Accepted
from fakedatadog.state import EmulatorState, Org


@dataclass(frozen=True, slots=True)
class Rules:
    """How one signal's endpoint takes a body. Sizes are inclusive maxima in bytes."""

    encodings: Collection[str]
    max_wire: int | None
    max_decoded: int | None
    validate: Callable[[Any, float], Accepted]
    count: Callable[[Any], int]
    otlp: otlp_wire.Kind | None = None
    """The OTLP export service, for the OTLP intakes."""
    count_decoded: Callable[[Any], int] | None = None
    """For the OTLP intakes: `count` of a decoded protobuf request (bench mode)."""


RULES: dict[Signal, Rules] = {
    # SubmitMetrics: "maximum payload size is 500 kilobytes (512000 bytes). Compressed payloads
    # must have a decompressed size of less than 5 megabytes (5242880 bytes)".
    "metrics": Rules(
        encodings={GZIP, DEFLATE, ZSTD},
        max_wire=512_000,
        max_decoded=5_242_879,
        validate=validation.validate_metrics,
        count=validation.count_metrics,
    ),
    # SubmitLog: "Maximum content size per payload (uncompressed): 5MB"; gzip and deflate.
    "logs": Rules(
        encodings={GZIP, DEFLATE},
        max_wire=None,
        max_decoded=5_000_000,
        validate=validation.validate_logs,
        count=validation.count_logs,
    ),
    # CreateEvent, CreateIncident: JSON bodies with no Content-Encoding parameter and no
    # documented size limit.
    "events": Rules(
        encodings=(),
        max_wire=None,
        max_decoded=None,
        validate=validation.validate_event,
        count=validation.count_one,
    ),
    # SubmitServiceCheck documents no Content-Encoding, but the Datadog Agent sends its check
    # runs compressed like its metrics: deflate (zlib), gzip or zstd, as its compressor is set.
    # The decompressed cap is the metrics endpoint's (see the README's list of guesses).
    "service_checks": Rules(
        encodings={DEFLATE, GZIP, AGENT_ZSTD},
        max_wire=None,
        max_decoded=5_242_879,
        validate=validation.validate_service_checks,
        count=validation.count_service_checks,
    ),
    "incidents": Rules(
        encodings=(),
        max_wire=None,
        max_decoded=None,
        validate=validation.validate_incident,
        count=validation.count_one,
    ),
    # The OTLP trace intake: at most 3.2 MB; OTLP/HTTP defines gzip as its one compression.
    "traces": Rules(
        encodings={GZIP},
        max_wire=3_200_000,
        max_decoded=3_200_000,
        validate=otlp.validate_traces,
        count=otlp.count_traces,
        otlp=otlp_wire.TRACES,
        count_decoded=otlp.count_decoded_traces,
    ),
    # The OTLP metrics and logs intake (`otlp.<domain>`): no documented size limit; the logs
    # intake's 5 MB uncompressed is assumed (see the README's list of guesses).
    "otlp_metrics": Rules(
        encodings={GZIP},
        max_wire=None,
        max_decoded=5_000_000,
        validate=otlp.validate_metrics,
        count=otlp.count_metrics,
        otlp=otlp_wire.METRICS,
        count_decoded=otlp.count_decoded_metrics,
    ),
    "otlp_logs": Rules(
        encodings={GZIP},
        max_wire=None,
        max_decoded=5_000_000,
        validate=otlp.validate_logs,
        count=otlp.count_logs,
        otlp=otlp_wire.LOGS,
        count_decoded=otlp.count_decoded_logs,
    ),
}


@dataclass(frozen=True, slots=True)
class Submission:
    """One request's body and the headers that say how to read it."""

    host: str
    content_type: str | None
    content_encoding: str | None
    body: bytes


@dataclass(frozen=True, slots=True)
class Received:
    """What `receive` accepted: the parsed body (the canonical form for OTLP), and what of it
    was refused while the rest was taken (see `Accepted`)."""

    document: Any
    rejected: int = 0
    rejection: str = ""


def receive(state: EmulatorState, signal: Signal, org: Org, submission: Submission) -> Received:
    """Check the submission as Datadog would and record it for `org`.

    In bench mode only the outer shape is read and nothing but counters is kept.
    """
    rules = RULES[signal]
    media_type = media_type_of(submission.content_type)
    _check_media_type(media_type, otlp=rules.otlp is not None)
    encoding = encoding_of(submission.content_encoding)
    wire = len(submission.body)
    if rules.max_wire is not None and wire > rules.max_wire:
        raise too_large(f"the request body ({wire} bytes)", rules.max_wire)
    raw = decode(submission.body, encoding, accepted=rules.encodings, max_size=rules.max_decoded)
    arrival = Arrival(time.time(), submission.host, encoding, wire)
    if state.settings.bench:
        document, count = _bench_read(rules, raw, media_type)
        state.intake.record(org.dd_oid, signal, arrival, items=None, count=count)
        return Received(document)
    if rules.otlp is None:
        document = parse_json(raw)
    else:
        document = _otlp_document(rules, rules.otlp, raw, media_type, arrival.received_at)
    accepted = rules.validate(document, arrival.received_at)
    state.intake.record(
        org.dd_oid,
        signal,
        arrival,
        items=accepted.items,
        count=accepted.count,
        dropped=accepted.dropped,
    )
    return Received(document, accepted.rejected, accepted.rejection)


def _bench_read(rules: Rules, raw: bytes, media_type: str) -> tuple[Any, int]:
    """The body (None for protobuf) and its units, reading only its outer shape."""
    if rules.count_decoded is not None and rules.otlp is not None and media_type == PROTOBUF:
        return None, rules.count_decoded(otlp_wire.from_protobuf(rules.otlp, raw))
    document = parse_json(raw)
    return document, rules.count(document)


def _otlp_document(
    rules: Rules, kind: otlp_wire.Kind, raw: bytes, media_type: str, now: float
) -> dict[str, Any]:
    """The request in its canonical form, decoded with the official definitions.

    A JSON body is checked as sent first, so that a refusal names the field as sent (its JSON
    Pointer); then it must also be readable as the official message.
    """
    if media_type == PROTOBUF:
        return otlp_wire.canonical(otlp_wire.from_protobuf(kind, raw))
    document = parse_json(raw)
    rules.validate(document, now)
    return otlp_wire.canonical(otlp_wire.from_json(kind, document))


def _check_media_type(media_type: str, *, otlp: bool) -> None:
    """Datadog's JSON endpoints take `application/json` (parameters ignored); the OTLP ones
    also `application/x-protobuf`. The logs intake's text/plain and logplex forms are not
    emulated: 415."""
    if media_type == JSON or (otlp and media_type == PROTOBUF):
        return
    allowed = f"{PROTOBUF} or {JSON}" if otlp else JSON
    raise ApiError(415, f"Unsupported Content-Type {media_type or '(none)'!r}: use {allowed}")
