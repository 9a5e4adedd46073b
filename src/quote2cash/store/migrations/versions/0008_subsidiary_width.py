"""subsidiary ids as wide as an ERP's: Business Central names its companies by GUID

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("project_registry", "posting"):
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "subsidiary",
                type_=sa.String(length=64),
                existing_type=sa.String(length=20),
                existing_nullable=False,
            )


def downgrade() -> None:
    for table in ("project_registry", "posting"):
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "subsidiary",
                type_=sa.String(length=20),
                existing_type=sa.String(length=64),
                existing_nullable=False,
            )
