"""an invoice's id in the billing system, whichever system that is

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_billing_invoice_stripe_id", table_name="billing_invoice")
    with op.batch_alter_table("billing_invoice") as batch:
        batch.alter_column("stripe_id", new_column_name="billing_id")
    op.create_index("ix_billing_invoice_billing_id", "billing_invoice", ["billing_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_billing_invoice_billing_id", table_name="billing_invoice")
    with op.batch_alter_table("billing_invoice") as batch:
        batch.alter_column("billing_id", new_column_name="stripe_id")
    op.create_index("ix_billing_invoice_stripe_id", "billing_invoice", ["stripe_id"], unique=False)
