"""Flows declared once, dispatched by one router, run by one runner.

A flow is a :class:`Flow`: its name, the event types that trigger it, the
roles it writes, whether a case of it can be replayed, and its body — plain
business steps over the role ports. :func:`declare` registers it; the
:func:`dispatch` router starts every flow an event triggers, and polling,
resubmission and the HTTP API all go through it.

The runner (:func:`run_flow`, one DBOS workflow for every flow) owns the
bookkeeping no flow repeats: the run record, the saga steps, the audit trail,
and the guarantee that **every run ends either completed or with an
exception case**. Exhausted retries, a business rule, malformed vendor data and
an unexpected Python error all become a case that names the systems already
written and what compensation did, with the source payload kept for replay;
the flow's ``report`` hook then tells the source (the CRM status).
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import structlog
from dbos import DBOS, SetWorkflowID

from quote2cash.errors import (
    BusinessRuleError,
    HubError,
    Owner,
    TransientError,
    VendorPayloadError,
)
from quote2cash.model import BusinessEvent
from quote2cash.rules.ownership import Refusal
from quote2cash.runtime.hub import Hub, current
from quote2cash.runtime.logs import correlated
from quote2cash.store import audit, cases, repo
from quote2cash.store.tables import kpi_sample, outbox

log = structlog.get_logger("quote2cash.runtime.flow")

#: What the systems a run wrote are called in a case message.
WHAT = {
    "erp_customer": "ERP customer",
    "erp_customer_update": "ERP customer update",
    "erp_project": "ERP project",
    "psa_workspace": "PSA workspace",
    "crm_write_back": "CRM write-back",
}


@dataclass(frozen=True)
class Flow:
    """A business flow, declared once.

    Attributes:
        name: a verb phrase, also the run record's and the cases' ``flow``.
        triggers: event types that start it.
        writes: roles it writes (the saga's systems), for the case message and the audit.
        replayable: whether a case of it can be resubmitted from the kept payload.
        body: the business steps: ``body(run) -> summary``; raises a hub error to stop.
        subject: the run's subject from the event (default: ``event.subject``).
        key: the part of the workflow id that makes one run per subject (default: subject).
        compensate: undoes the run's writes when the policy says so; returns what it undid.
        report: tells the source about a case (e.g. the CRM status); failures are logged only.
        on_complete: extra bookkeeping in the completing transaction.
        global_concurrency: runs at once across all workers (None: no global limit).
        latency_kpi: the KPI that records trigger → completed seconds (None: none).
        keys: the records (system role, object type, canonical id) whose cross-references
            the run needs, read together instead of one look-up each.
        one_step: run the whole run — open, body, complete — as one checkpointed step. Every
            write in it must be idempotent and record itself (:meth:`Run.write`), so a run
            interrupted half-way runs again from the top, finds what it already wrote and goes
            on: one checkpoint per run instead of one per call (a failure adds the case's).
        batch: when more than this many events trigger the flow at once (a poll's burst), they
            run that many at most to a workflow, one after the other (0: always one workflow
            per event). A first run in a batch has the batch's workflow id, not its own.
        read_ahead: reads what a batch's runs need from a source in one go before they run
            (``read_ahead(hub, events) -> {subject: value}``); each run finds its value as
            :attr:`Run.ahead`. A run without one (a failed read-ahead, a single run, a
            resubmission) reads for itself.
    """

    name: str
    triggers: tuple[str, ...]
    writes: tuple[str, ...]
    replayable: bool
    body: Callable[[Run], dict[str, Any]]
    compensate: Callable[[Run, dict[str, Any]], list[str]] | None = None
    report: Callable[[Run, HubError, int], None] | None = None
    on_complete: Callable[[sa.Connection, Run, dict[str, Any]], None] | None = None
    global_concurrency: int | None = None
    latency_kpi: str | None = None
    keys: Callable[[Run], list[tuple[str, str, str]]] | None = None
    one_step: bool = False
    batch: int = 0
    read_ahead: Callable[[Hub, list[dict[str, Any]]], dict[str, Any]] | None = None


FLOWS: dict[str, Flow] = {}


def declare(flow: Flow) -> Flow:
    """Register a flow with the router and the runner."""
    FLOWS[flow.name] = flow
    return flow


@dataclass
class Run:
    """One run of a flow, as the flow's body sees it."""

    flow: Flow
    event: dict[str, Any]
    subject: str
    correlation_id: str
    hub: Hub = field(repr=False)
    #: Cross-references read together (the flow's ``keys``), found or not, and the ids found.
    read_keys: frozenset[tuple[str, str, str]] = frozenset()
    known_ids: dict[tuple[str, str, str], str] = field(default_factory=dict)
    #: Inside a one-step body: bookkeeping goes straight to the database, not through checkpoints.
    in_step: bool = False
    #: The run record as the run opened it (so completing it need not read it again).
    opened: dict[str, Any] | None = field(default=None, repr=False)
    #: Writes of a one-step body recorded with the run's end (:meth:`write`'s ``at_end``).
    journal: list[_Written] = field(default_factory=list, repr=False)
    #: What the run's batch read for it before it ran (the flow's ``read_ahead``), or None.
    ahead: Any = field(default=None, repr=False)

    @property
    def payload(self) -> dict[str, Any]:
        """The source event's payload."""
        payload = self.event.get("payload")
        if not isinstance(payload, dict):
            raise VendorPayloadError(f"event {self.event.get('id')} has no payload object")
        return payload

    def known(self, system: str, object_type: str, canonical_id: str) -> str | None:
        """The id a system gave this record before (a cross-reference), if any.

        Records named by the flow's ``keys`` were read when the run opened; others are read now.
        """
        key = (system, object_type, canonical_id)
        if key in self.read_keys or key in self.known_ids:
            return self.known_ids.get(key)
        if self.in_step:
            return self.hub.read(repo.get_xref, system, object_type, canonical_id)
        return self.hub.tx(repo.get_xref, system, object_type, canonical_id)

    def write(
        self,
        step: str,
        system: str,
        object_type: str,
        canonical_id: str,
        action: str,
        send: Callable[[bool], str],
        after: Any,
        audit_action: str | None = None,
        *,
        create: bool = False,
        at_end: bool = False,
    ) -> str:
        """One write to a system as one checkpointed step: send it, record it.

        ``send(first)`` makes the call. A ``create`` (not an upsert by external
        id) is first marked in doubt in the idempotency ledger, and ``first`` is
        False when an earlier attempt began it (it may have landed), so the
        sender looks the record up before it creates anything; an upsert is
        safe to repeat and needs no mark. The record (cross-reference, saga
        step, ledger, audit) is written in the same step, right after the answer.

        ``at_end``: the record is the run's own (no other run looks it up), so a
        one-step body records it with the run's completion, or its case, in the
        same transaction instead of one of its own. A run interrupted before then
        finds the write again as any re-run does: an upsert is sent again, a
        create's in-doubt mark (written before the call) makes the sender look
        the record up first.
        """
        if at_end and self.in_step:
            return self._write_at_end(
                step, system, object_type, canonical_id, action, send, after, audit_action, create
            )
        return _write_step(
            self.flow.name,
            self.subject,
            self.correlation_id,
            step,
            system,
            object_type,
            canonical_id,
            action,
            send,
            after,
            audit_action,
            create,
        )

    def _write_at_end(
        self,
        step: str,
        system: str,
        object_type: str,
        canonical_id: str,
        action: str,
        send: Callable[[bool], str],
        after: Any,
        audit_action: str | None,
        create: bool,
    ) -> str:
        first = True
        if create:
            first, prior = _begin_create(
                self.hub, system, object_type, canonical_id, action, self.correlation_id
            )
            if prior is not None:
                return prior
        external_id = send(first)
        self.journal.append(
            _Written(
                step, system, object_type, canonical_id, external_id, after, audit_action,
                None if create else action,
            )
        )  # fmt: skip
        self.known_ids[(system, object_type, canonical_id)] = external_id
        return external_id

    def flush(self, conn: sa.Connection) -> None:
        """Record the journal's writes (cross-references, saga steps, ledger, audit) in ``conn``."""
        if not self.journal:
            return
        record = repo.get_run(conn, self.flow.name, self.subject)
        steps = dict(record["steps"]) if record else {}
        for w in self.journal:
            _written(
                conn, w.system, w.object_type, w.canonical_id, w.external_id, self.correlation_id, w.upserted
            )
            steps[w.step] = {"system": w.system, "id": w.external_id, "at": w.at.isoformat()}
        repo.set_steps(conn, self.flow.name, self.subject, steps)
        audit.append_many(
            conn,
            [
                audit.Entry(
                    actor=f"flow:{self.flow.name}",
                    action=w.audit_action or f"{w.step}.written",
                    subject=self.subject,
                    correlation_id=self.correlation_id,
                    systems=[w.system],
                    after=w.after,
                    at=w.at,
                )
                for w in self.journal
            ],
        )
        if self.opened is not None:
            self.opened = {**self.opened, "steps": steps}
        self.journal = []

    def record(
        self,
        step: str,
        system: str,
        object_type: str,
        canonical_id: str,
        external_id: str,
        after: Any,
        audit_action: str | None = None,
    ) -> None:
        """Record a write (or a link to an existing record): cross-reference, saga step, ledger
        and audit, in one checkpointed transaction."""
        if self.in_step:
            with self.hub.engine.begin() as conn:
                _record(
                    conn,
                    self.flow.name,
                    self.subject,
                    step,
                    system,
                    object_type,
                    canonical_id,
                    external_id,
                    self.correlation_id,
                    after,
                    audit_action,
                )
            return
        self.hub.tx(
            _record,
            self.flow.name,
            self.subject,
            step,
            system,
            object_type,
            canonical_id,
            external_id,
            self.correlation_id,
            after,
            audit_action,
        )

    def refused(self, system: str, record: str, refusals: Sequence[Refusal]) -> None:
        """Record fields the hub did not write because ``system`` owns them: one audit
        entry naming each field, its owner and the value not propagated, and a count."""
        if not refusals:
            return

        def note(conn: sa.Connection) -> None:
            audit.append(
                conn,
                actor=f"flow:{self.flow.name}",
                action="ownership.refused",
                subject=self.subject,
                correlation_id=self.correlation_id,
                systems=[system],
                after={
                    "record": record,
                    "fields": [{"field": r.field, "owner": r.owner, "value": r.value} for r in refusals],
                },
            )
            conn.execute(
                sa.insert(kpi_sample).values(
                    kpi="ownership_refused_fields",
                    subject=f"{self.subject}:{system}:{record}:{uuid.uuid4().hex[:8]}",
                    value=float(len(refusals)),
                    labels={"system": system, "fields": [r.field for r in refusals]},
                    at=datetime.now(UTC),
                )
            )

        if self.in_step:
            with self.hub.engine.begin() as conn:
                note(conn)
        else:
            self.hub.tx(note)


@dataclass(frozen=True)
class _Written:
    """A write of a one-step run, recorded when the run ends."""

    step: str
    system: str
    object_type: str
    canonical_id: str
    external_id: str
    after: Any
    audit_action: str | None
    upserted: str | None  # the action of an upsert (no in-doubt mark was written)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


@DBOS.step()
def _write_step(
    flow: str,
    subject: str,
    correlation_id: str,
    step: str,
    system: str,
    object_type: str,
    canonical_id: str,
    action: str,
    send: Callable[[bool], str],
    after: Any,
    audit_action: str | None,
    create: bool,
) -> str:
    hub = current()
    first = True
    if create:
        first, prior = _begin_create(hub, system, object_type, canonical_id, action, correlation_id)
        if prior is not None:
            return prior  # recorded by an attempt whose checkpoint was lost
    external_id = send(first)
    # A re-run of this step (its checkpoint lost in a crash) records the same ids again: all upserts.
    with hub.engine.begin() as conn:
        _record(
            conn,
            flow,
            subject,
            step,
            system,
            object_type,
            canonical_id,
            external_id,
            correlation_id,
            after,
            audit_action,
            upserted=None if create else action,
        )
    return external_id


def _written(
    conn: sa.Connection,
    system: str,
    object_type: str,
    canonical_id: str,
    external_id: str,
    correlation_id: str,
    upserted: str | None,
) -> None:
    """A write's cross-reference, and its ledger row marked done (``upserted``: the action of a
    write never marked in doubt, whose row is written done at once)."""
    repo.put_xref(conn, system, object_type, canonical_id, external_id)
    key = write_key(system, object_type, canonical_id)
    if upserted is None:
        repo.ledger_done(conn, key, {"id": external_id})
    else:
        repo.ledger_applied(conn, key, system, upserted, correlation_id, {"id": external_id})


def _begin_create(
    hub: Hub, system: str, object_type: str, canonical_id: str, action: str, correlation_id: str
) -> tuple[bool, str | None]:
    """Mark a create in doubt before it is sent: (whether this is its first attempt, the id an
    earlier attempt recorded, if one did, so nothing need be sent)."""
    with hub.engine.begin() as conn:
        key = write_key(system, object_type, canonical_id)
        if repo.ledger_begin(conn, key, system, action, correlation_id):
            return True, None
        return False, repo.get_xref(conn, system, object_type, canonical_id)


def write_key(system: str, object_type: str, canonical_id: str) -> str:
    """Idempotency-ledger key of the hub's write of a record to a system."""
    return f"{system}:{object_type}:{canonical_id}"


def _record(
    conn: sa.Connection,
    flow: str,
    subject: str,
    step: str,
    system: str,
    object_type: str,
    canonical_id: str,
    external_id: str,
    correlation_id: str,
    after: Any,
    audit_action: str | None = None,
    *,
    upserted: str | None = None,
) -> None:
    """Record a write: cross-reference, saga step, ledger, audit. ``upserted`` names the action of
    a write that was never marked in doubt (an upsert), so its ledger row is written done at once."""
    _written(conn, system, object_type, canonical_id, external_id, correlation_id, upserted)
    repo.record_step(conn, flow, subject, step, system, external_id)
    audit.append(
        conn,
        actor=f"flow:{flow}",
        action=audit_action or f"{step}.written",
        subject=subject,
        correlation_id=correlation_id,
        systems=[system],
        after=after,
    )


# -- failures as cases --------------------------------------------------------------------
def as_case_error(exc: BaseException, flow: str) -> HubError:
    """Any failure of a run as the hub error its case carries (never a silent failure)."""
    if isinstance(exc, TransientError):
        attempts = exc.details.get("attempts")
        tried = f"gave up after {attempts} attempts" if attempts else "gave up after retrying"
        return HubError(
            f"{exc.message}; {tried}. Resubmit the case once {exc.system or 'the system'} is reachable.",
            code="vendor.retries_exhausted",
            system=exc.system,
            record=exc.record,
            owner=Owner.INTEGRATION,
            details={"last_error": exc.to_dict()},
        )
    if isinstance(exc, HubError):
        return exc
    name = type(exc).__name__
    if type(exc).__module__.startswith("dbos"):
        # e.g. DBOSMaxStepRetriesExceeded: the step's own failure is its cause.
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, BaseException) and cause is not exc:
            return as_case_error(cause, flow)
    return HubError(
        f"the {flow.replace('_', ' ')} flow stopped on an unexpected {name}: {exc}. The input is kept; "
        "fix the cause (often a value in the source record) and resubmit the case.",
        code="flow.unexpected_error",
        owner=Owner.INTEGRATION,
        details={"exception": name, "detail": str(exc)[:500]},
    )


def written_summary(steps: dict[str, Any], writes: tuple[str, ...], compensated: list[str]) -> str:
    """ "ERP customer 1001 and ERP project 1002 exist; PSA workspace not created" for a case."""
    # In the order they were written (a JSON column need not keep key order).
    ordered = sorted(steps.items(), key=lambda item: str(item[1].get("at") or ""))
    done = [f"{WHAT.get(s, s)} {v.get('id')}" for s, v in ordered if s not in compensated]
    parts = []
    if done:
        parts.append(" and ".join([", ".join(done[:-1]), done[-1]] if len(done) > 1 else done) + " exist")
    else:
        parts.append("nothing was written to " + ", ".join(writes))
    if compensated:
        parts.append("compensation removed " + ", ".join(WHAT.get(s, s) for s in compensated))
    return "; ".join(parts)


def _open(
    conn: sa.Connection,
    flow: str,
    subject: str,
    correlation_id: str,
    trigger: datetime | None,
    keys: list[tuple[str, str, str]],
) -> tuple[dict[str, Any], list[tuple[str, str, str, str]]]:
    return repo.start_run(conn, flow, subject, correlation_id, trigger), _read_known(conn, keys)


def _read_known(conn: sa.Connection, keys: list[tuple[str, str, str]]) -> list[tuple[str, str, str, str]]:
    """The cross-references found among ``keys``, as (system, object type, canonical id, id)."""
    return [(*key, value) for key, value in repo.get_xrefs(conn, keys).items()]


def _fail(
    conn: sa.Connection,
    flow: str,
    subject: str,
    correlation_id: str,
    error: dict[str, Any],
    payload: Any,
    compensated: list[str],
) -> int:
    case_id = cases.open_case(
        conn, error, flow=flow, subject=subject, correlation_id=correlation_id, payload=payload
    )
    for step in compensated:
        repo.forget_step(conn, flow, subject, step)
    repo.finish_run(conn, flow, subject, "compensated" if compensated else "exception", error)
    audit.append(
        conn,
        actor=f"flow:{flow}",
        action="flow.exception",
        subject=subject,
        correlation_id=correlation_id,
        systems=[],
        after={"case": case_id, "error": error, "compensated": compensated},
    )
    return case_id


def _complete(conn: sa.Connection, run: Run, summary: dict[str, Any]) -> None:
    flow = run.flow.name
    record = run.opened if run.opened is not None else repo.get_run(conn, flow, run.subject)
    if record is not None and record["status"] == "completed":
        return  # completed by an earlier attempt of the same step: nothing to add twice
    repo.finish_run(conn, flow, run.subject, "completed")
    if run.flow.latency_kpi and record is not None and record["trigger_time"] is not None:
        trigger = record["trigger_time"]
        trigger = trigger if trigger.tzinfo else trigger.replace(tzinfo=UTC)
        repo.insert_ignore(
            conn,
            kpi_sample,
            {
                "kpi": run.flow.latency_kpi,
                "subject": run.subject,
                "value": (datetime.now(UTC) - trigger).total_seconds(),
                "labels": {"legal_entity": summary.get("legal_entity")},
                "at": datetime.now(UTC),
            },
        )
    cases.close_cases(conn, flow, run.subject, {"by": f"flow:{flow}", "note": "flow completed"})
    if run.flow.on_complete is not None:
        run.flow.on_complete(conn, run, summary)
    audit.append(
        conn,
        actor=f"flow:{flow}",
        action="flow.completed",
        subject=run.subject,
        correlation_id=run.correlation_id,
        systems=list(run.flow.writes),
        after=summary,
    )


def emit(conn: sa.Connection, run: Run, event_type: str, payload: dict[str, Any]) -> None:
    """Write a business event to the outbox, in the caller's transaction."""
    event = BusinessEvent(
        type=event_type,
        source="quote2cash",
        subject=run.subject,
        correlation_id=run.correlation_id,
        causation_id=str(run.event.get("id") or "") or None,
        payload=payload,
    )
    conn.execute(
        sa.insert(outbox).values(
            event_id=event.id,
            event_type=event.type,
            subject=run.subject,
            correlation_id=run.correlation_id,
            envelope=event.model_dump(mode="json"),
            created_at=datetime.now(UTC),
        )
    )


# -- the runner ----------------------------------------------------------------------------
def _identity(event: dict[str, Any]) -> tuple[str, str]:
    subject = event.get("subject") if isinstance(event, dict) else None
    if not isinstance(subject, str) or not subject:
        subject = f"event/{event.get('id') if isinstance(event, dict) else 'unknown'}"
    corr = event.get("correlation_id") if isinstance(event, dict) else None
    return subject, str(corr or subject)


def _trigger_time(event: dict[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(event["time"]))
    except (KeyError, TypeError, ValueError):
        return None


@DBOS.workflow()
def run_flow(flow_name: str, event: dict[str, Any]) -> dict[str, Any]:
    """Run one flow for one event; always ends completed or with an exception case."""
    return _run_event(flow_name, event)


@DBOS.workflow()
def run_flow_batch(flow_name: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run one flow for each of a burst's events in turn, each as :func:`run_flow` would.

    A burst of runs costs the engine one workflow (enqueued, dequeued and
    recorded once) instead of one per event; each run keeps its own run record
    and case. A one-step flow's batch is one checkpoint too: every run in it
    records itself (its run record, its writes by cross-reference), so a batch
    recovered after a crash runs again from the top, the runs that completed
    return at once and the others go on from what they had written. Other
    flows replay the runs they finished from their checkpoints.
    """
    if FLOWS[flow_name].one_step:
        return _batch_step(flow_name, events)
    return _run_batch(flow_name, events)


@DBOS.step()
def _batch_step(flow_name: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return _run_batch(flow_name, events)


def _run_batch(flow_name: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    failure: BaseException | None = None
    ahead = _read_ahead(FLOWS[flow_name], events)
    for event in events:
        try:
            results.append(_run_event(flow_name, event, ahead.get(_identity(event)[0])))
        except Exception as exc:  # the runner's own bookkeeping failed: finish the others first
            log.error("flow.batch_run_failed", flow=flow_name, error=str(exc)[:300])
            failure = failure or exc
    if failure is not None:
        raise failure
    return results


def _read_ahead(flow: Flow, events: list[dict[str, Any]]) -> dict[str, Any]:
    """What a batch's runs need read in one go; nothing if that fails (each run reads its own)."""
    if flow.read_ahead is None or len(events) < 2:
        return {}
    try:
        return flow.read_ahead(current(), events)
    except Exception as exc:  # each run then reads for itself, and its failure is its case
        log.warning("flow.read_ahead_failed", flow=flow.name, error=str(exc)[:300])
        return {}


def _run_event(flow_name: str, event: dict[str, Any], ahead: Any = None) -> dict[str, Any]:
    hub = current()
    flow = FLOWS[flow_name]
    subject, corr = _identity(event)
    with correlated(corr, flow=flow_name, subject=subject):
        run = Run(flow, event, subject, corr, hub, ahead=ahead)
        if flow.one_step:
            try:
                summary = _body_step(flow_name, event, subject, corr, ahead)
            except Exception as exc:  # every failure ends in a case: nothing is left running
                return _stop(run, as_case_error(exc, flow_name))
            if summary is None:
                return {"status": "completed", "already": True}
        else:
            try:
                keys = flow.keys(run) if flow.keys is not None else []
            except Exception:  # an unreadable payload: the body reports it as a case
                keys = []
            record, known = hub.tx(_open, flow_name, subject, corr, _trigger_time(event), keys)
            if record["status"] == "completed":
                return {"status": "completed", "already": True}
            run.read_keys = frozenset(keys)
            run.known_ids = {(s, t, c): v for s, t, c, v in known}
            run.opened = record
            try:
                summary = flow.body(run)
            except Exception as exc:  # every failure ends in a case: nothing is left running
                return _stop(run, as_case_error(exc, flow_name))
            hub.tx(_complete, run, summary)
        log.info("flow.completed", **{k: v for k, v in summary.items() if isinstance(v, str | int)})
        return {"status": "completed", **summary}


@DBOS.step()
def _body_step(
    flow_name: str, event: dict[str, Any], subject: str, correlation_id: str, ahead: Any = None
) -> dict[str, Any] | None:
    """A one-step flow, run record included, as one checkpoint; None if the run had completed.

    The run opens, the body makes every call and records it, and the run
    completes, each in its own transaction. Re-run after a crash (the
    checkpoint lost), the step finds the run open again, or already
    completed, and every write it made by its cross-reference.
    """
    hub = current()
    flow = FLOWS[flow_name]
    run = Run(flow, event, subject, correlation_id, hub, in_step=True, ahead=ahead)
    try:
        keys = flow.keys(run) if flow.keys is not None else []
    except Exception:  # an unreadable payload: the body reports it as a case
        keys = []
    with hub.engine.begin() as conn:
        record, known = _open(conn, flow_name, subject, correlation_id, _trigger_time(event), keys)
    if record["status"] == "completed":
        return None
    run.read_keys = frozenset(keys)
    run.known_ids = {(s, t, c): v for s, t, c, v in known}
    run.opened = record
    try:
        summary = flow.body(run)
    except BaseException:
        if run.journal:  # what the run wrote is recorded before its case is opened
            with hub.engine.begin() as conn:
                run.flush(conn)
        raise
    with hub.engine.begin() as conn:
        run.flush(conn)
        _complete(conn, run, summary)
    return summary


def _stop(run: Run, error: HubError) -> dict[str, Any]:
    hub = run.hub
    flow = run.flow
    steps = dict((hub.tx(repo.get_run, flow.name, run.subject) or {}).get("steps") or {})
    compensated: list[str] = []
    compensation_note = ""
    if flow.compensate is not None and hub.config.policy(flow.name).compensate and steps:
        try:
            compensated = flow.compensate(run, steps)
        except Exception as exc:  # compensation failing must not lose the case
            compensation_note = f"; compensation failed ({as_case_error(exc, flow.name).message})"
    written = written_summary(steps, flow.writes, compensated) + compensation_note
    error.details.setdefault("written", {s: v.get("id") for s, v in steps.items() if s not in compensated})
    error.details["compensated"] = compensated
    data = error.to_dict()
    data["message"] = f"{error.message} — {written}."
    case_id = hub.tx(_fail, flow.name, run.subject, run.correlation_id, data, run.event, compensated)
    log.warning("flow.exception", code=error.code, case=case_id)
    if flow.report is not None:
        with contextlib.suppress(Exception):  # the case is recorded; telling the source is a courtesy
            told = HubError(
                data["message"], code=error.code, details={"written": written, "reason": error.message}
            )
            flow.report(run, told, case_id)
    return {"status": "exception", "case": case_id, "code": error.code, "compensated": compensated}


# -- the router -----------------------------------------------------------------------------
def workflow_id(flow: str, subject: str, attempt: int = 1) -> str:
    """DBOS workflow id of a run: one first run per flow and subject, then one per resubmission."""
    return f"{flow}:{subject}" + ("" if attempt == 1 else f":r{attempt}")


def start(flow: str, event: BusinessEvent | dict[str, Any], attempt: int = 1) -> str:
    """Enqueue one flow for one event; returns the workflow id (a duplicate start is harmless)."""
    data = event.model_dump(mode="json") if isinstance(event, BusinessEvent) else event
    subject, _ = _identity(data)
    wf = workflow_id(flow, subject, attempt)
    with SetWorkflowID(wf):
        current().queue(flow).enqueue(run_flow, flow, data)
    return wf


def flows_for(event_type: str) -> list[Flow]:
    """The flows an event type triggers."""
    return [f for f in FLOWS.values() if event_type in f.triggers]


def dispatch(event: BusinessEvent | dict[str, Any], attempt: int = 1) -> list[str]:
    """Start every flow the event triggers; returns their workflow ids."""
    data = event.model_dump(mode="json") if isinstance(event, BusinessEvent) else event
    return [start(f.name, data, attempt) for f in flows_for(str(data.get("type")))]


def dispatch_all(events: Sequence[BusinessEvent | dict[str, Any]]) -> list[str]:
    """Start every flow the events trigger, as :func:`dispatch` does for each; returns the workflow ids.

    A flow declared with a ``batch`` size that more than that many events
    trigger at once (a poll's burst) runs them in batches (:func:`run_flow_batch`),
    spread over enough workflows to keep the flow's concurrency busy; fewer run
    one workflow each.
    """
    by_flow: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        data = event.model_dump(mode="json") if isinstance(event, BusinessEvent) else event
        for f in flows_for(str(data.get("type"))):
            by_flow.setdefault(f.name, []).append(data)
    started: list[str] = []
    for name, burst in by_flow.items():
        size = FLOWS[name].batch
        if not size or len(burst) <= size:
            started += [start(name, data) for data in burst]
            continue
        for part in _batches(burst, size, current().config.policy(name).concurrency):
            started.append(start_batch(name, part))
    return started


def _batches(events: list[dict[str, Any]], size: int, concurrency: int) -> list[list[dict[str, Any]]]:
    """At most ``size`` events a batch, in a multiple of ``concurrency`` batches of even sizes."""
    count = -(-len(events) // size)
    count = -(-count // concurrency) * concurrency
    each = -(-len(events) // count)
    return [events[i : i + each] for i in range(0, len(events), each)]


def start_batch(flow: str, events: list[dict[str, Any]]) -> str:
    """Enqueue one batch of first runs of a flow; its id follows from the events' subjects, so
    dispatching the same batch again (after a crash before it was marked) is harmless."""
    subjects = "\n".join(_identity(e)[0] for e in events)
    wf = f"{flow}:batch:{hashlib.sha256(subjects.encode()).hexdigest()[:20]}"
    with SetWorkflowID(wf):
        current().queue(flow).enqueue(run_flow_batch, flow, events)
    return wf


__all__ = [
    "FLOWS",
    "BusinessRuleError",
    "Flow",
    "Run",
    "declare",
    "dispatch",
    "dispatch_all",
    "emit",
    "run_flow",
    "run_flow_batch",
    "start",
    "start_batch",
    "workflow_id",
    "write_key",
]
