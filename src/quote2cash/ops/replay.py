"""Replay with a dry-run diff: what each system would receive if a case's flow ran
again now, from its kept source payload and the current mapping, field by field,
next to what the hub sent the last time. Nothing is written anywhere.

The dry run reads what the flow would read (the deal from the CRM, the ERP's
master data) and maps the records with the connectors' own mapping files; the
values the flow only learns by writing (the ids a create returns) are shown as
``(assigned on write)``. Only lead-to-project cases have a dry run today; a
time or expense entry goes back to validation in the next posting run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from quote2cash.errors import HubError, NotFoundError, UsageError
from quote2cash.flows.customer_sync import customer_ref
from quote2cash.flows.lead_to_project import FLOW as LEAD_TO_PROJECT
from quote2cash.flows.lead_to_project import project_key
from quote2cash.mappings import Mapping
from quote2cash.model import FinancialDimensions, Project
from quote2cash.ops import cases as case_service
from quote2cash.runtime.hub import Hub
from quote2cash.store import audit, repo
from quote2cash.store import cases as case_store

ASSIGNED = "(assigned on write)"


@dataclass(frozen=True)
class FieldChange:
    """One field a system would receive: what the hub sent last time, what it would send now."""

    field: str
    before: Any
    after: Any

    @property
    def changed(self) -> bool:
        """Whether the value differs from the last one sent."""
        return bool(self.before != self.after)


@dataclass(frozen=True)
class SystemDiff:
    """What one system would receive for one record.

    Attributes:
        system: the system's name in the configuration.
        record: what is written (``customer``, ``project``, ``workspace``, ``deal status``).
        action: ``create``, ``update``, ``skip`` (already written, not sent again) or ``fail``.
        fields: field by field, in the mapping's order.
        error: why the write would fail (``HubError.to_dict()``), if it would.
        mapping: the mapping (``name@version``) that produced the fields.
    """

    system: str
    record: str
    action: str
    fields: list[FieldChange] = field(default_factory=list)
    error: dict[str, Any] | None = None
    mapping: str | None = None


@dataclass(frozen=True)
class ReplayDiff:
    """The dry run of one case: per system, and whether the run would stop again."""

    case_id: int
    flow: str
    supported: bool
    systems: list[SystemDiff] = field(default_factory=list)
    blocking: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""

    @property
    def would_succeed(self) -> bool:
        """Whether nothing found in the dry run would stop the flow."""
        return self.supported and not self.blocking and all(s.error is None for s in self.systems)


def _fields(mapped: dict[str, Any], before: dict[str, Any] | None) -> list[FieldChange]:
    names = list(mapped) + [k for k in (before or {}) if k not in mapped]
    return [FieldChange(n, (before or {}).get(n), mapped.get(n)) for n in names]


def _mapping_of(adapter: object) -> Mapping | None:
    mapping = getattr(adapter, "mapping", None)
    return mapping if isinstance(mapping, Mapping) else None


def _record_name(mapping: Mapping, prefix: str) -> str | None:
    return next((name for name in mapping.spec.records if name.startswith(prefix)), None)


def _apply(
    system: str,
    what: str,
    action: str,
    mapping: Mapping | None,
    prefix: str,
    source: Any,
    ctx: Any,
    sent: Any,
) -> SystemDiff:
    """Map one record with the system's mapping; a mapping that refuses it is the diff's error."""
    if mapping is None or (record := _record_name(mapping, prefix)) is None:
        return SystemDiff(system, what, action, note_fields(source), None, None)
    previous: dict[str, Any] | None = None
    try:
        if isinstance(sent, dict):
            try:
                previous = mapping.apply(record, sent, ctx)
            except HubError:
                previous = None
        mapped = mapping.apply(record, source, ctx)
    except HubError as exc:
        return SystemDiff(system, what, "fail", _fields({}, previous), exc.to_dict(), mapping.label)
    return SystemDiff(system, what, action, _fields(mapped, previous), None, mapping.label)


def note_fields(source: dict[str, Any]) -> list[FieldChange]:
    """Canonical fields, for a system whose connector has no mapping file."""
    return [FieldChange(k, None, v) for k, v in source.items() if not isinstance(v, dict | list)]


def _last_sent(hub: Hub, subject: str, action: str) -> dict[str, Any] | None:
    for entry in hub.read(audit.entries, subject=subject, limit=500):
        if entry["action"] == action and isinstance(entry.get("after"), dict):
            after: dict[str, Any] = entry["after"]
            return after
    return None


def dry_run(hub: Hub, case_id: int) -> ReplayDiff:
    """What replaying a case would send to each system, without sending anything."""
    case = hub.read(case_store.get_case, case_id)
    if case is None:
        raise NotFoundError(f"there is no exception case {case_id}", code="case.not_found")
    event = case["payload"]
    if case["flow"] != LEAD_TO_PROJECT or not isinstance(event, dict):
        return ReplayDiff(
            case_id,
            case["flow"],
            False,
            note="no dry run for this flow: resubmitting sends the entry back to validation in the next run",
        )
    kept = event.get("payload")
    record: dict[str, Any] = kept if isinstance(kept, dict) else {}
    opp_id = str(record.get("Id") or str(case["subject"]).partition("/")[2])
    try:
        deal = hub.crm(LEAD_TO_PROJECT).get_deal(opp_id)
    except HubError as exc:
        return ReplayDiff(
            case_id, case["flow"], True, blocking=[exc.to_dict()], note="the deal cannot be read"
        )
    opportunity, customer = deal.opportunity, deal.customer
    legal_entity = opportunity.legal_entity or customer.legal_entity or ""
    start = opportunity.start_date or opportunity.close_date
    erp_name = hub.config.erp_for(legal_entity, start)
    erp = hub.erp(erp_name)
    master = erp.master_data()
    entity = hub.legal_entities.get(legal_entity)
    currency = opportunity.currency or customer.currency or (entity.base_currency if entity else "USD")
    subsidiary = hub.subsidiary_of.get(legal_entity)
    blocking: list[dict[str, Any]] = []

    def block(code: str, message: str) -> None:
        blocking.append({"code": code, "message": message})

    if not (opportunity.is_won and opportunity.terms_approved):
        block(
            "deal.not_closed_won", f"opportunity '{opportunity.name}' is not closed-won with approved terms"
        )
    if opportunity.billing_model is None:
        block("deal.malformed", f"opportunity '{opportunity.name}' has no billing model")
    if entity is None:
        block("customer.unknown_legal_entity", f"the deal names no known legal entity ({legal_entity!r})")
    elif currency not in {entity.base_currency, *entity.allowed_currencies}:
        block("deal.currency_not_allowed", f"{entity.code} does not invoice in {currency}")
    if subsidiary is not None and master.subsidiaries.get(subsidiary) is False:
        block("customer.subsidiary_inactive", f"ERP subsidiary {subsidiary} of {legal_entity} is inactive")

    ref = customer_ref(customer.source_id, legal_entity)
    known_customer = hub.read(repo.get_xref, erp_name, "customer", ref)
    known_job = hub.read(repo.get_xref, erp_name, "job", opp_id)
    psa_name = hub.config.system_for("psa", LEAD_TO_PROJECT)
    psa = hub.psa(LEAD_TO_PROJECT)
    known_ws = hub.read(repo.get_xref, psa_name, "workspace", opp_id)
    terms = customer.payment_terms
    systems = [
        _apply(
            erp_name,
            "customer",
            "skip" if known_customer else "create",
            _mapping_of(erp),
            "customer_to_",
            customer.model_copy(update={"legal_entity": legal_entity, "currency": currency}).model_dump(
                mode="json"
            ),
            {
                "subsidiary": subsidiary,
                "currency": master.currencies.get(currency),
                "terms": master.terms.get(terms or ""),
                "external_id": ref,
            },
            None,
        )
    ]
    department = master.departments.get(opportunity.practice or "")
    if opportunity.billing_model is not None:
        project = Project(
            source_system=customer.source_system,
            source_id=opp_id,
            customer_id=customer.source_id,
            opportunity_id=opp_id,
            name=opportunity.name,
            billing_model=opportunity.billing_model,
            currency=currency,
            start_date=start,
            end_date=opportunity.end_date,
            budget=opportunity.amount
            if opportunity.amount and opportunity.amount.currency == currency
            else None,
            dimensions=FinancialDimensions(
                legal_entity=legal_entity,
                subsidiary=subsidiary,
                practice=opportunity.practice,
                department=department,
                region=customer.region,
            ),
        ).model_dump(mode="json")
        subject = str(case["subject"])
        erp_map, psa_map = _mapping_of(erp), _mapping_of(psa)
        region_class = None
        if erp_map is not None and customer.region and "region_to_class" in erp_map.spec.value_maps:
            region_class = master.classes.get(
                erp_map.spec.value_maps["region_to_class"].get(customer.region, "")
            )
        systems.append(
            _apply(
                erp_name,
                "project",
                "update" if known_job else "create",
                erp_map,
                "project_to_",
                project,
                {
                    "customer": known_customer or ASSIGNED,
                    "subsidiary": subsidiary,
                    "currency": master.currencies.get(currency),
                    "department": department,
                    "class": region_class,
                    "external_id": project_key(opp_id),
                },
                _last_sent(hub, subject, "erp_project.written"),
            )
        )
        template = None
        if psa_map is not None and "billing_model_to_template" in psa_map.spec.value_maps:
            template = psa_map.spec.value_maps["billing_model_to_template"].get(
                opportunity.billing_model.value
            )
        budget = project.get("budget") or {}
        systems.append(
            _apply(
                psa_name,
                "workspace",
                "skip" if known_ws else "create",
                psa_map,
                "project_to_",
                project,
                {
                    "template": template,
                    "price_in_cents": round(float(budget.get("amount") or 0) * 100),
                    "description": opportunity.name
                    + f" — {opportunity.billing_model.value.replace('_', ' ')}",
                },
                _last_sent(hub, subject, "psa_workspace.written"),
            )
        )
    crm_name = hub.config.system_for("crm", LEAD_TO_PROJECT)
    systems.append(
        SystemDiff(
            crm_name,
            "deal status",
            "update",
            [
                FieldChange("status", None, "Project created"),
                FieldChange("erp_customer_id", deal.erp_customer_id, known_customer or ASSIGNED),
                FieldChange("erp_project_id", None, known_job or ASSIGNED),
                FieldChange("psa_project_id", None, known_ws or ASSIGNED),
            ],
        )
    )
    return ReplayDiff(case_id, case["flow"], True, systems, blocking)


def replay(hub: Hub, case_id: int, *, actor: str) -> str | None:
    """Re-run the case's flow from its kept source payload with the current mapping."""
    case = hub.read(case_store.get_case, case_id)
    if case is None:
        raise NotFoundError(f"there is no exception case {case_id}", code="case.not_found")
    if case["status"] not in case_store.OPEN_STATES:
        raise UsageError(
            f"case {case_id} is {case['status']}; only open cases can be replayed", code="case.not_open"
        )
    return case_service.resubmit(hub, case_id, actor=actor)


def as_dict(diff: ReplayDiff) -> dict[str, Any]:
    """Plain data for the API and the console."""
    return {
        "case_id": diff.case_id,
        "flow": diff.flow,
        "supported": diff.supported,
        "would_succeed": diff.would_succeed,
        "note": diff.note,
        "blocking": diff.blocking,
        "systems": [
            {
                "system": s.system,
                "record": s.record,
                "action": s.action,
                "mapping": s.mapping,
                "error": s.error,
                "fields": [
                    {"field": f.field, "before": f.before, "after": f.after, "changed": f.changed}
                    for f in s.fields
                ],
            }
            for s in diff.systems
        ],
    }


__all__ = ["FieldChange", "ReplayDiff", "SystemDiff", "as_dict", "dry_run", "replay"]
