"""Operations services: what the CLI, the HTTP API and the console call.

- :mod:`~quote2cash.ops.cases` — the exception queue: list, show, resubmit (one or many), ignore.
- :mod:`~quote2cash.ops.workers` — take over the flows of a worker gone for good.
- :mod:`~quote2cash.ops.posting` — post approved time or expenses now.
- :mod:`~quote2cash.ops.reconciliation` — PSA approved vs ERP posted, by month.
- :mod:`~quote2cash.ops.kpis` — business KPIs.
- :mod:`~quote2cash.ops.audit` — verify the audit trail.
- :mod:`~quote2cash.ops.catalogue` — the catalogue of error codes.

Services raise :class:`~quote2cash.errors.UsageError` for arguments that cannot
work and :class:`~quote2cash.errors.NotFoundError` for what does not exist,
with a code from the catalogue; callers map those to an exit code or an HTTP status.
"""
