"""Connection transitions remember when the webhook acknowledged them.

Revision ID: bd7366188762
Revises: ca2b25e3b61b
Create Date: 2026-11-26 07:09:41.769472
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "bd7366188762"
down_revision: str | None = "ca2b25e3b61b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "connection_events", sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "ix_connection_events_unnotified",
        "connection_events",
        ["id"],
        postgresql_where=sa.text("notified_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_connection_events_unnotified", table_name="connection_events")
    op.drop_column("connection_events", "notified_at")
