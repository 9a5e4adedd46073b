"""billing: schedules, milestones, invoices, invoiced time, webhook deliveries, the outbox relay

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
UTC = sa.DateTime(timezone=True)
TABLES = (
    "billing_schedule",
    "billing_milestone",
    "billing_invoice",
    "invoiced_work",
    "webhook_delivery",
    "outbox_relay",
)


def upgrade() -> None:
    op.create_table(
        "billing_schedule",
        sa.Column("project", sa.String(length=120), nullable=False),
        sa.Column("model", sa.String(length=30), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("customer_id", sa.String(length=120), nullable=False),
        sa.Column("billing_customer", sa.String(length=60), nullable=True),
        sa.Column("legal_entity", sa.String(length=20), nullable=False),
        sa.Column("erp", sa.String(length=60), nullable=True),
        sa.Column("psa_workspace_id", sa.String(length=60), nullable=False),
        sa.Column("contract_minor", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("period_minor", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("periods", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("rate_card", sa.String(length=40), nullable=True),
        sa.Column("subscription_id", sa.String(length=60), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("project", name=op.f("pk_billing_schedule")),
    )
    op.create_table(
        "billing_milestone",
        sa.Column("story_id", sa.String(length=60), nullable=False),
        sa.Column("project", sa.String(length=120), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("approved_at", UTC, nullable=True),
        sa.Column("invoice_key", sa.String(length=160), nullable=True),
        sa.PrimaryKeyConstraint("story_id", name=op.f("pk_billing_milestone")),
    )
    op.create_index(op.f("ix_billing_milestone_project"), "billing_milestone", ["project"], unique=False)
    op.create_table(
        "billing_invoice",
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("project", sa.String(length=120), nullable=False),
        sa.Column("customer_id", sa.String(length=120), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("subtotal_minor", sa.BigInteger(), nullable=False),
        sa.Column("lines", JSON, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("state_rank", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("refunded_minor", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("payment_status", sa.String(length=20), nullable=True),
        sa.Column("stripe_id", sa.String(length=60), nullable=True),
        sa.Column("number", sa.String(length=60), nullable=True),
        sa.Column("total_minor", sa.BigInteger(), nullable=True),
        sa.Column("tax_minor", sa.BigInteger(), nullable=True),
        sa.Column("paid_minor", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("erp", sa.String(length=60), nullable=True),
        sa.Column("erp_id", sa.String(length=60), nullable=True),
        sa.Column("erp_payment_id", sa.String(length=60), nullable=True),
        sa.Column("erp_void_id", sa.String(length=60), nullable=True),
        sa.Column("issue_date", sa.Date(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("run_id", sa.String(length=120), nullable=True),
        sa.Column("trigger_at", UTC, nullable=True),
        sa.Column("planned_at", UTC, nullable=False),
        sa.Column("sent_at", UTC, nullable=True),
        sa.Column("paid_at", UTC, nullable=True),
        sa.Column("error", JSON, nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_billing_invoice")),
    )
    op.create_index(op.f("ix_billing_invoice_project"), "billing_invoice", ["project"], unique=False)
    op.create_index(op.f("ix_billing_invoice_stripe_id"), "billing_invoice", ["stripe_id"], unique=False)
    op.create_index(op.f("ix_billing_invoice_status"), "billing_invoice", ["status"], unique=False)
    op.create_table(
        "invoiced_work",
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("source_id", sa.String(length=60), nullable=False),
        sa.Column("invoice_key", sa.String(length=160), nullable=False),
        sa.Column("project", sa.String(length=120), nullable=False),
        sa.Column("role", sa.String(length=60), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("invoiced_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("kind", "source_id", name=op.f("pk_invoiced_work")),
    )
    op.create_index(op.f("ix_invoiced_work_invoice_key"), "invoiced_work", ["invoice_key"], unique=False)
    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("event_id", sa.String(length=120), nullable=True),
        sa.Column("event_type", sa.String(length=60), nullable=True),
        sa.Column("outcome", sa.String(length=12), nullable=False),
        sa.Column("reason", sa.String(length=60), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("received_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_delivery")),
    )
    op.create_table(
        "outbox_relay",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("relayed_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_outbox_relay")),
    )


def downgrade() -> None:
    for name in reversed(TABLES):
        op.drop_table(name)
