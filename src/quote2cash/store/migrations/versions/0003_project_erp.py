"""the ERP system each project belongs to (routing), its customer and start date

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("project_registry") as batch:
        batch.add_column(sa.Column("erp", sa.String(length=60), nullable=True))
        batch.add_column(sa.Column("customer_id", sa.String(length=120), nullable=True))
        batch.add_column(sa.Column("start_date", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("project_registry") as batch:
        batch.drop_column("start_date")
        batch.drop_column("customer_id")
        batch.drop_column("erp")
