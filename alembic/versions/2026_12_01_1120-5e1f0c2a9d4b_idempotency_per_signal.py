"""Idempotency keys belong to (connection, signal, key) and remember their body's digest.

Revision ID: 5e1f0c2a9d4b
Revises: bd7366188762
Create Date: 2026-12-01 11:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5e1f0c2a9d4b"
down_revision: str | None = "bd7366188762"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Keys stored before this have no digest; they answer as before until they expire (24 h).
    op.add_column("idempotency_keys", sa.Column("body_sha256", sa.LargeBinary(), nullable=True))
    op.drop_constraint("pk_idempotency_keys", "idempotency_keys", type_="primary")
    op.create_primary_key(
        "pk_idempotency_keys", "idempotency_keys", ["connection_id", "signal", "key"]
    )


def downgrade() -> None:
    # One key per connection again: keep each key's most recent use.
    op.execute(
        "DELETE FROM idempotency_keys AS older USING idempotency_keys AS newer "
        "WHERE older.connection_id = newer.connection_id AND older.key = newer.key "
        "AND (older.created_at, older.signal) < (newer.created_at, newer.signal)"
    )
    op.drop_constraint("pk_idempotency_keys", "idempotency_keys", type_="primary")
    op.create_primary_key("pk_idempotency_keys", "idempotency_keys", ["connection_id", "key"])
    op.drop_column("idempotency_keys", "body_sha256")
