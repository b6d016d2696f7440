"""Webhook notifications get an outbox of their own: typed events that any producer inserts in
its own transaction (connection transitions, operator events), sent in order.

Transitions not yet acknowledged move into it; `connection_events` stays the history.

Revision ID: 3b7d9e1f4a62
Revises: 8e3f0c6a1b27
Create Date: 2026-12-02 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "3b7d9e1f4a62"
down_revision: str | None = "8e3f0c6a1b27"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("connection_id", postgresql.UUID(), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_webhook_events_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
    )
    op.create_index(
        "ix_webhook_events_unnotified",
        "webhook_events",
        ["id"],
        postgresql_where=sa.text("notified_at IS NULL"),
    )
    op.create_index("ix_webhook_events_created_at", "webhook_events", ["created_at"])
    op.execute(
        "INSERT INTO webhook_events (type, connection_id, payload, created_at) "
        "SELECT 'connection.status_changed', e.connection_id, jsonb_build_object("
        "'connection_id', e.connection_id::text, 'account_id', c.account_id, "
        "'dd_org_id', c.dd_org_id, 'domain', c.domain, 'from_status', e.from_status, "
        "'to_status', e.to_status, 'reason', e.reason), e.at "
        "FROM connection_events AS e JOIN connections AS c ON c.id = e.connection_id "
        "WHERE e.notified_at IS NULL ORDER BY e.id"
    )
    op.drop_index("ix_connection_events_unnotified", table_name="connection_events")
    op.drop_column("connection_events", "notified_at")


def downgrade() -> None:
    op.add_column(
        "connection_events", sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "ix_connection_events_unnotified",
        "connection_events",
        ["id"],
        postgresql_where=sa.text("notified_at IS NULL"),
    )
    # Transitions sent before the outbox existed, or acknowledged since, count as notified.
    op.execute("UPDATE connection_events SET notified_at = now()")
    op.drop_index("ix_webhook_events_created_at", table_name="webhook_events")
    op.drop_index("ix_webhook_events_unnotified", table_name="webhook_events")
    op.drop_table("webhook_events")
