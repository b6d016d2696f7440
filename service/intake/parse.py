"""Turn a send body into validated items, or every problem with its JSON pointer.

Each signal's body is parsed once (orjson), validated against the models in
`service.intake.models`, checked against Datadog's time windows, and cut into items: the
units one Datadog request batches (series, log lines, events, checks, an incident, OTLP
resource spans). Items keep the partner's own JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import orjson
from pydantic import Field, TypeAdapter, ValidationError

from service.intake import models
from service.signals import SPECS, Signal

FUTURE_LIMIT_SECONDS = 600  # metric points: at most 10 minutes ahead


@dataclass(frozen=True, slots=True)
class Problem:
    pointer: str
    reason: str


class InvalidBodyError(ValueError):
    """The body cannot be accepted; `problems` lists every reason with its JSON pointer."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = list(problems)


@dataclass(frozen=True, slots=True)
class Items:
    """Validated items in order (the partner's parsed JSON), and the oldest timestamp
    (seconds) each one carries."""

    documents: list[Any]
    oldest: list[float | None]
    units: int
    """What the answer reports as accepted: points for metrics, spans for traces, else items."""


def parse(signal: Signal, body: bytes, now: float) -> Items:
    """Validate a whole body; raise `InvalidBodyError` listing every problem found."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidBodyError([Problem("", f"malformed JSON: {exc}")]) from exc
    return _PARSERS[signal](document, now)


# Timestamps: where each signal keeps them, and Datadog's windows.

Stamp = tuple[str, float]  # (pointer, seconds since the epoch)

STAMP_FIELDS = {
    Signal.LOGS: "timestamp",
    Signal.EVENTS: "date_happened",
    Signal.SERVICE_CHECKS: "timestamp",
}


def item_timestamp(signal: Signal, item: dict[str, Any]) -> float | None:
    """An item's own time in seconds, where Datadog reads one (None: stamped on arrival).

    Logs' reserved `timestamp` is epoch milliseconds or ISO 8601; events and service checks
    carry epoch seconds.
    """
    field = STAMP_FIELDS.get(signal)
    value = item.get(field) if field else None
    if isinstance(value, bool) or value is None:
        return None
    if signal is Signal.LOGS:
        if isinstance(value, int):
            return value / 1000
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value).timestamp()
            except ValueError:
                return None
        return None
    return float(value) if isinstance(value, int | float) else None


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


# Validation.


def _validate(adapter: TypeAdapter[Any], document: Any) -> None:
    try:
        adapter.validate_python(document)
    except ValidationError as exc:
        raise InvalidBodyError(
            [Problem(pointer(error["loc"]), error["msg"]) for error in exc.errors()]
        ) from exc


def pointer(loc: Sequence[int | str]) -> str:
    """RFC 6901 JSON pointer of a validation location."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in loc)


def _raise_if(problems: list[Problem]) -> None:
    if problems:
        raise InvalidBodyError(problems)


# One parser per signal.

_METRICS = TypeAdapter(models.MetricPayload)


def _metrics(document: Any, now: float) -> Items:
    _validate(_METRICS, document)
    problems: list[Problem] = []
    oldest: list[float | None] = []
    points = 0
    for i, series in enumerate(document["series"]):
        stamps = [point["timestamp"] for point in series["points"]]
        if not stamps:
            problems.append(Problem(f"/series/{i}/points", "at least one point is required"))
        for j, seconds in enumerate(stamps):
            stamp = (f"/series/{i}/points/{j}/timestamp", seconds)
            _check_window(Signal.METRICS, stamp, now, problems)
        oldest.append(min(stamps, default=None))
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
) -> Callable[[Any, float], Items]:
    def parse_array(document: Any, now: float) -> Items:
        if single_allowed and isinstance(document, dict):
            try:
                return parse_array([document], now)
            except InvalidBodyError as exc:  # point into the object, not a made-up array
                raise InvalidBodyError(
                    [Problem(p.pointer.removeprefix("/0"), p.reason) for p in exc.problems]
                ) from exc
        if not isinstance(document, list) or not document:
            raise InvalidBodyError([Problem("", f"must be a non-empty array of {what}")])
        _validate(adapter, document)
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
        raise InvalidBodyError(
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
        raise InvalidBodyError([Problem("/resourceSpans", "at least one resource is required")])
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
    Signal.LOGS: _array_parser(Signal.LOGS, TypeAdapter(list[models.HTTPLogItem]), "log items"),
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
