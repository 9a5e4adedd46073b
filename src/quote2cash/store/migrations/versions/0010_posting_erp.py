"""the ERP each posting goes to: its project's, or another past a hard cutover

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("posting") as batch:
        batch.add_column(sa.Column("erp", sa.String(length=60), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("posting") as batch:
        batch.drop_column("erp")
