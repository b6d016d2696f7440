"""Token refreshes live in PostgreSQL: the failure count, when to try next, who is calling, and
each site's token calls in the current second.

Revision ID: 8e3f0c6a1b27
Revises: 5c1a7e2b9d40
Create Date: 2026-12-01 12:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8e3f0c6a1b27"
down_revision: str | None = "5c1a7e2b9d40"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "connections",
        sa.Column("refresh_failures", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column(
        "connections", sa.Column("refresh_retry_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "connections",
        sa.Column("refresh_claimed_until", sa.DateTime(timezone=True), nullable=True),
    )

    op.create_table(
        "token_call_budgets",
        sa.Column("domain", sa.String(length=100), nullable=False),
        sa.Column("second", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("domain", name=op.f("pk_token_call_budgets")),
    )


def downgrade() -> None:
    op.drop_table("token_call_budgets")
    op.drop_column("connections", "refresh_claimed_until")
    op.drop_column("connections", "refresh_retry_at")
    op.drop_column("connections", "refresh_failures")
