"""time and expense posting

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "posting",
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("run_id", sa.String(length=120), nullable=False),
        sa.Column("project", sa.String(length=120), nullable=False),
        sa.Column("task_id", sa.String(length=60), nullable=True),
        sa.Column("legal_entity", sa.String(length=20), nullable=False),
        sa.Column("subsidiary", sa.String(length=20), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("billable", sa.Boolean(), nullable=False),
        sa.Column("reversal_of", sa.String(length=80), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("minutes", sa.BigInteger(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("tran_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("erp_id", sa.String(length=60), nullable=True),
        sa.Column(
            "error",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_posting")),
    )
    with op.batch_alter_table("posting", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_posting_kind_period_project"), ["kind", "period", "project"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_posting_run_id"), ["run_id"], unique=False)

    op.create_table(
        "project_registry",
        sa.Column("canonical_id", sa.String(length=120), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("psa_workspace_id", sa.String(length=60), nullable=False),
        sa.Column("erp_job_id", sa.String(length=60), nullable=False),
        sa.Column("customer_erp_id", sa.String(length=60), nullable=True),
        sa.Column("legal_entity", sa.String(length=20), nullable=False),
        sa.Column("subsidiary", sa.String(length=20), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("billing_model", sa.String(length=30), nullable=False),
        sa.Column("rate_card", sa.String(length=40), nullable=True),
        sa.Column("department", sa.String(length=20), nullable=True),
        sa.Column("open_for_time", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("open_for_expenses", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("canonical_id", name=op.f("pk_project_registry")),
        sa.UniqueConstraint("psa_workspace_id", name=op.f("uq_project_registry_psa_workspace_id")),
    )
    op.create_table(
        "reversal_line",
        sa.Column("posting_key", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("source_id", sa.String(length=60), nullable=False),
        sa.Column("version", sa.String(length=40), nullable=False),
        sa.Column("reversed_posting", sa.String(length=80), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("posting_key", "kind", "source_id", name=op.f("pk_reversal_line")),
    )
    op.create_table(
        "work_entry",
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("source_id", sa.String(length=60), nullable=False),
        sa.Column("version", sa.String(length=40), nullable=False),
        sa.Column("approved", sa.Boolean(), nullable=False),
        sa.Column("deleted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("workspace_id", sa.String(length=60), nullable=False),
        sa.Column("task_id", sa.String(length=60), nullable=True),
        sa.Column("user_id", sa.String(length=60), nullable=True),
        sa.Column("work_date", sa.Date(), nullable=False),
        sa.Column("minutes", sa.Integer(), server_default="0", nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rate_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("billable", sa.Boolean(), nullable=False),
        sa.Column("reimbursable", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("category", sa.String(length=60), nullable=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("run_id", sa.String(length=120), nullable=True),
        sa.Column("reason_code", sa.String(length=60), nullable=True),
        sa.Column("post_date", sa.Date(), nullable=True),
        sa.Column("posting_key", sa.String(length=80), nullable=True),
        sa.Column("posted_version", sa.String(length=40), nullable=True),
        sa.Column("posted_minutes", sa.Integer(), nullable=True),
        sa.Column("posted_amount_minor", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("kind", "source_id", name=op.f("pk_work_entry")),
    )
    with op.batch_alter_table("work_entry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_work_entry_kind_status"), ["kind", "status"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("work_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_work_entry_kind_status"))

    op.drop_table("work_entry")
    op.drop_table("reversal_line")
    op.drop_table("project_registry")
    with op.batch_alter_table("posting", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_posting_run_id"))
        batch_op.drop_index(batch_op.f("ix_posting_kind_period_project"))

    op.drop_table("posting")
