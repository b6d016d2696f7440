"""Turn a send body into validated items, or every problem with its JSON pointer.

Each signal's body is parsed once (orjson), checked for depth (`MAX_DEPTH`), validated
against the models in `service.intake.models`, checked against Datadog's time windows, and
cut into items: the units one Datadog request batches (series, log lines, events, checks, an
incident, OTLP resource spans). Items keep the partner's own JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from pydantic import Field, TypeAdapter, ValidationError

from service.errors import InvalidInput, Problem
from service.intake import fastpath, models
from service.signals import SPECS, STAMP_FIELDS, Signal, item_timestamp

FUTURE_LIMIT_SECONDS = 600  # metric points: at most 10 minutes ahead
LATEST_TIMESTAMP = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
"""The last second a timestamp may name: later ones are no time ddbridge (or Python's
datetime) can hold, whatever Datadog would make of them."""
MAX_DEPTH = 64
"""The deepest nesting of arrays and objects a send body may have, the body itself being
level 1. Datadog asks for log attributes nested less than 10 levels and OpenTelemetry caps
attribute values at 64; JSON deeper than 254 levels is more than orjson writes back out."""
_ORJSON_DEPTH = 254
"""The deepest document `orjson.dumps` writes (it refuses anything deeper)."""


@dataclass(frozen=True, slots=True)
class Items:
    """Validated items in order (the partner's parsed JSON), and the oldest timestamp
    (seconds) each one carries."""

    documents: list[Any]
    oldest: list[float | None]
    units: int
    """What the answer reports as accepted: points for metrics, spans for traces, else items."""


def parse(signal: Signal, body: bytes, now: float) -> Items:
    """Validate a whole body; raise `InvalidInput` listing every problem found."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput([Problem("", f"malformed JSON: {exc}")]) from exc
    _check_depth(document)
    return _PARSERS[signal](document, now)


def _check_depth(document: Any) -> None:
    """Refuse a document nested deeper than `MAX_DEPTH`, naming the first container too deep.

    The check is orjson's own (in C, about as fast as serializing the body once): the
    document wrapped in `_ORJSON_DEPTH - MAX_DEPTH` arrays is writable only if it is at most
    `MAX_DEPTH` deep. Only a refused document is walked, to find the pointer.
    """
    wrapped = document
    for _ in range(_ORJSON_DEPTH - MAX_DEPTH):
        wrapped = [wrapped]
    try:
        orjson.dumps(wrapped)
    except orjson.JSONEncodeError:
        where = _too_deep(document)
        if where is None:
            raise
        raise InvalidInput(
            [Problem(pointer(where), f"nested deeper than {MAX_DEPTH} levels")]
        ) from None


def _too_deep(document: Any) -> list[int | str] | None:
    """The path to the first array or object below level `MAX_DEPTH` (walked without
    recursion: orjson parses up to 1024 levels, more than Python's call stack holds)."""
    todo: list[tuple[Any, list[int | str]]] = [(document, [])]
    while todo:
        value, path = todo.pop()
        if not isinstance(value, dict | list):
            continue
        if len(path) >= MAX_DEPTH:
            return path
        children = value.items() if isinstance(value, dict) else enumerate(value)
        todo.extend((child, [*path, key]) for key, child in reversed(list(children)))
    return None


# Timestamps: where each signal keeps them, and Datadog's windows.

Stamp = tuple[str, float]  # (pointer, seconds since the epoch)


def _check_window(signal: Signal, stamp: Stamp, now: float, problems: list[Problem]) -> None:
    window = SPECS[signal].window_seconds
    assert window is not None
    pointer, seconds = stamp
    if seconds < now - window:
        age = (
            f"{window // 3600} hours"
            if window >= 7200
            else ("1 hour" if window == 3600 else f"{window // 60} minutes")
        )
        problems.append(Problem(pointer, f"older than {age}: Datadog's intake no longer takes it"))
    elif signal is Signal.METRICS and seconds > now + FUTURE_LIMIT_SECONDS:
        problems.append(Problem(pointer, "more than 10 minutes in the future"))
    elif seconds > LATEST_TIMESTAMP:
        problems.append(Problem(pointer, "after 9999-12-31T23:59:59Z: not a time"))


# Validation.


def _validate(adapter: TypeAdapter[Any], document: Any, fast: Any = None) -> None:
    """Raise `InvalidInput` with every problem unless `document` is valid; a body `fast` (a
    `service.intake.fastpath` mirror) accepts is valid without asking the models."""
    if fast is not None and fastpath.accepts(fast, document):
        return
    try:
        adapter.validate_python(document)
    except ValidationError as exc:
        raise InvalidInput(
            [Problem(pointer(error["loc"]), error["msg"]) for error in exc.errors()]
        ) from exc


def pointer(loc: Sequence[int | str]) -> str:
    """RFC 6901 JSON pointer of a validation location."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in loc)


def _raise_if(problems: list[Problem]) -> None:
    if problems:
        raise InvalidInput(problems)


# One parser per signal.

_METRICS = TypeAdapter(models.MetricPayload)


def _metrics(document: Any, now: float) -> Items:
    _validate(_METRICS, document, fastpath.MetricPayload)
    problems: list[Problem] = []
    oldest: list[float | None] = []
    points = 0
    window = SPECS[Signal.METRICS].window_seconds
    assert window is not None
    earliest, latest = now - window, min(now + FUTURE_LIMIT_SECONDS, LATEST_TIMESTAMP)
    for i, series in enumerate(document["series"]):
        stamps = [point["timestamp"] for point in series["points"]]
        if not stamps:
            problems.append(Problem(f"/series/{i}/points", "at least one point is required"))
        first = min(stamps, default=None)
        if first is not None and (first < earliest or max(stamps) > latest):
            for j, seconds in enumerate(stamps):  # some point is out: name each one that is
                stamp = (f"/series/{i}/points/{j}/timestamp", seconds)
                _check_window(Signal.METRICS, stamp, now, problems)
        oldest.append(first)
        points += len(stamps)
    if not document["series"]:
        problems.append(Problem("/series", "at least one series is required"))
    _raise_if(problems)
    return Items(document["series"], oldest, points)


def _array_parser(
    signal: Signal,
    adapter: TypeAdapter[Any],
    what: str,
    *,
    single_allowed: bool = False,
    fast: Any = None,
) -> Callable[[Any, float], Items]:
    def parse_array(document: Any, now: float) -> Items:
        if single_allowed and isinstance(document, dict):
            try:
                return parse_array([document], now)
            except InvalidInput as exc:  # point into the object, not a made-up array
                raise InvalidInput(
                    [Problem(p.pointer.removeprefix("/0"), p.reason) for p in exc.problems]
                ) from exc
        if not isinstance(document, list) or not document:
            raise InvalidInput([Problem("", f"must be a non-empty array of {what}")])
        _validate(adapter, document, fast)
        problems: list[Problem] = []
        oldest: list[float | None] = []
        for i, item in enumerate(document):
            seconds = item_timestamp(signal, item)
            if seconds is not None:
                _check_window(signal, (f"/{i}/{STAMP_FIELDS[signal]}", seconds), now, problems)
            oldest.append(seconds)
        _raise_if(problems)
        return Items(document, oldest, len(document))

    return parse_array


_INCIDENT = TypeAdapter(models.IncidentCreateRequest)


def _incident(document: Any, _now: float) -> Items:
    _validate(_INCIDENT, document)
    attributes = document["data"]["attributes"]
    if attributes["customer_impacted"] and not attributes.get("customer_impact_scope"):
        raise InvalidInput(
            [
                Problem(
                    "/data/attributes/customer_impact_scope",
                    "required when customer_impacted is true",
                )
            ]
        )
    return Items([document], [None], 1)


_TRACES = TypeAdapter(models.ExportTraceServiceRequest)


def _traces(document: Any, _now: float) -> Items:
    _validate(_TRACES, document)
    resource_spans = document["resourceSpans"]
    if not resource_spans:
        raise InvalidInput([Problem("/resourceSpans", "at least one resource is required")])
    spans = sum(len(scope["spans"]) for rs in resource_spans for scope in rs["scopeSpans"])
    return Items(resource_spans, [None] * len(resource_spans), spans)


BODIES: dict[Signal, Any] = {
    Signal.METRICS: models.MetricPayload,
    Signal.LOGS: Annotated[list[models.HTTPLogItem], Field(min_length=1)],
    Signal.EVENTS: models.EventCreateRequest
    | Annotated[list[models.EventCreateRequest], Field(min_length=1)],
    Signal.SERVICE_CHECKS: Annotated[list[models.ServiceCheck], Field(min_length=1)],
    Signal.INCIDENTS: models.IncidentCreateRequest,
    Signal.TRACES: models.ExportTraceServiceRequest,
}
"""The body each signal's send takes, as a type (for the API's documentation)."""

_PARSERS: dict[Signal, Callable[[Any, float], Items]] = {
    Signal.METRICS: _metrics,
    Signal.LOGS: _array_parser(
        Signal.LOGS,
        TypeAdapter(list[models.HTTPLogItem]),
        "log items",
        fast=list[fastpath.HTTPLogItem],
    ),
    Signal.EVENTS: _array_parser(
        Signal.EVENTS,
        TypeAdapter(list[models.EventCreateRequest]),
        "events",
        single_allowed=True,
    ),
    Signal.SERVICE_CHECKS: _array_parser(
        Signal.SERVICE_CHECKS,
        TypeAdapter(list[models.ServiceCheck]),
        "service checks",
    ),
    Signal.INCIDENTS: _incident,
    Signal.TRACES: _traces,
}
