"""The one error base class the API renders; domain code raises these, never HTTPException."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a request: where (an RFC 6901 JSON pointer into the body, or
    `/query/<name>`, `/header/<name>`) and why."""

    pointer: str
    reason: str


class InvalidInput(ServiceError):
    """422 listing every problem as `{"pointer", "reason"}`; nothing of the request was kept."""

    status_code = 422
    code = "invalid_body"

    def __init__(self, problems: Sequence[Problem], detail: str | None = None) -> None:
        self.problems = list(problems)
        super().__init__(
            detail or f"the request has {len(self.problems)} problem(s); nothing was accepted",
            problems=[{"pointer": p.pointer, "reason": p.reason} for p in self.problems],
        )


class FlowFailure(Exception):
    """A browser onboarding step that cannot go on; rendered as a page for the customer."""

    def __init__(self, status_code: int, title: str, explanation: str, advice: str) -> None:
        super().__init__(title)
        self.status_code = status_code
        self.title = title
        self.explanation = explanation
        self.advice = advice
