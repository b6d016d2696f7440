"""Read OAuth parameters from a request body, form-encoded or JSON as its Content-Type says."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from starlette.requests import Request

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


def media_type_of(content_type: str | None) -> str:
    """The media type of a Content-Type header, lower-cased, without parameters."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_params(content_type: str | None, body: bytes) -> dict[str, str]:
    """The body's string parameters; an unreadable body, or one of another type, gives none.

    Form bodies keep the last value of a repeated name; JSON bodies must be an object, and
    non-string members are left out (so a check for the parameter reports it missing).
    """
    media_type = media_type_of(content_type)
    text = body.decode("utf-8", errors="replace")
    if media_type == FORM:
        return dict(parse_qsl(text, keep_blank_values=True))
    if media_type == JSON:
        try:
            document = json.loads(text)
        except ValueError:
            return {}
        if isinstance(document, dict):
            return {k: v for k, v in document.items() if isinstance(v, str)}
    return {}


async def request_params(request: Request) -> dict[str, str]:
    """`parse_params` applied to a request's Content-Type and body."""
    return parse_params(request.headers.get("content-type"), await request.body())
