"""Send bodies in Datadog's own public formats, as strict models mirroring its schema.

These check types and enums exactly as Datadog documents them (no string-to-number coercion,
unknown fields refused except where Datadog allows any attribute: log items and OTLP). The
models validate; the items stored are the partner's own JSON, re-serialized unchanged.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

Strict = ConfigDict(extra="forbid", strict=True)
Open = ConfigDict(extra="allow", strict=True)

Tags = list[StrictStr]


class MetricPoint(BaseModel):
    model_config = Strict
    timestamp: StrictInt
    value: StrictFloat


class MetricResource(BaseModel):
    model_config = Strict
    name: StrictStr | None = None
    type: StrictStr | None = None


class MetricOrigin(BaseModel):
    model_config = Strict
    metric_type: Annotated[StrictInt, Field(le=1000)] | None = None
    product: Annotated[StrictInt, Field(le=1000)] | None = None
    service: Annotated[StrictInt, Field(le=1000)] | None = None


class MetricMetadata(BaseModel):
    model_config = Strict
    origin: MetricOrigin | None = None


class MetricSeries(BaseModel):
    """`type`: 0 unspecified, 1 count, 2 rate, 3 gauge."""

    model_config = Strict
    metric: StrictStr
    points: list[MetricPoint]
    type: Literal[0, 1, 2, 3] | None = None
    interval: StrictInt | None = None
    metadata: MetricMetadata | None = None
    resources: list[MetricResource] | None = None
    source_type_name: StrictStr | None = None
    tags: Tags | None = None
    unit: StrictStr | None = None


class MetricPayload(BaseModel):
    model_config = Strict
    series: list[MetricSeries]


class HTTPLogItem(BaseModel):
    """`message` is required; any other attribute is allowed, as Datadog allows."""

    model_config = Open
    message: StrictStr
    ddsource: StrictStr | None = None
    ddtags: StrictStr | None = None
    hostname: StrictStr | None = None
    service: StrictStr | None = None


class EventCreateRequest(BaseModel):
    model_config = Strict
    title: StrictStr
    text: Annotated[StrictStr, Field(max_length=4000)]
    aggregation_key: Annotated[StrictStr, Field(max_length=100)] | None = None
    alert_type: (
        Literal["error", "warning", "info", "success", "user_update", "recommendation", "snapshot"]
        | None
    ) = None
    date_happened: StrictInt | None = None
    device_name: StrictStr | None = None
    host: StrictStr | None = None
    priority: Literal["normal", "low"] | None = None
    related_event_id: StrictInt | None = None
    source_type_name: StrictStr | None = None
    tags: Tags | None = None


class ServiceCheck(BaseModel):
    """`status`: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."""

    model_config = Strict
    check: StrictStr
    host_name: StrictStr
    status: Literal[0, 1, 2, 3]
    tags: Tags
    timestamp: StrictInt | None = None
    message: StrictStr | None = None


class IncidentNotificationHandle(BaseModel):
    model_config = Strict
    display_name: StrictStr | None = None
    handle: StrictStr | None = None


class IncidentCreateAttributes(BaseModel):
    model_config = Strict
    title: StrictStr
    customer_impacted: StrictBool
    customer_impact_scope: StrictStr | None = None
    fields: dict[str, dict[str, Any]] | None = None
    incident_type_uuid: StrictStr | None = None
    initial_cells: list[dict[str, Any]] | None = None
    is_test: StrictBool | None = None
    notification_handles: list[IncidentNotificationHandle] | None = None


class IncidentCreateData(BaseModel):
    model_config = Strict
    type: Literal["incidents"]
    attributes: IncidentCreateAttributes
    relationships: dict[str, Any] | None = None


class IncidentCreateRequest(BaseModel):
    model_config = Strict
    data: IncidentCreateData


HexId = Annotated[StrictStr, Field(pattern=r"^[0-9a-fA-F]+$")]
UnixNano = StrictStr | StrictInt


class OtlpSpan(BaseModel):
    """An OTLP/JSON span: ids in hex, times in nanoseconds; unknown fields are ignored."""

    model_config = Open
    traceId: Annotated[HexId, Field(min_length=32, max_length=32)]  # noqa: N815 - OTLP names
    spanId: Annotated[HexId, Field(min_length=16, max_length=16)]  # noqa: N815
    name: StrictStr
    startTimeUnixNano: UnixNano  # noqa: N815
    endTimeUnixNano: UnixNano  # noqa: N815


class OtlpScopeSpans(BaseModel):
    model_config = Open
    spans: list[OtlpSpan]


class OtlpResourceSpans(BaseModel):
    model_config = Open
    scopeSpans: list[OtlpScopeSpans]  # noqa: N815


class ExportTraceServiceRequest(BaseModel):
    model_config = Open
    resourceSpans: list[OtlpResourceSpans]  # noqa: N815
