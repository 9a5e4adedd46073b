"""What people do with exception cases: list and inspect them, fix and
resubmit (one or many), decide an identity match, or ignore with a reason.
Every action is in the audit trail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from dbos import DBOS

from quote2cash.errors import HubError, NotFoundError, UsageError
from quote2cash.flows.posting import FLOW as POSTING_FLOW
from quote2cash.runtime import flow as runtime_flow
from quote2cash.runtime.hub import Hub
from quote2cash.store import audit, cases, repo
from quote2cash.store.tables import project_registry, work_entry

STATUSES = ("open", "resubmitted", "resolved", "ignored", "all")


def check_status(status: str) -> str:
    """A case status a list can filter on (one of :data:`STATUSES`)."""
    if status not in STATUSES:
        raise UsageError(f"unknown case status {status!r}: use one of {', '.join(STATUSES)}")
    return status


@dataclass(frozen=True)
class CaseDetail:
    """One case with everything needed to decide what to do about it.

    Attributes:
        case: the case: code, message, owner, status, payload, resolution, age.
        run: the flow run of the case's subject (status, attempts, last error), if the flow keeps one.
        written: what the run already wrote, one ``{step, system, id, at}`` per step, oldest first.
        audit: the audit entries of the case's subject, newest first.
        history: what happened to the case, oldest first: one ``{at, event, by, note}``
            per event (``opened``, ``failed again``, ``resubmitted``, ``ignored``, ``resolved``).
    """

    case: dict[str, Any]
    run: dict[str, Any] | None
    written: list[dict[str, Any]]
    audit: list[dict[str, Any]]
    history: list[dict[str, Any]]


@dataclass(frozen=True)
class Outcome:
    """What a bulk resubmission did with one case.

    Attributes:
        case_id: the case.
        workflow_id: the new run, or None when the entry waits for the next posting run.
        error: why the case was not resubmitted (``HubError.to_dict()``), or None.
    """

    case_id: int
    workflow_id: str | None = None
    error: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """Whether the case was resubmitted."""
        return self.error is None


def _case(hub: Hub, case_id: int) -> dict[str, Any]:
    case = hub.read(cases.get_case, case_id)
    if case is None:
        raise NotFoundError(f"there is no exception case {case_id}", code="case.not_found")
    return case


def _require_open(case: dict[str, Any], doing: str) -> None:
    if case["status"] not in cases.OPEN_STATES:
        raise UsageError(
            f"case {case['id']} is {case['status']}; only open cases can be {doing}", code="case.not_open"
        )


def _can_start_again(flow_name: str) -> bool:
    declared = runtime_flow.FLOWS.get(flow_name)
    return declared is not None and declared.replayable


def _start_again(hub: Hub, flow_name: str, payload: dict[str, Any], attempt: int) -> str:
    """Start a flow again from a case's kept payload; returns the new run's workflow id.

    The only place a case starts a flow: the attempt number makes the workflow
    id new, so the resubmission runs even though the first run finished.
    """
    if not _can_start_again(flow_name):
        raise UsageError(f"flow {flow_name} cannot be started again from a case", code="case.no_replay")
    return runtime_flow.start(flow_name, payload, attempt)


def list_cases(
    hub: Hub, *, status: str = "open", code: str | None = None, flow: str | None = None
) -> list[dict[str, Any]]:
    """Cases, oldest first; ``status`` is one of :data:`STATUSES` (``open`` includes resubmitted)."""
    check_status(status)

    def gather(conn: sa.Connection) -> list[dict[str, Any]]:
        found = cases.list_cases(conn, status=None if status == "all" else status, code=code, flow=flow)
        names = _project_names(conn, found)
        return [{**c, "project": names.get(c["id"])} for c in found]

    return hub.read(gather)


def _project_names(conn: sa.Connection, found: list[dict[str, Any]]) -> dict[int, str]:
    """``Name (CRM id)`` of the project each case concerns, where the hub knows it."""
    registry = {
        str(r.canonical_id): (str(r.name), str(r.psa_workspace_id))
        for r in conn.execute(
            sa.select(
                project_registry.c.canonical_id, project_registry.c.name, project_registry.c.psa_workspace_id
            )
        )
    }
    by_workspace = {ws: opp for opp, (_, ws) in registry.items()}
    entries = [
        str(c["subject"]).partition("/") for c in found if str(c["subject"]).startswith(("time/", "expense/"))
    ]
    workspace_of: dict[tuple[str, str], str] = {}
    if entries:
        rows = conn.execute(
            sa.select(work_entry.c.kind, work_entry.c.source_id, work_entry.c.workspace_id).where(
                work_entry.c.source_id.in_([source for _, _, source in entries])
            )
        )
        workspace_of = {(str(k), str(i)): str(w) for k, i, w in rows}
    out: dict[int, str] = {}
    for c in found:
        subject = str(c["subject"])
        kind, _, source = subject.partition("/")
        opp = by_workspace.get(workspace_of.get((kind, source), ""))
        if opp is None:
            opp = next((t for t in subject.replace("/", ":").split(":") if t in registry), None)
        if opp is not None:
            out[int(c["id"])] = f"{registry[opp][0]} ({opp})"
        elif subject.startswith("Opportunity/"):
            event = c.get("payload")
            record = event.get("payload") if isinstance(event, dict) else None
            name = (record.get("Name") or record.get("name")) if isinstance(record, dict) else None
            opp = subject.partition("/")[2]
            out[int(c["id"])] = f"{name} ({opp})" if name else opp
    return out


def _history(case: dict[str, Any], entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The case's events from the audit trail of its subject, oldest first."""
    events: list[dict[str, Any]] = []
    failed = 0
    for e in sorted(entries, key=lambda e: int(e["seq"])):
        raw = e.get("after")
        after: dict[str, Any] = raw if isinstance(raw, dict) else {}
        mine = after.get("case") == case["id"]
        if e["action"] == "flow.exception" and mine:
            error = after.get("error") or {}
            events.append(
                {"at": e["at"], "event": "failed again" if failed else "opened", "by": e["actor"],
                 "note": str(error.get("code") or case["code"])}
            )  # fmt: skip
            failed += 1
        elif e["action"] == "case.resubmitted" and mine:
            decision = "link to " + str(after["link_to"]) if after.get("link_to") else ""
            decision = decision or ("create a new customer" if after.get("create_new") else "")
            events.append({"at": e["at"], "event": "resubmitted", "by": e["actor"], "note": decision})
        elif e["action"] == "case.ignored" and mine:
            events.append(
                {"at": e["at"], "event": "ignored", "by": e["actor"], "note": str(after.get("reason", ""))}
            )
        elif e["action"] == "flow.completed" and events and case["status"] == "resolved":
            events.append(
                {"at": e["at"], "event": "resolved", "by": e["actor"], "note": "the flow completed"}
            )
    if not events or events[0]["event"] != "opened":
        events.insert(
            0,
            {"at": case["created_at"], "event": "opened", "by": f"flow:{case['flow']}", "note": case["code"]},
        )
    occurrences = int(case.get("occurrences") or 1)
    if occurrences > failed + 1 and not any(ev["event"] == "failed again" for ev in events):
        events.append(
            {"at": case["updated_at"], "event": "failed again", "by": f"flow:{case['flow']}",
             "note": f"{occurrences} occurrences in all"}
        )  # fmt: skip
    return events


def show_case(hub: Hub, case_id: int) -> CaseDetail:
    """A case, its flow run with the systems already written, and its audit entries."""
    case = _case(hub, case_id)

    def gather(conn: sa.Connection) -> tuple[dict[str, Any] | None, list[dict[str, Any]], str | None]:
        return (
            repo.get_run(conn, case["flow"], case["subject"]),
            audit.entries(conn, subject=case["subject"]),
            _project_names(conn, [case]).get(case["id"]),
        )

    run, entries, project = hub.read(gather)
    case = {**case, "project": project}
    steps = dict(run["steps"] or {}) if run else {}
    written = sorted(
        ({"step": name, **step} for name, step in steps.items()), key=lambda s: str(s.get("at", ""))
    )
    if run is not None:
        run = {
            k: run[k] for k in ("status", "attempts", "last_error", "started_at", "completed_at") if k in run
        }
    return CaseDetail(case=case, run=run, written=written, audit=entries, history=_history(case, entries))


def _resubmit_entry(hub: Hub, case: dict[str, Any], actor: str) -> None:
    """A quarantined time entry or expense goes back to validation in the next posting run."""
    kind, _, source_id = str(case["subject"]).partition("/")

    def record(conn: sa.Connection) -> None:
        moved = conn.execute(
            sa.update(work_entry)
            .where(
                work_entry.c.kind == kind,
                work_entry.c.source_id == source_id,
                work_entry.c.status.in_(("quarantined", "held")),
            )
            .values(status="staged", reason_code=None)
        ).rowcount
        if not moved:  # raised inside the transaction, so the case is left as it was
            raise UsageError(
                f"{case['subject']} is not waiting in quarantine; nothing to resubmit",
                code="case.not_quarantined",
            )
        cases.set_status(conn, case["id"], "resubmitted", {"by": actor, "action": "resubmit"})
        audit.append(
            conn,
            actor=actor,
            action="case.resubmitted",
            subject=case["subject"],
            correlation_id=case["correlation_id"],
            after={"case": case["id"]},
        )

    hub.tx(record)


#: Cases a person settles by deciding which ERP customer an account is (``link_to`` / ``create_new``).
IDENTITY_CASES = frozenset({"customer.probable_duplicate", "customer.other_entity_match"})


def resubmit(
    hub: Hub, case_id: int, *, actor: str, link_to: str | None = None, create_new: bool = False
) -> str | None:
    """Re-run the case's flow from its kept payload; returns the new workflow id.

    A quarantined time entry or expense is not re-run at once: it goes back to
    validation in the next posting run (None is returned).

    ``link_to`` / ``create_new`` record the decision on a probable duplicate first.
    """
    case = _case(hub, case_id)
    _require_open(case, "resubmitted")
    deciding = bool(link_to) or create_new
    if link_to and create_new:
        raise UsageError(
            "choose one: link to an existing customer, or create a new one", code="case.decision"
        )
    if deciding and case["code"] not in IDENTITY_CASES:
        raise UsageError(
            f"case {case_id} is {case['code']}, not an identity match; link / create-new do not apply",
            code="case.decision",
        )
    if case["flow"] == POSTING_FLOW:
        _resubmit_entry(hub, case, actor)
        return None
    if not _can_start_again(case["flow"]) or case["payload"] is None:
        raise UsageError(
            f"case {case_id} of flow {case['flow']} cannot be re-run from a kept payload",
            code="case.no_replay",
        )
    run = hub.read(repo.get_run, case["flow"], case["subject"])
    attempt = (run["attempts"] if run else 0) + 1

    def record(conn: sa.Connection) -> None:
        if deciding:
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
    return _start_again(hub, case["flow"], case["payload"], attempt)


def resubmit_many(
    hub: Hub,
    *,
    actor: str,
    code: str | None = None,
    flow: str | None = None,
    case_ids: list[int] | None = None,
) -> list[Outcome]:
    """Resubmit every open case of a code and/or flow (or the cases named); one outcome per case.

    A case that cannot be resubmitted is reported in its outcome and the rest go on.
    Cases already resubmitted and not failed again are left alone.
    """
    if not (code or flow or case_ids):
        raise UsageError("say which cases to resubmit: an error code, a flow, or case ids")
    if case_ids:
        ids = list(case_ids)
    else:
        ids = [c["id"] for c in list_cases(hub, code=code, flow=flow) if c["status"] == "open"]
    outcomes: list[Outcome] = []
    for case_id in ids:
        try:
            outcomes.append(Outcome(case_id, workflow_id=resubmit(hub, case_id, actor=actor)))
        except HubError as exc:
            outcomes.append(Outcome(case_id, error=exc.to_dict()))
    return outcomes


def run_result(workflow_id: str) -> dict[str, Any]:
    """Wait for a resubmitted run and return what it reported (``status``, and ``case`` and ``code`` if it stopped)."""
    result: dict[str, Any] = DBOS.retrieve_workflow(workflow_id).get_result()
    return result


def ignore(hub: Hub, case_id: int, *, actor: str, reason: str) -> None:
    """Close a case without action; the reason is kept with the case and in the audit trail."""
    if not reason.strip():
        raise UsageError(
            f"ignoring case {case_id} needs a reason: say why no action is needed", code="case.reason_missing"
        )
    case = _case(hub, case_id)
    _require_open(case, "ignored")

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
