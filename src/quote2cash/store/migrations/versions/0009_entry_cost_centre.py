"""an entry's own cost centre: as the PSA names it, and the ERP department it posts to

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("work_entry") as batch:
        batch.add_column(sa.Column("cost_centre", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("department", sa.String(length=64), nullable=True))
    with op.batch_alter_table("posting") as batch:
        batch.add_column(sa.Column("department", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("posting") as batch:
        batch.drop_column("department")
    with op.batch_alter_table("work_entry") as batch:
        batch.drop_column("department")
        batch.drop_column("cost_centre")
