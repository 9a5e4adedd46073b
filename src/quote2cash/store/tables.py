"""The hub's own tables. Alembic migrations in ``migrations/`` create them."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
UtcDateTime = sa.DateTime(timezone=True)

# Which record in which system is which canonical record.
xref = sa.Table(
    "xref",
    metadata,
    sa.Column("system", sa.String(40), primary_key=True),
    sa.Column("object_type", sa.String(40), primary_key=True),
    sa.Column("canonical_id", sa.String(120), primary_key=True),
    sa.Column("external_id", sa.String(120), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    # What the hub last synced of the source record: its version and the field values seen.
    sa.Column("source_version", sa.String(64), nullable=True),
    sa.Column("synced", Json, nullable=True),
    sa.Index(None, "system", "object_type", "external_id"),
)

# Outbound writes the hub has made or is making: the key is deterministic, so
# a retried or replayed write finds its earlier attempt here.
idempotency_ledger = sa.Table(
    "idempotency_ledger",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("system", sa.String(40), nullable=False),
    sa.Column("operation", sa.String(60), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # in_doubt | done
    sa.Column("result", Json, nullable=True),
    sa.Column("correlation_id", sa.String(64), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

# Every source event the hub accepted, once, with its payload (claim check).
inbox = sa.Table(
    "inbox",
    metadata,
    sa.Column("source", sa.String(40), primary_key=True),
    sa.Column("source_event_id", sa.String(200), primary_key=True),
    sa.Column("event_id", sa.String(64), nullable=False, unique=True),
    sa.Column("event_type", sa.String(60), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("correlation_id", sa.String(64), nullable=False),
    sa.Column("event_time", UtcDateTime, nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Column("payload", Json, nullable=False),
    sa.Column("duplicates", sa.Integer, nullable=False, server_default="0"),
    sa.Column("dispatched_at", UtcDateTime, nullable=True),
)

# Business events for downstream consumers, written before anything is published.
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("event_type", sa.String(60), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("correlation_id", sa.String(64), nullable=False),
    sa.Column("envelope", Json, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("published_at", UtcDateTime, nullable=True),
)

# Cases for people: a business-rule violation, a probable duplicate, a poison message.
exception_case = sa.Table(
    "exception_case",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dedupe_key", sa.String(250), nullable=False, unique=True),
    sa.Column("code", sa.String(80), nullable=False, index=True),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("owner", sa.String(30), nullable=False),
    sa.Column("flow", sa.String(60), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("system", sa.String(40), nullable=True),
    sa.Column("record", sa.String(200), nullable=True),
    sa.Column("correlation_id", sa.String(64), nullable=True),
    sa.Column("status", sa.String(20), nullable=False, index=True),  # open | resubmitted | resolved | ignored
    sa.Column("occurrences", sa.Integer, nullable=False, server_default="1"),
    sa.Column("details", Json, nullable=False),
    sa.Column("payload", Json, nullable=True),
    sa.Column("resolution", Json, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

# One row per run of a flow for one subject: the saga's record of which systems were written.
flow_run = sa.Table(
    "flow_run",
    metadata,
    sa.Column("flow", sa.String(60), primary_key=True),
    sa.Column("subject", sa.String(200), primary_key=True),
    sa.Column("correlation_id", sa.String(64), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # running | exception | completed | compensated
    sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
    sa.Column("steps", Json, nullable=False),  # {step: {"system", "id", "at"}}
    sa.Column("trigger_time", UtcDateTime, nullable=True),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("completed_at", UtcDateTime, nullable=True),
    sa.Column("last_error", Json, nullable=True),
)

# Durable cursors of pollers.
cursor = sa.Table(
    "cursor",
    metadata,
    sa.Column("name", sa.String(80), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

# Decisions people took on identity matches, read by the customer sync.
identity_decision = sa.Table(
    "identity_decision",
    metadata,
    sa.Column("canonical_id", sa.String(120), primary_key=True),
    sa.Column("decision", sa.String(20), nullable=False),  # link | create_new
    sa.Column("external_id", sa.String(120), nullable=True),
    sa.Column("decided_by", sa.String(120), nullable=False),
    sa.Column("decided_at", UtcDateTime, nullable=False),
)

# Append-only, hash-chained audit trail.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("actor", sa.String(120), nullable=False),
    sa.Column("action", sa.String(80), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("correlation_id", sa.String(64), nullable=True),
    sa.Column("systems", Json, nullable=False),
    sa.Column("before", Json, nullable=True),
    sa.Column("after", Json, nullable=True),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# Business KPI samples (latencies, counts) recorded as flows run.
kpi_sample = sa.Table(
    "kpi_sample",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kpi", sa.String(80), nullable=False, index=True),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("labels", Json, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("kpi", "subject"),
)

# Projects the hub created (F2): what posting time and expenses needs to know, locally.
project_registry = sa.Table(
    "project_registry",
    metadata,
    sa.Column("canonical_id", sa.String(120), primary_key=True),  # the CRM opportunity id
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("psa_workspace_id", sa.String(60), nullable=False, unique=True),
    sa.Column("erp_job_id", sa.String(60), nullable=False),
    sa.Column("erp", sa.String(60), nullable=True),  # the ERP system (by name) the project is routed to
    sa.Column("customer_id", sa.String(120), nullable=True),  # the CRM account (canonical customer id)
    sa.Column("start_date", sa.Date, nullable=True),
    sa.Column("customer_erp_id", sa.String(60), nullable=True),
    sa.Column("legal_entity", sa.String(20), nullable=False),
    sa.Column("subsidiary", sa.String(20), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("billing_model", sa.String(30), nullable=False),
    sa.Column("rate_card", sa.String(40), nullable=True),
    sa.Column("department", sa.String(20), nullable=True),  # ERP department: the cost centre
    sa.Column("open_for_time", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("open_for_expenses", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

# Every approved source entry the hub has seen, its validation outcome, and
# what was posted for it: the idempotency ledger of time and expense posting.
work_entry = sa.Table(
    "work_entry",
    metadata,
    sa.Column("kind", sa.String(10), primary_key=True),  # time | expense
    sa.Column("source_id", sa.String(60), primary_key=True),
    sa.Column("version", sa.String(40), nullable=False),  # the PSA's updated_at
    sa.Column("approved", sa.Boolean, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("workspace_id", sa.String(60), nullable=False),
    sa.Column("task_id", sa.String(60), nullable=True),
    sa.Column("user_id", sa.String(60), nullable=True),
    sa.Column("work_date", sa.Date, nullable=False),
    sa.Column("minutes", sa.Integer, nullable=False, server_default="0"),
    sa.Column("amount_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("rate_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("billable", sa.Boolean, nullable=False),
    sa.Column("reimbursable", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("category", sa.String(60), nullable=True),
    sa.Column("seen_at", UtcDateTime, nullable=False),  # when the hub first saw this version approved
    # staged: to validate | quarantined | held: closed period | assigned: in posting_key (posted once
    # that posting is) | reverse: changed after posting | withdrawn: unapproved or deleted, never posted
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("run_id", sa.String(120), nullable=True),  # the posting run that last classified it
    sa.Column("reason_code", sa.String(60), nullable=True),
    sa.Column("post_date", sa.Date, nullable=True),  # differs from work_date when re-dated
    # Not indexed: entries are found by posting through the posting's key (its primary key), and an
    # index of hashed keys makes every month-end insert a random B-tree write.
    sa.Column("posting_key", sa.String(80), nullable=True),
    sa.Column("posted_version", sa.String(40), nullable=True),
    sa.Column("posted_minutes", sa.Integer, nullable=True),
    sa.Column("posted_amount_minor", sa.BigInteger, nullable=True),
    sa.Index(None, "kind", "status"),
)

# One ERP posting (a journal entry in summary mode, a timebill or expense report in detail mode).
posting = sa.Table(
    "posting",
    metadata,
    sa.Column("key", sa.String(80), primary_key=True),  # the ERP externalId
    sa.Column("kind", sa.String(10), nullable=False),
    sa.Column("mode", sa.String(10), nullable=False),
    sa.Column("run_id", sa.String(120), nullable=False, index=True),
    sa.Column("project", sa.String(120), nullable=False),
    sa.Column("task_id", sa.String(60), nullable=True),
    sa.Column("legal_entity", sa.String(20), nullable=False),
    sa.Column("subsidiary", sa.String(20), nullable=False),
    sa.Column("period", sa.String(7), nullable=False),  # YYYY-MM
    sa.Column("billable", sa.Boolean, nullable=False),
    sa.Column("reversal_of", sa.String(80), nullable=True),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("minutes", sa.BigInteger, nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("entries", sa.Integer, nullable=False),
    sa.Column("tran_date", sa.Date, nullable=False),
    sa.Column("status", sa.String(10), nullable=False),  # pending | posted | failed
    sa.Column("erp_id", sa.String(60), nullable=True),
    sa.Column("error", Json, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("posted_at", UtcDateTime, nullable=True),
    sa.Index(None, "kind", "period", "project"),
)

# Which entry versions a reversal posting takes back.
reversal_line = sa.Table(
    "reversal_line",
    metadata,
    sa.Column("posting_key", sa.String(80), primary_key=True),
    sa.Column("kind", sa.String(10), primary_key=True),
    sa.Column("source_id", sa.String(60), primary_key=True),
    sa.Column("version", sa.String(40), nullable=False),
    sa.Column("reversed_posting", sa.String(80), nullable=False),
    sa.Column("minutes", sa.Integer, nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
)
