"""Check a JSON document against an official `datadog-api-client` model, and say where it fails.

The client's models are generated from Datadog's published OpenAPI definitions and carry all
of their request rules: property types (`openapi_types`, with `none_type` where the definition
says `nullable`), required properties (the `__init__` arguments without a default), enums
(`allowed_values`), `validations` (lengths, item counts, bounds, patterns), nullable models
(`_nullable`) and `oneOf` unions (`_composed_schemas`). `check` walks the document against that
metadata and names the first problem with its JSON Pointer.

The client's own deserializer is not the judge: it lets `null` through for properties that are
not nullable and skips integer bounds. Rules the metadata cannot express, and how they are read:
- `null` is refused unless the property, or the model it names, is nullable;
- every integer is at most 64 bits (`format: int64` is the widest integer the definitions use);
  an integer is never a JSON `true`/`false`, and a number is an integer or a float;
- a `oneOf` value must match exactly one of its forms, as OpenAPI (and the client) require;
- properties a model does not declare are accepted: none of these definitions sets
  `additionalProperties: false`.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from datadog_api_client.model_utils import (
    ModelComposed,
    ModelNormal,
    ModelSimple,
    OpenApiModel,
    none_type,
)

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class InvalidDocument(ValueError):
    """The document does not fit the model; the message is `<JSON Pointer>: <reason>`."""


def check(document: Any, model: type[OpenApiModel]) -> None:
    """Raise `InvalidDocument` at the first place `document` breaks the rules of `model`."""
    problem = explain(document, (model,), "")
    if problem is not None:
        raise InvalidDocument(problem)


def explain(value: Any, types: tuple[Any, ...], pointer: str) -> str | None:
    """The first problem in `value` against the declared `types` (one `openapi_types` tuple:
    any of them fits), or None."""
    if value is None:
        if any(_nullable(declared) for declared in types):
            return None
        return f"{_at(pointer)}: expected {_describe(types)}, got null"
    problems = [_explain_one(value, t, pointer) for t in types if t is not none_type]
    if any(problem is None for problem in problems):
        return None
    if len(problems) == 1:
        return problems[0]
    return f"{_at(pointer)}: expected {_describe(types) or 'null'}, got {_kind(value)}"


def _explain_one(value: Any, declared: Any, pointer: str) -> str | None:
    if isinstance(declared, list):
        return _explain_list(value, tuple(declared), pointer)
    if isinstance(declared, dict):
        return _explain_map(value, next(iter(declared.values())), pointer)
    if isinstance(declared, type) and issubclass(declared, ModelSimple):
        return _explain_simple(value, declared, pointer)
    if isinstance(declared, type) and issubclass(declared, ModelNormal):
        return _explain_object(value, declared, pointer)
    if isinstance(declared, type) and issubclass(declared, ModelComposed):
        return _explain_one_of(value, declared, pointer)
    return _explain_primitive(value, declared, pointer)


def _explain_list(value: Any, item_types: tuple[Any, ...], pointer: str) -> str | None:
    if not isinstance(value, list):
        return f"{_at(pointer)}: expected an array, got {_kind(value)}"
    for index, item in enumerate(value):
        if (problem := explain(item, item_types, f"{pointer}/{index}")) is not None:
            return problem
    return None


def _explain_map(value: Any, value_types: tuple[Any, ...], pointer: str) -> str | None:
    if not isinstance(value, dict):
        return f"{_at(pointer)}: expected an object, got {_kind(value)}"
    for key, item in value.items():
        if (problem := explain(item, value_types, f"{pointer}/{_escape(key)}")) is not None:
            return problem
    return None


def _explain_simple(value: Any, model: type[ModelSimple], pointer: str) -> str | None:
    """An enum (`allowed_values`) or a named array such as HTTPLog or ServiceChecks."""
    allowed = model.allowed_values
    if not allowed:
        inner = explain(value, model.openapi_types["value"], pointer)
        return inner or _explain_validations(value, model.validations.get("value", {}), pointer)
    if not any(type(value) is type(option) and value == option for option in allowed):
        shown = ", ".join(repr(v) for v in sorted(allowed, key=str))
        return f"{_at(pointer)}: {value!r} is not one of {shown}"
    return None


def _explain_object(value: Any, model: type[ModelNormal], pointer: str) -> str | None:
    if not isinstance(value, dict):
        return f"{_at(pointer)}: expected an object, got {_kind(value)}"
    shape = _shape(model)
    for name in shape.required:
        if name not in value:
            return f"{_at(pointer)}: missing required field {name!r}"
    for key, item in value.items():
        declared = shape.properties.get(key)
        if declared is None:
            continue
        types, rules = declared
        where = f"{pointer}/{_escape(key)}"
        problem = explain(item, types, where)
        if problem is None and item is not None and rules:
            problem = _explain_validations(item, rules, where)
        if problem is not None:
            return problem
    return None


def _explain_one_of(value: Any, model: type[ModelComposed], pointer: str) -> str | None:
    forms = model._composed_schemas.get("oneOf", [])
    assert set(model._composed_schemas) <= {"oneOf"}, f"{model.__name__}: only oneOf is read"
    problems = {_name(form): explain(value, (form,), pointer) for form in forms}
    matching = [name for name, problem in problems.items() if problem is None]
    if len(matching) == 1:
        return None
    if matching:
        return f"{_at(pointer)}: matches more than one of its forms ({', '.join(matching)})"
    if len(forms) == 1:
        return next(iter(problems.values()))
    reasons = "; ".join(f"{name}: {problem}" for name, problem in problems.items())
    return f"{_at(pointer)}: matches none of its forms ({reasons})"


def _explain_primitive(value: Any, declared: Any, pointer: str) -> str | None:
    expected = _TYPE_NAMES.get(declared, getattr(declared, "__name__", str(declared)))
    if declared is bool:
        fits = isinstance(value, bool)
    elif declared is int:
        fits = isinstance(value, int) and not isinstance(value, bool)
        if fits and not INT64_MIN <= value <= INT64_MAX:
            return f"{_at(pointer)}: {value} is outside the 64-bit integer range"
    elif declared is float:
        fits = isinstance(value, int | float) and not isinstance(value, bool)
    elif declared in (str, datetime, date, UUID):
        fits = isinstance(value, str) and _parses_as(value, declared)
    elif declared in (dict, list):
        fits = isinstance(value, declared)
    else:
        raise AssertionError(f"no rule for declared type {declared!r}")
    if fits:
        return None
    return f"{_at(pointer)}: expected {expected}, got {_kind(value)}"


def _explain_validations(value: Any, rules: Mapping[str, Any], pointer: str) -> str | None:
    """The client's `validations` for one property: lengths, item counts, bounds, pattern."""
    at = _at(pointer)
    checks: list[tuple[str, Callable[[Any], bool], str]] = [
        ("max_length", lambda limit: len(value) <= limit, "longer than {} characters"),
        ("min_length", lambda limit: len(value) >= limit, "shorter than {} characters"),
        ("max_items", lambda limit: len(value) <= limit, "more than {} items"),
        ("min_items", lambda limit: len(value) >= limit, "fewer than {} items"),
        ("inclusive_maximum", lambda limit: value <= limit, "greater than {}"),
        ("inclusive_minimum", lambda limit: value >= limit, "less than {}"),
        ("exclusive_maximum", lambda limit: value < limit, "not less than {}"),
        ("exclusive_minimum", lambda limit: value > limit, "not greater than {}"),
    ]
    for name, holds, reason in checks:
        if name in rules and not holds(rules[name]):
            sized = f" ({len(value)})" if "length" in name or "items" in name else ""
            return f"{at}: {reason.format(rules[name])}{sized}"
    pattern = rules.get("regex")
    if pattern and not re.search(pattern["pattern"], value, flags=pattern.get("flags", 0)):
        return f"{at}: does not match the pattern {pattern['pattern']}"
    return None


def _parses_as(value: str, declared: Any) -> bool:
    try:
        if declared is datetime:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        elif declared is date:
            date.fromisoformat(value)
        elif declared is UUID:
            UUID(value)
    except ValueError:
        return False
    return True


def _nullable(declared: Any) -> bool:
    if declared is none_type:
        return True
    if isinstance(declared, type) and issubclass(declared, OpenApiModel):
        if declared._nullable:
            return True
        if issubclass(declared, ModelComposed):
            return any(_nullable(form) for form in declared._composed_schemas.get("oneOf", []))
    return False


def _describe(types: tuple[Any, ...]) -> str:
    return " or ".join(_describe_one(t) for t in types if t is not none_type)


def _describe_one(declared: Any) -> str:
    if isinstance(declared, list):
        return "an array"
    if isinstance(declared, dict):
        return "an object"
    if isinstance(declared, type) and issubclass(declared, ModelSimple):
        if declared.allowed_values:
            return "one of " + ", ".join(repr(v) for v in sorted(declared.allowed_values, key=str))
        return _describe(declared.openapi_types["value"])
    if isinstance(declared, type) and issubclass(declared, ModelNormal | ModelComposed):
        return "an object"
    return _TYPE_NAMES.get(declared, getattr(declared, "__name__", str(declared)))


_TYPE_NAMES: dict[Any, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    dict: "an object",
    list: "an array",
    datetime: "an ISO 8601 date-time string",
    date: "an ISO 8601 date string",
    UUID: "a UUID string",
}

_KINDS = {
    type(None): "null",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
}


def _kind(value: Any) -> str:
    """The JSON type of `value`, as an error message names it."""
    return _KINDS.get(type(value), type(value).__name__)


def _name(model: Any) -> str:
    return getattr(model, "__name__", str(model))


def _escape(key: str) -> str:
    """A JSON Pointer reference token (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


@dataclass(frozen=True, slots=True)
class _Shape:
    """What a ModelNormal requires of a JSON object: its required JSON names, and per JSON name
    the declared types and `validations`."""

    required: tuple[str, ...]
    properties: dict[str, tuple[tuple[Any, ...], Mapping[str, Any]]]


_SHAPES: dict[type[ModelNormal], _Shape] = {}


def _shape(model: type[ModelNormal]) -> _Shape:
    """The model's shape, read once (a walk visits the same models thousands of times)."""
    shape = _SHAPES.get(model)
    if shape is None:
        shape = _SHAPES[model] = _read_shape(model)
    return shape


def _read_shape(model: type[ModelNormal]) -> _Shape:
    """Required properties are the model's own `__init__`'s arguments without a default."""
    parameters = list(inspect.signature(vars(model)["__init__"]).parameters.values())[1:]
    required = tuple(
        model.attribute_map[p.name]
        for p in parameters
        if p.default is inspect.Parameter.empty and p.kind is not inspect.Parameter.VAR_KEYWORD
    )
    properties = {
        json: (model.openapi_types[py], model.validations.get(py, {}))
        for py, json in model.attribute_map.items()
    }
    return _Shape(required, properties)


def _at(pointer: str) -> str:
    """How a message names a location: its JSON Pointer, or `(root)` for the whole document."""
    return pointer or "(root)"
