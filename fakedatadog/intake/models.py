"""Check a JSON document against an official `datadog-api-client` model, and say where it fails.

The document goes through the client's own deserialization (`validate_and_convert_types`, as
`ApiClient.deserialize` does). That path raises for some problems but not others: a bad enum
value or a bad list item only sets `_unparsed` on the enclosing model. Whenever it raises or
the root is `_unparsed`, `explain` walks the document against the same model metadata
(`openapi_types`, `attribute_map`, required `__init__` arguments, `allowed_values`,
`validations`) to name the first problem with its JSON Pointer.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from datadog_api_client.configuration import Configuration
from datadog_api_client.exceptions import OpenApiException
from datadog_api_client.model_utils import (
    ModelComposed,
    ModelNormal,
    ModelSimple,
    OpenApiModel,
    validate_and_convert_types,
)

# The client's functions are untyped; these names give them the signatures used here.
_convert: Callable[..., Any] = validate_and_convert_types
_new_configuration: Callable[[], Any] = Configuration


class InvalidDocument(ValueError):
    """The document does not fit the model; the message is `<JSON Pointer>: <reason>`."""


def check(document: Any, model: type[OpenApiModel]) -> None:
    """Raise `InvalidDocument` unless the client deserializes `document` as `model` cleanly."""
    try:
        parsed = _convert(document, (model,), ["body"], True, True, configuration=_configuration())
    except (OpenApiException, TypeError) as exc:
        raise InvalidDocument(explain(document, (model,), "") or f"(root): {exc}") from exc
    if getattr(parsed, "_unparsed", False):
        raise InvalidDocument(explain(document, (model,), "") or "(root): unparsable document")


def explain(value: Any, types: tuple[Any, ...], pointer: str) -> str | None:
    """The first problem in `value` against the declared `types` (one model-type tuple)."""
    declared = types[0]
    if isinstance(declared, list):
        return _explain_list(value, tuple(declared), pointer)
    if isinstance(declared, dict):
        return _explain_map(value, next(iter(declared.values())), pointer)
    if isinstance(declared, type) and issubclass(declared, ModelSimple):
        return _explain_simple(value, declared, pointer)
    if isinstance(declared, type) and issubclass(declared, ModelNormal):
        return _explain_object(value, declared, pointer)
    if isinstance(declared, type) and issubclass(declared, ModelComposed):
        return None  # oneOf unions: the client's own verdict stands
    return _explain_primitive(value, types, pointer)


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
    allowed = model.allowed_values
    if not allowed:  # a named array type such as HTTPLog or ServiceChecks
        return explain(value, model.openapi_types["value"], pointer)
    if isinstance(value, bool) or value not in allowed:
        shown = ", ".join(repr(v) for v in sorted(allowed, key=str))
        return f"{_at(pointer)}: {value!r} is not one of {shown}"
    return None


def _explain_object(value: Any, model: type[ModelNormal], pointer: str) -> str | None:
    if not isinstance(value, dict):
        return f"{_at(pointer)}: expected an object, got {_kind(value)}"
    python_names = {json: py for py, json in model.attribute_map.items()}
    for name in _required(model):
        if model.attribute_map[name] not in value:
            return f"{_at(pointer)}: missing required field {model.attribute_map[name]!r}"
    for key, item in value.items():
        known = python_names.get(key)
        if known is None or item is None:
            continue
        where = f"{pointer}/{_escape(key)}"
        if (problem := explain(item, model.openapi_types[known], where)) is not None:
            return problem
        max_length = model.validations.get(known, {}).get("max_length")
        if max_length is not None and len(item) > max_length:
            return f"{where}: longer than {max_length} characters ({len(item)})"
    return None


def _explain_primitive(value: Any, types: tuple[Any, ...], pointer: str) -> str | None:
    try:
        _convert(value, types, [pointer], True, True, _configuration())
    except (OpenApiException, TypeError):
        expected = " or ".join(_TYPE_NAMES.get(t, getattr(t, "__name__", str(t))) for t in types)
        return f"{_at(pointer)}: expected {expected}, got {_kind(value)}"
    return None


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}


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


def _escape(key: str) -> str:
    """A JSON Pointer reference token (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


def _required(model: type[ModelNormal]) -> tuple[str, ...]:
    """The model's required properties: its own `__init__`'s arguments without a default."""
    parameters = list(inspect.signature(vars(model)["__init__"]).parameters.values())[1:]
    return tuple(
        p.name
        for p in parameters
        if p.default is inspect.Parameter.empty and p.kind is not inspect.Parameter.VAR_KEYWORD
    )


@functools.cache
def _configuration() -> Any:
    """The client configuration deserialization runs with (created on first use)."""
    return _new_configuration()


def _at(pointer: str) -> str:
    """How a message names a location: its JSON Pointer, or `(root)` for the whole document."""
    return pointer or "(root)"
