"""OTLP/HTTP bodies read with the official definitions, and answers written as the request was.

A request is `application/x-protobuf` (the encoding Datadog documents first) or
`application/json` (OTLP's JSON mapping). Either is decoded into the official message
(`opentelemetry-proto`) and then into one canonical form, the OTLP JSON mapping with defaults
left out, so that what the emulator records does not depend on how it was sent:
lowerCamelCase names, 64-bit integers as decimal strings, enums as integers, and trace and span
ids as lower-case hex (the OTLP JSON exception to proto3's base64 bytes).

Answers and errors use the request's encoding, as the OTLP/HTTP specification requires: a
serialized `Export*ServiceResponse`, or a `google.rpc.Status` for a failure.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi.responses import Response
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from fakedatadog.errors import ApiError, EmulatorError

JSON = "application/json"
PROTOBUF = "application/x-protobuf"
_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId"})


@dataclass(frozen=True, slots=True)
class Kind:
    """One OTLP export service: its request and response messages."""

    name: str
    request: type[Message]
    response: type[Message]


TRACES = Kind(
    "ExportTraceServiceRequest",
    trace_service_pb2.ExportTraceServiceRequest,
    trace_service_pb2.ExportTraceServiceResponse,
)
METRICS = Kind(
    "ExportMetricsServiceRequest",
    metrics_service_pb2.ExportMetricsServiceRequest,
    metrics_service_pb2.ExportMetricsServiceResponse,
)
LOGS = Kind(
    "ExportLogsServiceRequest",
    logs_service_pb2.ExportLogsServiceRequest,
    logs_service_pb2.ExportLogsServiceResponse,
)


def media_type_of(content_type: str | None) -> str:
    """The lower-cased media type of a `Content-Type` header, parameters dropped."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def from_protobuf(kind: Kind, raw: bytes) -> Message:
    """The message serialized in `raw`; 400 if it is not one."""
    try:
        return kind.request.FromString(raw)
    except DecodeError as exc:
        raise ApiError(400, f"Malformed payload: not a protobuf {kind.name}: {exc}") from exc


def from_json(kind: Kind, document: Any) -> Message:
    """The message an OTLP JSON document describes; 400 naming the field it cannot read."""
    try:
        converted = _map_ids(document, _hex_to_base64)
        message = kind.request()
        json_format.ParseDict(converted, message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError) as exc:
        raise ApiError(400, f"Malformed payload: not an OTLP JSON {kind.name}: {exc}") from exc
    return message


def canonical(message: Message) -> dict[str, Any]:
    """The message in the canonical OTLP JSON form the module docstring describes."""
    document = json_format.MessageToDict(message, use_integers_for_enums=True)
    mapped: dict[str, Any] = _map_ids(document, _base64_to_hex)
    return mapped


def answer(kind: Kind, media_type: str, partial: tuple[str, int, str] | None = None) -> Response:
    """200 with the Export*ServiceResponse, in the request's encoding. `partial` is
    (`rejected_*` field, how many, why) when part of the request was refused."""
    response = kind.response()
    if partial is not None:
        field, rejected, why = partial
        success = response.partial_success  # type: ignore[attr-defined]
        setattr(success, field, rejected)
        success.error_message = why
    return _encoded(response, media_type, 200)


class OtlpError(EmulatorError):
    """A failure on an OTLP host: a `google.rpc.Status` in the request's encoding (JSON when
    the request's own encoding is not one OTLP defines)."""

    def __init__(self, status: int, message: str, media_type: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.media_type = media_type

    def response(self) -> Response:
        status = status_pb2.Status(code=_GRPC_CODES.get(self.status, code_pb2.UNKNOWN))
        status.message = self.message
        return _encoded(status, self.media_type, self.status)


_GRPC_CODES: dict[int, int] = {
    HTTPStatus.BAD_REQUEST: code_pb2.INVALID_ARGUMENT,
    HTTPStatus.UNAUTHORIZED: code_pb2.UNAUTHENTICATED,
    HTTPStatus.FORBIDDEN: code_pb2.PERMISSION_DENIED,
    HTTPStatus.NOT_FOUND: code_pb2.NOT_FOUND,
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: code_pb2.INVALID_ARGUMENT,
    HTTPStatus.UNSUPPORTED_MEDIA_TYPE: code_pb2.INVALID_ARGUMENT,
    HTTPStatus.TOO_MANY_REQUESTS: code_pb2.RESOURCE_EXHAUSTED,
    HTTPStatus.SERVICE_UNAVAILABLE: code_pb2.UNAVAILABLE,
}


def _encoded(message: Message, media_type: str, status: int) -> Response:
    if media_type == PROTOBUF:
        return Response(message.SerializeToString(), status, media_type=PROTOBUF)
    body = json_format.MessageToJson(message, indent=None, use_integers_for_enums=True)
    return Response(body.encode(), status, media_type=JSON)


def _map_ids(value: Any, convert: Callable[[str], str]) -> Any:
    """`value` with every trace/span id string converted (they are the only object keys with
    those names in OTLP: attribute keys are values, never object keys)."""
    if isinstance(value, dict):
        return {
            key: convert(item)
            if key in _ID_FIELDS and isinstance(item, str)
            else _map_ids(item, convert)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_map_ids(item, convert) for item in value]
    return value


def _hex_to_base64(value: str) -> str:
    try:
        return base64.b64encode(bytes.fromhex(value)).decode()
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a hex-encoded id") from exc


def _base64_to_hex(value: str) -> str:
    return base64.b64decode(value).hex()
