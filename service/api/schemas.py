"""Request and response bodies of the internal API. Responses never carry a secret."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from service.deliveries import PartitionStats
from service.models import Connection, ConnectionEvent, DeadLetter
from service.verify import Check


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
"""A string that can be stored: PostgreSQL text holds anything but NUL."""

MAX_ID = 2**63 - 1
"""The largest id PostgreSQL's bigint holds."""
MAX_REPLAY_IDS = 1000
"""Dead letters one replay names at most (a page of `GET .../dead_letters`)."""


class ProblemOut(BaseModel):
    pointer: str
    """RFC 6901 JSON pointer into the body, or `/query/<name>`, `/header/<name>`, `/path/<name>`."""
    reason: str


class ErrorOut(BaseModel):
    """Every error answer: a stable code, a sentence, and what else the error carries
    (`problems` on 422, `status` on 409, `limit` on 413, ...)."""

    model_config = ConfigDict(extra="allow")

    error: str
    detail: str
    problems: list[ProblemOut] | None = None


ERROR_MEANINGS = {
    400: "Datadog refused what was asked of it (its reasons in `detail`)",
    401: "no valid internal bearer token; nothing was read",
    403: "a scope this call needs was not granted, or Datadog refused it",
    404: "no such connection",
    409: "the connection cannot do this now (its `status` says why); nothing was accepted",
    413: "the body is over its limit (`limit`); nothing was accepted",
    422: "invalid input, every problem listed with its pointer; nothing was accepted",
    429: "the connection's backlog is full; retry after `Retry-After` seconds",
    503: "busy, or the database or Datadog is unavailable; nothing was accepted; retry "
    "after `Retry-After` seconds",
}


def error_answers(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` declaring these error statuses with the error body."""
    return {
        status: {"model": ErrorOut, "description": ERROR_MEANINGS[status]} for status in statuses
    }


class AcceptedOut(BaseModel):
    accepted: int
    """Points for metrics, spans for traces, items otherwise."""
    batch_id: uuid.UUID


class AuthorizationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: Text = Field(min_length=1, max_length=200)
    account_label: Text | None = Field(default=None, min_length=1, max_length=200)
    """What the person sees before leaving for Datadog ("Acme Corp (alice@acme.example)")."""
    site: Text | None = Field(default=None, max_length=255)
    domain: Text | None = Field(default=None, max_length=100)
    return_to: Text | None = Field(default=None, max_length=2000)


class AuthorizationOut(BaseModel):
    authorize_url: str
    expires_at: datetime


class TransitionOut(BaseModel):
    at: datetime
    from_status: str | None
    to_status: str
    reason: str

    @classmethod
    def of(cls, event: ConnectionEvent) -> TransitionOut:
        return cls(
            at=event.at,
            from_status=event.from_status,
            to_status=event.to_status,
            reason=event.reason,
        )


class DeadLetterOut(BaseModel):
    id: int
    signal: str
    batch_id: uuid.UUID
    item_count: int
    kind: str
    reason: str
    errors: list[str]
    status: int | None
    created_at: datetime
    replayed_at: datetime | None

    @classmethod
    def of(cls, letter: DeadLetter) -> DeadLetterOut:
        return cls.model_validate(letter, from_attributes=True)


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(
        default=None, max_length=MAX_REPLAY_IDS
    )
    """Dead letters to replay (at most `MAX_REPLAY_IDS`); all not yet replayed when absent."""


class ReplayedOut(BaseModel):
    signal: str
    items: int


class ConnectionOut(BaseModel):
    id: uuid.UUID
    account_id: str
    dd_org_id: str
    dd_org_name: str
    domain: str
    status: str
    status_reason: str | None
    scopes: list[str]
    access_token_expires_at: datetime | None
    has_api_key: bool
    created_at: datetime
    updated_at: datetime
    delivery: list[PartitionStats]
    history: list[TransitionOut] | None = None

    @classmethod
    def of(
        cls,
        connection: Connection,
        delivery: list[PartitionStats],
        history: list[ConnectionEvent] | None = None,
    ) -> ConnectionOut:
        return cls(
            id=connection.id,
            account_id=connection.account_id,
            dd_org_id=connection.dd_org_id,
            dd_org_name=connection.dd_org_name,
            domain=connection.domain,
            status=connection.status,
            status_reason=connection.status_reason,
            scopes=connection.scopes,
            access_token_expires_at=connection.access_token_expires_at,
            has_api_key=connection.api_key is not None,
            created_at=connection.created_at,
            updated_at=connection.updated_at,
            delivery=delivery,
            history=None if history is None else [TransitionOut.of(e) for e in history],
        )


class CheckOut(BaseModel):
    name: str
    passed: bool | None
    """None: granted, but no harmless call can prove it."""
    detail: str


class VerifyOut(BaseModel):
    connection_id: uuid.UUID
    passed: bool
    """True when no check failed."""
    checks: list[CheckOut]

    @classmethod
    def of(cls, connection_id: uuid.UUID, checks: list[Check]) -> VerifyOut:
        return cls(
            connection_id=connection_id,
            passed=all(check.passed is not False for check in checks),
            checks=[CheckOut(name=c.name, passed=c.passed, detail=c.detail) for c in checks],
        )
