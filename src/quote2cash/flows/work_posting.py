"""Validate, aggregate and post ledger entries to the ERP (F4, F5).

Summary mode makes one journal entry per project × task (or expense category)
× legal entity × work period × billable flag (× posting period, when entries
were re-dated); detail mode one timebill or expense report per entry. A
posting's key is its ERP external id: it is fixed in the hub database before
anything is sent, so a re-sent posting is an upsert of the same record.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from quote2cash.errors import BusinessRuleError, Owner
from quote2cash.runtime.hub import Hub
from quote2cash.store import cases, repo
from quote2cash.store.tables import posting, reversal_line, work_entry

FLOW = "post_approved_work"
BATCH = 200


def _case(
    conn: sa.Connection, kind: str, source_id: str, code: str, message: str, owner: Owner, correlation_id: str
) -> None:
    err = BusinessRuleError(message, code=code, owner=owner, system="kantata", record=f"{kind}/{source_id}")
    cases.open_case(conn, err, flow=FLOW, subject=f"{kind}/{source_id}", correlation_id=correlation_id)


def plan_reversals(
    conn: sa.Connection, kind: str, run_id: str, md_periods: list[tuple[str, str, str, bool]]
) -> int:
    """Turn entries changed after posting into reversal postings; returns how many postings."""
    rows = list(
        conn.execute(
            sa.select(work_entry).where(work_entry.c.kind == kind, work_entry.c.status == "reverse")
        ).mappings()
    )
    if not rows:
        return 0
    by_posting: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_posting[str(r["posting_key"])].append(dict(r))
    open_starts = sorted(date.fromisoformat(s) for _, s, _, closed in md_periods if not closed)
    made = 0
    for original_key, entries in by_posting.items():
        original = conn.execute(sa.select(posting).where(posting.c.key == original_key)).mappings().first()
        if original is None:
            continue
        n = conn.execute(
            sa.select(sa.func.count()).select_from(posting).where(posting.c.reversal_of == original_key)
        ).scalar_one()
        key = f"{original_key}-R{n + 1}"
        minutes = sum(int(e["posted_minutes"] or 0) for e in entries)
        amount = sum(int(e["posted_amount_minor"] or 0) for e in entries)
        tran = original["tran_date"]
        if not any(s <= tran for s in open_starts) or _closed(tran, md_periods):
            later = [s for s in open_starts if s > tran]
            tran = later[0] if later else date.today()
        conn.execute(
            sa.insert(posting).values(
                key=key,
                kind=kind,
                mode=original["mode"],
                run_id=run_id,
                project=original["project"],
                task_id=original["task_id"],
                legal_entity=original["legal_entity"],
                subsidiary=original["subsidiary"],
                period=original["period"],
                billable=original["billable"],
                reversal_of=original_key,
                currency=original["currency"],
                minutes=-minutes,
                amount_minor=-amount,
                entries=-len(entries),
                tran_date=tran,
                status="pending",
                created_at=repo.now(),
            )
        )
        conn.execute(
            sa.insert(reversal_line),
            [
                {
                    "posting_key": key,
                    "kind": kind,
                    "source_id": e["source_id"],
                    "version": e["posted_version"],
                    "reversed_posting": original_key,
                    "minutes": int(e["posted_minutes"] or 0),
                    "amount_minor": int(e["posted_amount_minor"] or 0),
                }
                for e in entries
            ],
        )
        made += 1
    # What the PSA now says is either posted again (once validated) or withdrawn.
    conn.execute(
        sa.update(work_entry)
        .where(work_entry.c.kind == kind, work_entry.c.status == "reverse")
        .values(
            status=sa.case(
                (sa.and_(work_entry.c.approved, sa.not_(work_entry.c.deleted)), "staged"), else_="withdrawn"
            ),
            posting_key=None,
            posted_version=None,
            posted_minutes=None,
            posted_amount_minor=None,
        )
    )
    return made


def _closed(day: date, periods: list[tuple[str, str, str, bool]]) -> bool:
    return any(
        date.fromisoformat(s) <= day <= date.fromisoformat(e) and closed for _, s, e, closed in periods
    )


def journal(
    p: dict[str, Any], hub: Hub, currency_id: str | None, job: str | None, dept: str | None
) -> dict[str, Any]:
    """The ERP record of a posting (journal entry, timebill or expense report)."""
    accounts = hub.config.posting.accounts
    amount = Decimal(abs(int(p["amount_minor"]))).scaleb(-2)
    hours = (Decimal(int(p["minutes"])) / 60).quantize(Decimal("0.01"))
    kind = p["kind"]
    if kind == "time":
        dr, cr = (
            (accounts.unbilled_receivable, accounts.services_revenue)
            if p["billable"]
            else (accounts.project_cost, accounts.cost_absorption)
        )
    else:
        dr = accounts.rebillable_expenses if p["billable"] else accounts.project_cost
        cr = accounts.expense_clearing
    if p["amount_minor"] < 0:
        dr, cr = cr, dr
    dims: dict[str, Any] = {"entity": {"id": job}} if job else {}
    if dept:
        dims["department"] = {"id": dept}
    fields: dict[str, Any] = {
        "subsidiary": {"id": p["subsidiary"]},
        "tranDate": p["tran_date"].isoformat(),
        "memo": (
            f"quote2cash {kind} {p['period']} {'billable' if p['billable'] else 'non-billable'}: "
            f"{abs(p['entries'])} entries" + (f", reverses {p['reversal_of']}" if p["reversal_of"] else "")
        ),
        "custbody_q2c_kind": kind,
        "custbody_q2c_project": p["project"],
        "custbody_q2c_task": p["task_id"],
        "custbody_q2c_period": p["period"],
        "custbody_q2c_billable": bool(p["billable"]),
        "custbody_q2c_hours": str(hours),
        "custbody_q2c_amount": str(Decimal(int(p["amount_minor"])).scaleb(-2)),
        "custbody_q2c_entries": int(p["entries"]),
        "custbody_q2c_source_ref": p["key"],
        "custbody_q2c_reversal_of": p["reversal_of"],
        "line": {
            "items": [
                {"account": {"id": dr}, "debit": str(amount), "memo": p["key"], **dims},
                {"account": {"id": cr}, "credit": str(amount), "memo": p["key"], **dims},
            ]
        },
    }
    if currency_id:
        fields["currency"] = {"id": currency_id}
    if p["mode"] == "detail":
        return _detail_record(p, fields, job, amount, hours)
    return {"type": "journalentry", "externalId": p["key"], "fields": fields}


def _detail_record(
    p: dict[str, Any], fields: dict[str, Any], job: str | None, amount: Decimal, hours: Decimal
) -> dict[str, Any]:
    """Detail mode: the entry itself, as a timebill or an expense report."""
    body = {k: v for k, v in fields.items() if k != "line"}
    if job:
        body["customer"] = {"id": job}
    if p["kind"] == "time":
        minutes = abs(int(p["minutes"]))
        body.update(
            hours=f"{minutes // 60}:{minutes % 60:02d}",
            isBillable=bool(p["billable"]),
            rate=str((amount / hours).quantize(Decimal("0.01")) if hours else Decimal(0)),
        )
        return {"type": "timebill", "externalId": p["key"], "fields": body}
    line = {"amount": str(amount), "isBillable": bool(p["billable"]), "memo": p["task_id"] or "expense"}
    if job:
        line["customer"] = {"id": job}
    body["expense"] = {"items": [line]}
    return {"type": "expensereport", "externalId": p["key"], "fields": body}


def pending_postings(conn: sa.Connection, kind: str) -> list[dict[str, Any]]:
    """Postings not yet confirmed by the ERP, reversals first."""
    q = (
        sa.select(posting)
        .where(posting.c.kind == kind, posting.c.status == "pending")
        .order_by(posting.c.reversal_of.is_(None), posting.c.key)
    )
    return [dict(r) for r in conn.execute(q).mappings()]


def confirm(
    conn: sa.Connection,
    kind: str,
    results: list[tuple[str, str | None, dict[str, Any] | None]],
    correlation_id: str,
) -> tuple[int, int]:
    """Record what the ERP answered for a batch; failed postings quarantine their entries."""
    now = repo.now()
    ok = [(k, i) for k, i, e in results if e is None]
    if ok:
        conn.execute(
            sa.update(posting)
            .where(posting.c.key == sa.bindparam("k"))
            .values(status="posted", erp_id=sa.bindparam("i"), posted_at=now, error=None),
            [{"k": k, "i": i} for k, i in ok],
        )
        # The entries are not rewritten: an entry is posted when the posting it is assigned to is.
    failed = [(k, e) for k, _, e in results if e is not None]
    for key, err in failed:
        conn.execute(sa.update(posting).where(posting.c.key == key).values(status="failed", error=err))
        sids = [
            s
            for (s,) in conn.execute(
                sa.select(work_entry.c.source_id).where(
                    work_entry.c.kind == kind, work_entry.c.posting_key == key
                )
            )
        ]
        conn.execute(
            sa.update(work_entry)
            .where(work_entry.c.kind == kind, work_entry.c.posting_key == key)
            .values(status="quarantined", reason_code=err["code"], posting_key=None)
        )
        if not sids:  # a reversal: the posting itself is the case
            _case(
                conn,
                kind,
                key,
                err["code"],
                f"the ERP refused reversal {key}: {err['message']}",
                Owner.FINANCE,
                correlation_id,
            )
        for sid in sids:
            _case(
                conn,
                kind,
                sid,
                err["code"],
                f"the ERP refused posting {key}: {err['message']}",
                Owner.FINANCE,
                correlation_id,
            )
    return len(ok), len(failed)


def chunks(items: list[dict[str, Any]], size: int = BATCH) -> Iterator[list[dict[str, Any]]]:
    """Consecutive slices of at most ``size`` items."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def send_detail(
    hub: Hub, records: list[dict[str, Any]], concurrency: int
) -> list[tuple[str, str | None, dict[str, Any] | None]]:
    """Detail mode: one upsert per record, a bounded number in flight."""

    def one(record: dict[str, Any]) -> tuple[str, str | None, dict[str, Any] | None]:
        try:
            erp_id = hub.erp.upsert(record["type"], record["externalId"], record["fields"])
            return record["externalId"], erp_id, None
        except BusinessRuleError as exc:
            return record["externalId"], None, {"code": exc.code, "message": exc.message}

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, records))
