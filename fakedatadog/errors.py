"""Expected failures, each carrying the exact answer Datadog gives; one handler renders them.

Domain code raises these and never builds HTTP responses for failures itself.
"""

from __future__ import annotations

import abc
from http import HTTPStatus

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException

from fakedatadog.pages import render


class EmulatorError(Exception, abc.ABC):
    """Base class: `response()` is the full answer to send."""

    status: int

    @abc.abstractmethod
    def response(self) -> Response:
        """The answer, status included."""


class OAuthError(EmulatorError):
    """An OAuth token/revoke endpoint error: `{"error", "error_description"}` (RFC 6749 5.2)."""

    def __init__(self, error: str, description: str, *, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def response(self) -> Response:
        body = {"error": self.error, "error_description": self.description}
        return JSONResponse(body, status_code=self.status)


def invalid_client() -> OAuthError:
    """Missing or wrong client credentials for the site: always 401, one message."""
    return OAuthError("invalid_client", "Client authentication failed", status=401)


class ApiError(EmulatorError):
    """A REST API error in Datadog's shape: `{"errors": [message]}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> Response:
        return JSONResponse({"errors": [self.message]}, status_code=self.status)


class LogsIntakeError(EmulatorError):
    """An error of the logs intake host, in its own shape (HTTPLogErrors):
    `{"errors": [{"status": "<code>", "title": "<reason phrase>", "detail": message}]}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> Response:
        error = {"status": str(self.status), "title": HTTPStatus(self.status).phrase}
        body = {"errors": [{**error, "detail": self.message}]}
        return JSONResponse(body, status_code=self.status)


class AuthorizePageError(EmulatorError):
    """A Datadog error page in the browser; nothing is redirected back to the client."""

    status = 400

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error} - {description}")
        self.error = error
        self.description = description

    def response(self) -> Response:
        html = render("error.html", error=self.error, description=self.description)
        return HTMLResponse(html, status_code=self.status)


class ControlError(EmulatorError):
    """A control-plane request the emulator cannot honour: `{"error": message}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> Response:
        return JSONResponse({"error": self.message}, status_code=self.status)


async def handle_emulator_error(_request: Request, exc: Exception) -> Response:
    """The single exception handler, registered for `EmulatorError`."""
    assert isinstance(exc, EmulatorError)
    return exc.response()


async def handle_http_error(_request: Request, exc: Exception) -> Response:
    """Routing failures (404, 405) in Datadog's `{"errors": [...]}` shape."""
    assert isinstance(exc, HTTPException)
    return JSONResponse({"errors": [exc.detail]}, status_code=exc.status_code, headers=exc.headers)
