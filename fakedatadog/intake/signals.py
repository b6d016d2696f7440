"""The six signals' intake rules, and `receive`, which applies them to one request.

Order of checks, as Datadog's intake answers them: Content-Type (415), Content-Encoding
(415), size on the wire (413), decompression (400 corrupt, 413 too large), JSON (400), count
limits (413), then the body (400), unless bench mode skips the body checks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from fakedatadog.errors import ApiError
from fakedatadog.intake import otlp, validation
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
from fakedatadog.intake.store import Arrival, Signal
from fakedatadog.intake.validation import Accepted
from fakedatadog.state import EmulatorState, Org

JSON = "application/json"
PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True, slots=True)
class Rules:
    """How one signal's endpoint takes a body. Sizes are inclusive maxima in bytes."""

    encodings: Collection[str]
    max_wire: int | None
    max_decoded: int | None
    validate: Callable[[Any, float], Accepted]
    count: Callable[[Any], int]


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
    ),
    # The OTLP metrics and logs intake (`otlp.<domain>`): no documented size limit; the logs
    # intake's 5 MB uncompressed is assumed (see the README's list of guesses).
    "otlp_metrics": Rules(
        encodings={GZIP},
        max_wire=None,
        max_decoded=5_000_000,
        validate=otlp.validate_metrics,
        count=otlp.count_metrics,
    ),
    "otlp_logs": Rules(
        encodings={GZIP},
        max_wire=None,
        max_decoded=5_000_000,
        validate=otlp.validate_logs,
        count=otlp.count_logs,
    ),
}


@dataclass(frozen=True, slots=True)
class Submission:
    """One request's body and the headers that say how to read it."""

    host: str
    content_type: str | None
    content_encoding: str | None
    body: bytes


def receive(state: EmulatorState, signal: Signal, org: Org, submission: Submission) -> Any:
    """Check the submission as Datadog would and record it for `org`; the parsed document.

    In bench mode only the outer shape is read and nothing but counters is kept.
    """
    rules = RULES[signal]
    _check_media_type(submission.content_type)
    encoding = encoding_of(submission.content_encoding)
    wire = len(submission.body)
    if rules.max_wire is not None and wire > rules.max_wire:
        raise too_large(f"the request body ({wire} bytes)", rules.max_wire)
    raw = decode(submission.body, encoding, accepted=rules.encodings, max_size=rules.max_decoded)
    document = parse_json(raw)
    arrival = Arrival(time.time(), submission.host, encoding, wire)
    if state.settings.bench:
        state.intake.record(org.dd_oid, signal, arrival, items=None, count=rules.count(document))
        return document
    accepted = rules.validate(document, arrival.received_at)
    state.intake.record(
        org.dd_oid,
        signal,
        arrival,
        items=accepted.items,
        count=accepted.count,
        dropped=accepted.dropped,
    )
    return document


def _check_media_type(content_type: str | None) -> None:
    """JSON only: Datadog's JSON endpoints take `application/json` (parameters ignored). The
    logs intake's text/plain and logplex forms and OTLP protobuf are not emulated: 415."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type == JSON:
        return
    if media_type == PROTOBUF:
        raise ApiError(415, "Unsupported Content-Type application/x-protobuf: send OTLP as JSON")
    raise ApiError(415, f"Unsupported Content-Type {media_type or '(none)'!r}: use {JSON}")
