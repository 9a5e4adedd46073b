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
    sa.Column("subsidiary", sa.String(64), nullable=False),  # an ERP id: a GUID in some ERPs
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
    sa.Column("cost_centre", sa.String(64), nullable=True),  # the entry's own, as the PSA names it
    sa.Column("seen_at", UtcDateTime, nullable=False),  # when the hub first saw this version approved
    # staged: to validate | quarantined | held: closed period | assigned: in posting_key (posted once
    # that posting is) | reverse: changed after posting | withdrawn: unapproved or deleted, never posted
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("run_id", sa.String(120), nullable=True),  # the posting run that last classified it
    sa.Column("reason_code", sa.String(60), nullable=True),
    sa.Column("post_date", sa.Date, nullable=True),  # differs from work_date when re-dated
    sa.Column("department", sa.String(64), nullable=True),  # its own cost centre's ERP id, once assigned
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
    sa.Column("subsidiary", sa.String(64), nullable=False),  # an ERP id: a GUID in some ERPs
    sa.Column("department", sa.String(64), nullable=True),  # None: the project's cost centre
    sa.Column("erp", sa.String(60), nullable=True),  # the ERP it goes to; None: its project's
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

# API tokens: only a hash of the secret is kept; the token itself is shown once, when created.
api_token = sa.Table(
    "api_token",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),  # the public part of the token
    sa.Column("secret_hash", sa.String(64), nullable=False),  # SHA-256 hex of the whole token
    sa.Column("owner", sa.String(120), nullable=False),  # who acts with it, as the audit trail names them
    sa.Column("scopes", Json, nullable=False),  # ["read", "operate", "admin", "webhook:<source>", ...]
    sa.Column("note", sa.String(200), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=True),
    sa.Column("revoked_at", UtcDateTime, nullable=True),
    sa.Column("last_used_at", UtcDateTime, nullable=True),
)

# What people wrote on an exception case: assignments and comments, oldest first.
case_note = sa.Table(
    "case_note",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.Integer, nullable=False, index=True),
    sa.Column("kind", sa.String(20), nullable=False),  # assigned | comment | payload_edited
    sa.Column("author", sa.String(120), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
)

# -- billing (F6, F7, F8) -------------------------------------------------------------------
# What a contract bills, from the project's activation: the model, amounts and billing customer.
billing_schedule = sa.Table(
    "billing_schedule",
    metadata,
    sa.Column("project", sa.String(120), primary_key=True),  # the canonical project (CRM opportunity) id
    sa.Column("model", sa.String(30), nullable=False),  # milestone | time_and_materials | retainer | ...
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("customer_id", sa.String(120), nullable=False),  # the CRM account
    sa.Column("billing_customer", sa.String(60), nullable=True),  # the billing system's customer id
    sa.Column("legal_entity", sa.String(20), nullable=False),
    sa.Column("erp", sa.String(60), nullable=True),
    sa.Column("psa_workspace_id", sa.String(60), nullable=False),
    sa.Column("contract_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column(
        "period_minor", sa.BigInteger, nullable=False, server_default="0"
    ),  # retainer fee, subscription price
    sa.Column("periods", sa.Integer, nullable=False, server_default="0"),
    sa.Column("start_date", sa.Date, nullable=False),
    sa.Column("end_date", sa.Date, nullable=True),
    sa.Column("rate_card", sa.String(40), nullable=True),
    sa.Column("subscription_id", sa.String(60), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

# The milestones a milestone or fixed-fee contract bills, with their amounts and what billed them.
billing_milestone = sa.Table(
    "billing_milestone",
    metadata,
    sa.Column("story_id", sa.String(60), primary_key=True),  # the PSA milestone
    sa.Column("project", sa.String(120), nullable=False, index=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("due_date", sa.Date, nullable=True),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("status", sa.String(12), nullable=False),  # scheduled | invoiced
    sa.Column("approved_at", UtcDateTime, nullable=True),
    sa.Column("invoice_key", sa.String(160), nullable=True),
)

# Every invoice the hub bills or hears of: its key (the billing system's idempotency key),
# the billing system's id and number, and its state as the latest applied event left it.
billing_invoice = sa.Table(
    "billing_invoice",
    metadata,
    sa.Column("key", sa.String(160), primary_key=True),
    sa.Column(
        "kind", sa.String(20), nullable=False
    ),  # milestone | time_and_materials | retainer | subscription
    sa.Column("project", sa.String(120), nullable=False, index=True),
    sa.Column("customer_id", sa.String(120), nullable=False),
    sa.Column("period", sa.String(7), nullable=True),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("subtotal_minor", sa.BigInteger, nullable=False),
    sa.Column("lines", Json, nullable=False),
    # planned | open | paid | void | uncollectible | failed (not issued: see the case)
    sa.Column("status", sa.String(16), nullable=False, index=True),
    # The applied state's version: (rank of the status, payment attempts, refunded), compared as a tuple.
    sa.Column("state_rank", sa.Integer, nullable=False, server_default="0"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("refunded_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("payment_status", sa.String(20), nullable=True),  # unpaid | failed | paid | refunded
    sa.Column("billing_id", sa.String(60), nullable=True, index=True),
    sa.Column("number", sa.String(60), nullable=True),
    sa.Column("total_minor", sa.BigInteger, nullable=True),
    sa.Column("tax_minor", sa.BigInteger, nullable=True),
    sa.Column("paid_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("erp", sa.String(60), nullable=True),
    sa.Column("erp_id", sa.String(60), nullable=True),
    sa.Column("erp_payment_id", sa.String(60), nullable=True),
    sa.Column("erp_void_id", sa.String(60), nullable=True),
    sa.Column("issue_date", sa.Date, nullable=True),
    sa.Column("due_date", sa.Date, nullable=True),
    sa.Column("run_id", sa.String(120), nullable=True),
    sa.Column("trigger_at", UtcDateTime, nullable=True),  # milestone approved (invoice cycle time)
    sa.Column("planned_at", UtcDateTime, nullable=False),
    sa.Column("sent_at", UtcDateTime, nullable=True),
    sa.Column("paid_at", UtcDateTime, nullable=True),
    sa.Column("error", Json, nullable=True),
)

# Approved time locked by the invoice that bills it: one row per source entry, never two.
invoiced_work = sa.Table(
    "invoiced_work",
    metadata,
    sa.Column("kind", sa.String(10), primary_key=True),
    sa.Column("source_id", sa.String(60), primary_key=True),
    sa.Column("invoice_key", sa.String(160), nullable=False, index=True),
    sa.Column("project", sa.String(120), nullable=False),
    sa.Column("role", sa.String(60), nullable=False),
    sa.Column("period", sa.String(7), nullable=False),  # the work's month
    sa.Column("minutes", sa.Integer, nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("invoiced_at", UtcDateTime, nullable=False),
)

# Webhook deliveries the hub's intake received: accepted, duplicate, or rejected with the reason.
webhook_delivery = sa.Table(
    "webhook_delivery",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(20), nullable=False),
    sa.Column("event_id", sa.String(120), nullable=True),
    sa.Column("event_type", sa.String(60), nullable=True),
    sa.Column("outcome", sa.String(12), nullable=False),  # accepted | duplicate | rejected
    sa.Column("reason", sa.String(60), nullable=True),
    sa.Column("message", sa.Text, nullable=True),
    sa.Column("received_at", UtcDateTime, nullable=False),
)

# Outbox events already handed to the flow router (the relay hands each over once).
outbox_relay = sa.Table(
    "outbox_relay",
    metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("relayed_at", UtcDateTime, nullable=False),
)
