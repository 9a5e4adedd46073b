"""What people do with exception cases: fix and resubmit, decide an identity
match, or ignore with a reason. Every action is in the audit trail."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from quote2cash.errors import ConfigError
from quote2cash.flows import lead_to_project, work_posting
from quote2cash.runtime.hub import Hub
from quote2cash.store import audit, cases, repo
from quote2cash.store.tables import work_entry

FLOWS = {lead_to_project.FLOW: lead_to_project}


def _case(hub: Hub, case_id: int) -> dict[str, Any]:
    case = hub.read(cases.get_case, case_id)
    if case is None:
        raise ConfigError(f"there is no exception case {case_id}", code="case.not_found")
    return case


def _resubmit_entry(hub: Hub, case: dict[str, Any], actor: str) -> None:
    """A quarantined time entry or expense goes back to validation in the next posting run."""
    kind, _, source_id = str(case["subject"]).partition("/")

    def record(conn: sa.Connection) -> int:
        moved = conn.execute(
            sa.update(work_entry)
            .where(
                work_entry.c.kind == kind,
                work_entry.c.source_id == source_id,
                work_entry.c.status.in_(("quarantined", "held")),
            )
            .values(status="staged", reason_code=None)
        ).rowcount
        cases.set_status(conn, case["id"], "resubmitted", {"by": actor, "action": "resubmit"})
        audit.append(
            conn,
            actor=actor,
            action="case.resubmitted",
            subject=case["subject"],
            correlation_id=case["correlation_id"],
            after={"case": case["id"]},
        )
        return int(moved)

    if not hub.tx(record):
        raise ConfigError(
            f"{case['subject']} is not waiting in quarantine; nothing to resubmit",
            code="case.not_quarantined",
        )


def resubmit(
    hub: Hub, case_id: int, *, actor: str, link_to: str | None = None, create_new: bool = False
) -> str | None:
    """Re-run the case's flow from its kept payload; returns the new workflow id.

    A quarantined time entry or expense is not re-run at once: it goes back to
    validation in the next posting run (None is returned).

    ``link_to`` / ``create_new`` record the decision on a probable duplicate first.
    """
    case = _case(hub, case_id)
    if case["status"] not in cases.OPEN_STATES:
        raise ConfigError(
            f"case {case_id} is {case['status']}; only open cases can be resubmitted", code="case.not_open"
        )
    if case["flow"] == work_posting.FLOW and not (link_to or create_new):
        _resubmit_entry(hub, case, actor)
        return None
    flow = FLOWS.get(case["flow"])
    if flow is None or case["payload"] is None:
        raise ConfigError(
            f"case {case_id} of flow {case['flow']} cannot be resubmitted", code="case.no_replay"
        )
    if link_to and create_new:
        raise ConfigError("choose one of --link or --create-new", code="case.decision")
    if (link_to or create_new) and case["code"] != "customer.probable_duplicate":
        raise ConfigError(
            f"case {case_id} is not a probable duplicate; --link/--create-new do not apply",
            code="case.decision",
        )
    run = hub.read(repo.get_run, case["flow"], case["subject"])
    attempt = (run["attempts"] if run else 0) + 1

    def record(conn: sa.Connection) -> None:
        if link_to or create_new:
            repo.put_identity_decision(
                conn, str(case["record"]), "link" if link_to else "create_new", link_to, actor
            )
        cases.set_status(
            conn,
            case_id,
            "resubmitted",
            {"by": actor, "action": "resubmit", "link_to": link_to, "create_new": create_new},
        )
        audit.append(
            conn,
            actor=actor,
            action="case.resubmitted",
            subject=case["subject"],
            correlation_id=case["correlation_id"],
            after={"case": case_id, "link_to": link_to, "create_new": create_new},
        )

    hub.tx(record)
    flow.start(case["payload"], attempt)
    return str(flow.workflow_id(str(case["payload"]["payload"]["Id"]), attempt))


def ignore(hub: Hub, case_id: int, *, actor: str, reason: str) -> None:
    """Close a case without action; the reason is kept."""
    if not reason.strip():
        raise ConfigError("ignoring a case needs a reason", code="case.reason_missing")
    case = _case(hub, case_id)

    def record(conn: sa.Connection) -> None:
        cases.set_status(conn, case_id, "ignored", {"by": actor, "reason": reason})
        audit.append(
            conn,
            actor=actor,
            action="case.ignored",
            subject=case["subject"],
            correlation_id=case["correlation_id"],
            after={"case": case_id, "reason": reason},
        )

    hub.tx(record)
