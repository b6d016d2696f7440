"""Each connection's backlog is a maintained count (`backlogs`) instead of a SUM over the outbox.

The internal API checks its cap with one conditional upsert of this row; every insert into
and delete from `outbox` changes it in the same statement or transaction. The backfill counts
the rows waiting now, with the outbox locked against writers while it does, so the count
starts exact (processes of the previous version still running after this migration would
leave it behind: stop them first).

Revision ID: 7a4c2e9b1d35
Revises: 3b7d9e1f4a62
Create Date: 2026-12-02 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "7a4c2e9b1d35"
down_revision: str | None = "3b7d9e1f4a62"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "backlogs",
        sa.Column("connection_id", postgresql.UUID(), nullable=False),
        sa.Column("pending_items", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_backlogs_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", name=op.f("pk_backlogs")),
    )
    op.execute("LOCK TABLE outbox IN SHARE MODE")
    op.execute(
        "INSERT INTO backlogs (connection_id, pending_items) "
        "SELECT connection_id, sum(item_count) FROM outbox GROUP BY connection_id"
    )


def downgrade() -> None:
    op.drop_table("backlogs")
