"""msgspec mirrors of the busiest send bodies' models (metrics and logs), for accepting valid
bodies fast.

`service.intake.models` (pydantic) stays the definition: it names every problem of a refused
body with its pointer. These structs accept a subset of what it accepts (the same types,
bounds and unknown-field rules, and no coercion), checked in C about ten times faster; a body
they refuse is validated again by the models, which then say why (or accept it: msgspec
refuses a few things pydantic allows, such as `true` for the series type 1).
`tests/service/test_intake_fastpath.py` holds the two to that.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

Origin = Annotated[int, Meta(le=1000)]


class MetricPoint(Struct, forbid_unknown_fields=True):
    timestamp: int
    value: float


class MetricResource(Struct, forbid_unknown_fields=True):
    name: str | UnsetType = UNSET
    type: str | UnsetType = UNSET


class MetricOrigin(Struct, forbid_unknown_fields=True):
    metric_type: Origin | UnsetType = UNSET
    product: Origin | UnsetType = UNSET
    service: Origin | UnsetType = UNSET


class MetricMetadata(Struct, forbid_unknown_fields=True):
    origin: MetricOrigin | UnsetType = UNSET


class MetricSeries(Struct, forbid_unknown_fields=True):
    metric: str
    points: list[MetricPoint]
    type: Literal[0, 1, 2, 3] | UnsetType = UNSET
    interval: int | UnsetType = UNSET
    metadata: MetricMetadata | UnsetType = UNSET
    resources: list[MetricResource] | UnsetType = UNSET
    source_type_name: str | UnsetType = UNSET
    tags: list[str] | UnsetType = UNSET
    unit: str | UnsetType = UNSET


class MetricPayload(Struct, forbid_unknown_fields=True):
    series: list[MetricSeries]


class HTTPLogItem(Struct):
    """Unknown attributes are allowed (and not looked at), as Datadog allows them."""

    message: str
    ddsource: str | UnsetType = UNSET
    ddtags: str | UnsetType = UNSET
    hostname: str | UnsetType = UNSET
    service: str | UnsetType = UNSET


def accepts(model: Any, document: Any) -> bool:
    """Whether the parsed JSON `document` is a valid `model` (no coercion)."""
    try:
        msgspec.convert(document, model, strict=True)
    except msgspec.ValidationError:
        return False
    return True
