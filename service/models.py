"""The database schema as SQLAlchemy 2.0 typed mappings (Alembic migrations create it).

Plain SQLAlchemy rather than SQLModel tables: every column here is also a migration, and the
typed `Mapped[...]` declarations keep `mypy --strict` exact about PostgreSQL-specific types
(BYTEA, arrays, timestamptz) that SQLModel would hide behind `sa_column` anyway.
Secret columns hold `service.crypto` ciphertexts, never plaintext.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ConnectionStatus(enum.StrEnum):
    """Where a connection stands; see the design's state diagram."""

    PENDING = "pending"
    ACTIVE = "active"
    KEY_INVALID = "key_invalid"
    REAUTH_REQUIRED = "reauth_required"
    DISCONNECTED = "disconnected"


_STATUSES = ", ".join(f"'{status.value}'" for status in ConnectionStatus)
TIMESTAMP = DateTime(timezone=True)


class Connection(Base):
    """One customer Datadog org (domain + `dd_oid`) connected for a partner account."""

    __tablename__ = "connections"
    __table_args__ = (
        # One live connection per org; disconnected ones stay as history.
        Index(
            "uq_connections_live_org",
            "domain",
            "dd_org_id",
            unique=True,
            postgresql_where=text("status <> 'disconnected'"),
        ),
        CheckConstraint(f"status IN ({_STATUSES})", name="status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=uuid.uuid4)
    account_id: Mapped[str] = mapped_column(String(200), index=True)
    domain: Mapped[str] = mapped_column(String(100))
    dd_org_id: Mapped[str] = mapped_column(String(64))
    dd_org_name: Mapped[str] = mapped_column(String(200))
    status: Mapped[ConnectionStatus] = mapped_column(String(32))
    status_reason: Mapped[str | None] = mapped_column(Text)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(100)))
    access_token: Mapped[bytes | None] = mapped_column(LargeBinary)
    refresh_token: Mapped[bytes | None] = mapped_column(LargeBinary)
    access_token_expires_at: Mapped[datetime | None] = mapped_column(TIMESTAMP)
    api_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    refresh_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Consecutive refresh attempts Datadog could not answer (walks the retry schedule)."""
    refresh_retry_at: Mapped[datetime | None] = mapped_column(TIMESTAMP)
    """No refresh before this (after a failed attempt); None: refresh when due."""
    refresh_claimed_until: Mapped[datetime | None] = mapped_column(TIMESTAMP)
    """A process is calling the token endpoint for this connection until then."""
    created_at: Mapped[datetime] = mapped_column(
        TIMESTAMP, default=utcnow, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        TIMESTAMP, default=utcnow, onupdate=utcnow, server_default=func.now()
    )


class TokenCallBudget(Base):
    """Token calls made to one Datadog site in the current second (`REFRESH_RATE_PER_SITE`):
    every process takes from it before calling, so the cap holds across the fleet."""

    __tablename__ = "token_call_budgets"

    domain: Mapped[str] = mapped_column(String(100), primary_key=True)
    second: Mapped[datetime] = mapped_column(TIMESTAMP)
    used: Mapped[int] = mapped_column(Integer)


class ConnectionEvent(Base):
    """One status transition of a connection, with when and why."""

    __tablename__ = "connection_events"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    connection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(TIMESTAMP, default=utcnow, server_default=func.now())
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)


class WebhookEvent(Base):
    """One notification for `DDBRIDGE_WEBHOOK_URL`, inserted in its producer's transaction and
    sent in `id` order (`service.webhooks`)."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        Index("ix_webhook_events_unnotified", "id", postgresql_where=text("notified_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    connection_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE")
    )
    """The connection it is about; None for operator events (a refused OAuth client)."""
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    """The body's fields besides `event_id`, `type` and `at`; never a secret."""
    created_at: Mapped[datetime] = mapped_column(
        TIMESTAMP, default=utcnow, server_default=func.now(), index=True
    )
    notified_at: Mapped[datetime | None] = mapped_column(TIMESTAMP)
    """When the webhook acknowledged it (None: not yet, or no webhook configured)."""


class OAuthFlow(Base):
    """One authorization attempt, from the partner's request to Datadog's callback.

    The ticket (in the start link), the `state` and the browser id are stored only as SHA-256
    digests; the PKCE verifier is sealed. A flow is usable once: `started_at` and
    `completed_at` are set by conditional updates.
    """

    __tablename__ = "oauth_flows"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=uuid.uuid4)
    ticket_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    state_hash: Mapped[bytes | None] = mapped_column(LargeBinary, unique=True)
    browser_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    code_verifier: Mapped[bytes | None] = mapped_column(LargeBinary)
    account_id: Mapped[str] = mapped_column(String(200))
    account_label: Mapped[str | None] = mapped_column(String(200))
    """How the partner names the account to the person confirming (defaults to the id)."""
    app_host: Mapped[str] = mapped_column(String(255))
    domain: Mapped[str | None] = mapped_column(String(100))
    return_to: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        TIMESTAMP, default=utcnow, server_default=func.now()
    )
    expires_at: Mapped[datetime] = mapped_column(TIMESTAMP, index=True)
    started_at: Mapped[datetime | None] = mapped_column(TIMESTAMP)
    completed_at: Mapped[datetime | None] = mapped_column(TIMESTAMP)
    connection_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("connections.id", ondelete="SET NULL")
    )


class OutboxRow(Base):
    """Accepted telemetry waiting for delivery: a chunk of one request's items.

    `items` holds the serialized items joined by commas, so a batch is the concatenation of
    rows inside the signal's envelope. A row is claimed by setting `lease_until`; delivered
    rows are deleted, refused ones move to `dead_letters`.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_partition", "connection_id", "signal", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    connection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE")
    )
    signal: Mapped[str] = mapped_column(String(32))
    batch_id: Mapped[uuid.UUID] = mapped_column(UUID)
    items: Mapped[bytes] = mapped_column(LargeBinary)
    item_count: Mapped[int] = mapped_column(Integer)
    oldest_at: Mapped[datetime | None] = mapped_column(TIMESTAMP)
    accepted_at: Mapped[datetime] = mapped_column(
        TIMESTAMP, default=utcnow, server_default=func.now()
    )
    lease_until: Mapped[datetime | None] = mapped_column(TIMESTAMP)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Backlog(Base):
    """Items one connection has waiting in the outbox, all signals together: changed in the
    same statement or transaction as every insert into and delete from `outbox`, so the
    internal API checks its backlog cap against one row instead of summing the outbox.

    A connection has no row until its first send (nothing waiting)."""

    __tablename__ = "backlogs"

    connection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    pending_items: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class Partition(Base):
    """Delivery state of one (connection, signal): its lease, retry state and counters."""

    __tablename__ = "partitions"

    connection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    signal: Mapped[str] = mapped_column(String(32), primary_key=True)
    lease_until: Mapped[datetime | None] = mapped_column(TIMESTAMP)
    paused_until: Mapped[datetime | None] = mapped_column(TIMESTAMP)
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_items: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    dropped_items: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    dead_items: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    retried_requests: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    last_delivered_at: Mapped[datetime | None] = mapped_column(TIMESTAMP)


class DeadLetter(Base):
    """Items Datadog refused or that could no longer be delivered, with the reason.

    `kind` is `rejected` (400), `too_large` (413 for a single item) or `expired` (older than
    the intake window when its turn came). Replaying moves the items back to the outbox.
    """

    __tablename__ = "dead_letters"
    __table_args__ = (CheckConstraint("kind IN ('rejected', 'too_large', 'expired')", name="kind"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    connection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), index=True
    )
    signal: Mapped[str] = mapped_column(String(32))
    batch_id: Mapped[uuid.UUID] = mapped_column(UUID)
    items: Mapped[bytes] = mapped_column(LargeBinary)
    item_count: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    errors: Mapped[list[str]] = mapped_column(JSONB, default=list)
    status: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(
        TIMESTAMP, default=utcnow, server_default=func.now()
    )
    replayed_at: Mapped[datetime | None] = mapped_column(TIMESTAMP)


class IdempotencyKey(Base):
    """The first answer to a send with an `Idempotency-Key`, kept 24 hours.

    A key belongs to one (connection, signal); `body_sha256` is the digest of the body it was
    first used with, so a reuse with another body is refused rather than answered (None only
    for keys stored before digests were, which expire within 24 hours of that migration).
    """

    __tablename__ = "idempotency_keys"

    connection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    signal: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    body_sha256: Mapped[bytes | None] = mapped_column(LargeBinary)
    response: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(
        TIMESTAMP, default=utcnow, server_default=func.now(), index=True
    )
