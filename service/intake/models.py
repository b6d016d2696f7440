"""Send bodies in Datadog's own public formats, as strict schemas mirroring Datadog's.

These check types and enums exactly as Datadog documents them (no string-to-number coercion,
unknown fields refused except where Datadog allows any attribute: log items and OTLP). They
are TypedDicts rather than models: validating into plain dicts is about three times faster on
the hot path (measured: 0.29 ms against 0.94 ms for 100 series of 10 points), and the items
stored are the partner's own JSON, re-serialized unchanged.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, with_config
from typing_extensions import TypedDict

strict = with_config(ConfigDict(extra="forbid", strict=True))
open_ended = with_config(ConfigDict(extra="allow", strict=True))

Tags = list[StrictStr]


@strict
class MetricPoint(TypedDict):
    timestamp: StrictInt
    value: StrictFloat


@strict
class MetricResource(TypedDict, total=False):
    name: StrictStr
    type: StrictStr


@strict
class MetricOrigin(TypedDict, total=False):
    metric_type: Annotated[StrictInt, Field(le=1000)]
    product: Annotated[StrictInt, Field(le=1000)]
    service: Annotated[StrictInt, Field(le=1000)]


@strict
class MetricMetadata(TypedDict, total=False):
    origin: MetricOrigin


@strict
class MetricSeries(TypedDict):
    """`type`: 0 unspecified, 1 count, 2 rate, 3 gauge."""

    metric: StrictStr
    points: list[MetricPoint]
    type: NotRequired[Literal[0, 1, 2, 3]]
    interval: NotRequired[StrictInt]
    metadata: NotRequired[MetricMetadata]
    resources: NotRequired[list[MetricResource]]
    source_type_name: NotRequired[StrictStr]
    tags: NotRequired[Tags]
    unit: NotRequired[StrictStr]


@strict
class MetricPayload(TypedDict):
    series: list[MetricSeries]


@open_ended
class HTTPLogItem(TypedDict):
    """`message` is required; any other attribute is allowed, as Datadog allows."""

    message: StrictStr
    ddsource: NotRequired[StrictStr]
    ddtags: NotRequired[StrictStr]
    hostname: NotRequired[StrictStr]
    service: NotRequired[StrictStr]


AlertType = Literal[
    "error", "warning", "info", "success", "user_update", "recommendation", "snapshot"
]


@strict
class EventCreateRequest(TypedDict):
    title: StrictStr
    text: Annotated[StrictStr, Field(max_length=4000)]
    aggregation_key: NotRequired[Annotated[StrictStr, Field(max_length=100)]]
    alert_type: NotRequired[AlertType]
    date_happened: NotRequired[StrictInt]
    device_name: NotRequired[StrictStr]
    host: NotRequired[StrictStr]
    priority: NotRequired[Literal["normal", "low"] | None]
    related_event_id: NotRequired[StrictInt]
    source_type_name: NotRequired[StrictStr]
    tags: NotRequired[Tags]


@strict
class ServiceCheck(TypedDict):
    """`status`: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."""

    check: StrictStr
    host_name: StrictStr
    status: Literal[0, 1, 2, 3]
    tags: Tags
    timestamp: NotRequired[StrictInt]
    message: NotRequired[StrictStr]


@strict
class IncidentNotificationHandle(TypedDict, total=False):
    display_name: StrictStr
    handle: StrictStr


@strict
class IncidentCreateAttributes(TypedDict):
    title: StrictStr
    customer_impacted: StrictBool
    customer_impact_scope: NotRequired[StrictStr]
    fields: NotRequired[dict[str, dict[str, Any]]]
    incident_type_uuid: NotRequired[StrictStr]
    initial_cells: NotRequired[list[dict[str, Any]]]
    is_test: NotRequired[StrictBool]
    notification_handles: NotRequired[list[IncidentNotificationHandle]]


@strict
class IncidentCreateData(TypedDict):
    type: Literal["incidents"]
    attributes: IncidentCreateAttributes
    relationships: NotRequired[dict[str, Any]]


@strict
class IncidentCreateRequest(TypedDict):
    data: IncidentCreateData


# The length is in the pattern, not in min/max_length: a schema generator (the fuzz test's)
# then writes valid ids at once instead of filtering hex strings by length.
TraceId = Annotated[StrictStr, Field(pattern=r"^[0-9a-fA-F]{32}$")]
SpanId = Annotated[StrictStr, Field(pattern=r"^[0-9a-fA-F]{16}$")]
UnixNano = StrictStr | StrictInt


@open_ended
class OtlpSpan(TypedDict):
    """An OTLP/JSON span: ids in hex (32 and 16 digits), times in nanoseconds; unknown
    fields are ignored."""

    traceId: TraceId
    spanId: SpanId
    name: StrictStr
    startTimeUnixNano: UnixNano
    endTimeUnixNano: UnixNano


@open_ended
class OtlpScopeSpans(TypedDict):
    spans: list[OtlpSpan]


@open_ended
class OtlpResourceSpans(TypedDict):
    scopeSpans: list[OtlpScopeSpans]


@open_ended
class ExportTraceServiceRequest(TypedDict):
    resourceSpans: list[OtlpResourceSpans]
