"""The one error base class the API renders; domain code raises these, never HTTPException."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """An expected failure with its HTTP status, a stable code and a human sentence."""

    status_code = 400
    code = "bad_request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "detail": self.detail, **self.extra}

    def headers(self) -> dict[str, str]:
        return {}


class Unauthorized(ServiceError):
    status_code = 401
    code = "unauthorized"


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"


class InvalidInput(ServiceError):
    """422 with `problems`: a list of `{"pointer", "reason"}`."""

    status_code = 422
    code = "invalid_body"


class Unavailable(ServiceError):
    status_code = 503
    code = "unavailable"


class FlowFailure(Exception):
    """A browser onboarding step that cannot go on; rendered as a page for the customer."""

    def __init__(self, status_code: int, title: str, explanation: str, advice: str) -> None:
        super().__init__(title)
        self.status_code = status_code
        self.title = title
        self.explanation = explanation
        self.advice = advice
