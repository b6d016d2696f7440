"""The official `datadog-api-client`, typed for the tests: read answers and build requests the
way Datadog's own generated client does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from datadog_api_client.api_client import ApiClient
from datadog_api_client.configuration import Configuration
from datadog_api_client.model_utils import OpenApiModel, data_to_dict, validate_and_convert_types

# The client is untyped; these names give its functions the signatures used here.
_convert: Callable[..., Any] = validate_and_convert_types
_new_configuration: Callable[..., Any] = Configuration
_new_api_client: Callable[..., Any] = ApiClient
_data_to_dict: Callable[[Any], Any] = data_to_dict


def parse(document: Any, model: type[OpenApiModel]) -> Any:
    """`document` deserialized as `model`, as the client reads an answer; fails the test if the
    client could not read all of it."""
    parsed = _convert(document, (model,), ["body"], True, True, _new_configuration())
    assert not getattr(parsed, "_unparsed", False), f"{model.__name__} left unparsed: {document}"
    return parsed


def body_of(model: OpenApiModel) -> Any:
    """The JSON body the client sends for a request model: its own `data_to_dict`, as
    `ApiClient.call_api` applies it before encoding the body."""
    return _data_to_dict(model)


def api_client(host: str, *, api_key: str | None = None, access_token: str | None = None) -> Any:
    """A client sending every operation to `host` (the emulator's prefix for a Datadog host),
    with the API key or the OAuth access token as its only credential, and no retries."""
    configuration = _new_configuration(
        host=host,
        api_key={"apiKeyAuth": api_key} if api_key is not None else {},
        access_token=access_token,
    )
    configuration.enable_retry = False
    return _new_api_client(configuration)
