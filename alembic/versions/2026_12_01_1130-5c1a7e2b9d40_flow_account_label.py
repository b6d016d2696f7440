"""Onboarding binds orgs to accounts: flows carry the account's label, and only one live
connection per org (disconnected ones stay as history, so another account may connect it anew).

Revision ID: 5c1a7e2b9d40
Revises: 5e1f0c2a9d4b
Create Date: 2026-12-01 11:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5c1a7e2b9d40"
down_revision: str | None = "5e1f0c2a9d4b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("oauth_flows", sa.Column("account_label", sa.String(200), nullable=True))
    op.drop_constraint("uq_connections_domain_dd_org_id", "connections", type_="unique")
    op.create_index(
        "uq_connections_live_org",
        "connections",
        ["domain", "dd_org_id"],
        unique=True,
        postgresql_where=sa.text("status <> 'disconnected'"),
    )


def downgrade() -> None:
    op.drop_index("uq_connections_live_org", table_name="connections")
    op.create_unique_constraint(
        "uq_connections_domain_dd_org_id", "connections", ["domain", "dd_org_id"]
    )
    op.drop_column("oauth_flows", "account_label")
