"""Check a request's query parameters the way the official client declares them.

The client's generated endpoint for each operation lists its parameters (`params_map`): the
wire name, whether it is required, its type (`int`, `bool`, `str`, an enum model, or a list of
them sent comma-separated) and bounds (`validation`). `checked_query` reads that declaration
and answers 400 `{"errors": ["<name>: <reason>"]}` for the first parameter that breaks it.
Parameters the operation does not declare are ignored, as Datadog ignores them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from datadog_api_client.api_client import ApiClient
from datadog_api_client.configuration import Configuration
from starlette.datastructures import QueryParams

from fakedatadog.errors import ApiError
from fakedatadog.intake.models import INT64_MAX, INT64_MIN, explain

_new_configuration: Callable[[], Any] = Configuration  # untyped in the client
_INTEGER = re.compile(r"-?[0-9]+")
_BOOLEANS = {"true": True, "false": False}


@cache
def declared_query(api: Any, operation: str) -> Mapping[str, Mapping[str, Any]]:
    """The query parameters of the client API class `api`'s `operation` (the client's snake_case name), by wire
    name. The declaration lives on the client's private `_<operation>_endpoint`."""
    endpoint = getattr(api(ApiClient(_new_configuration())), f"_{operation}_endpoint")
    return {
        spec["attribute"]: spec
        for spec in endpoint.params_map.values()
        if spec["location"] == "query"
    }


def checked_query(query: QueryParams, api: Any, operation: str) -> dict[str, Any]:
    """The declared parameters present in `query`, converted to their types; 400 for one
    that is missing while required or does not fit its declaration."""
    values: dict[str, Any] = {}
    for name, spec in declared_query(api, operation).items():
        raw = query.get(name)
        if raw is None:
            if spec.get("required"):
                raise ApiError(400, f"{name}: required query parameter is missing")
            continue
        [declared] = spec["openapi_types"]
        if isinstance(declared, list):
            values[name] = [_value(name, part, declared[0], {}) for part in raw.split(",")]
        else:
            values[name] = _value(name, raw, declared, spec.get("validation", {}))
    return values


def _value(name: str, raw: str, declared: Any, bounds: Mapping[str, Any]) -> Any:
    if declared is int:
        if not _INTEGER.fullmatch(raw) or not INT64_MIN <= int(raw) <= INT64_MAX:
            raise ApiError(400, f"{name}: expected a 64-bit integer, got {raw!r}")
        value = int(raw)
        if value > bounds.get("inclusive_maximum", value) or value < bounds.get(
            "inclusive_minimum", value
        ):
            raise ApiError(400, f"{name}: {value} is out of bounds {dict(bounds)}")
        return value
    if declared is bool:
        if raw not in _BOOLEANS:
            raise ApiError(400, f"{name}: expected true or false, got {raw!r}")
        return _BOOLEANS[raw]
    problem = explain(raw, (declared,), name)
    if problem is not None:
        raise ApiError(400, problem)
    return raw
