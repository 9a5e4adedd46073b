"""what the hub last synced of a record: its source version and the field values seen

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("xref") as batch:
        batch.add_column(sa.Column("source_version", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column("synced", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("xref") as batch:
        batch.drop_column("synced")
        batch.drop_column("source_version")
