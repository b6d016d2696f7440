"""Initial schema: connections, their status history, and OAuth flows.

Revision ID: ac6093d6f6b7
Revises:
Create Date: 2026-11-26 05:36:06.285889
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "ac6093d6f6b7"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "connections",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.String(length=200), nullable=False),
        sa.Column("domain", sa.String(length=100), nullable=False),
        sa.Column("dd_org_id", sa.String(length=64), nullable=False),
        sa.Column("dd_org_name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("scopes", postgresql.ARRAY(sa.String(length=100)), nullable=False),
        sa.Column("access_token", sa.LargeBinary(), nullable=True),
        sa.Column("refresh_token", sa.LargeBinary(), nullable=True),
        sa.Column("access_token_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("api_key", sa.LargeBinary(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'active', 'key_invalid', 'reauth_required', 'disconnected')",
            name=op.f("ck_connections_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connections")),
        sa.UniqueConstraint("domain", "dd_org_id", name=op.f("uq_connections_domain_dd_org_id")),
    )
    op.create_index(op.f("ix_connections_account_id"), "connections", ["account_id"], unique=False)
    op.create_table(
        "connection_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("connection_id", sa.UUID(), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("from_status", sa.String(length=32), nullable=True),
        sa.Column("to_status", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_connection_events_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connection_events")),
    )
    op.create_index(
        op.f("ix_connection_events_connection_id"),
        "connection_events",
        ["connection_id"],
        unique=False,
    )
    op.create_table(
        "oauth_flows",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("ticket_hash", sa.LargeBinary(), nullable=False),
        sa.Column("state_hash", sa.LargeBinary(), nullable=True),
        sa.Column("browser_hash", sa.LargeBinary(), nullable=True),
        sa.Column("code_verifier", sa.LargeBinary(), nullable=True),
        sa.Column("account_id", sa.String(length=200), nullable=False),
        sa.Column("app_host", sa.String(length=255), nullable=False),
        sa.Column("domain", sa.String(length=100), nullable=True),
        sa.Column("return_to", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("connection_id", sa.UUID(), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_oauth_flows_connection_id_connections"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_flows")),
        sa.UniqueConstraint("state_hash", name=op.f("uq_oauth_flows_state_hash")),
        sa.UniqueConstraint("ticket_hash", name=op.f("uq_oauth_flows_ticket_hash")),
    )
    op.create_index(op.f("ix_oauth_flows_expires_at"), "oauth_flows", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_oauth_flows_expires_at"), table_name="oauth_flows")
    op.drop_table("oauth_flows")
    op.drop_index(op.f("ix_connection_events_connection_id"), table_name="connection_events")
    op.drop_table("connection_events")
    op.drop_index(op.f("ix_connections_account_id"), table_name="connections")
    op.drop_table("connections")
