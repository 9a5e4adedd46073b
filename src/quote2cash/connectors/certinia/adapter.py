"""Certinia PSA as the hub's PSA (:class:`quote2cash.ports.Psa`, and :class:`~quote2cash.ports.PsaBilling`),
over the Salesforce REST client.

Projects, milestones, tasks and resource requests the hub creates carry its
reference in ``Hub_Ext_Id__c`` and are written as upserts by that external id,
so a write whose answer was lost is simply sent again. A project is made from
the template (``pse__Is_Template__c``) of its billing type: the template's
milestones and tasks are copied, their dates moved by the project's start.
Delivered work (approved timecards by day, approved expenses) is read from
``SystemModstamp`` cursors (:mod:`.work`). A milestone is signed off for
billing when it is approved (``pse__Approved__c``, or a status the
``milestone_status_to_state`` map calls completed); billed to date goes to the
project's ``Billed_To_Date__c``. Templates, roles, regions and practices are
master data, reused for ``cache_seconds``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from quote2cash.connectors._cache import Cached
from quote2cash.connectors._http import ClientBacked, Limiter, RetryPolicy
from quote2cash.connectors.certinia.errors import item_error
from quote2cash.connectors.certinia.settings import CertiniaSettings
from quote2cash.connectors.certinia.work import FIELDS, SOBJECTS, pages, rows_of
from quote2cash.connectors.salesforce.adapter import parse_sf_datetime, soql_id, soql_literal
from quote2cash.connectors.salesforce.client import SalesforceClient, soql_string
from quote2cash.errors import BusinessRuleError, NotFoundError, Owner, VendorPayloadError
from quote2cash.mappings import Mapping
from quote2cash.model import Money, Project, ResourceRequest
from quote2cash.ports import (
    Capabilities,
    MilestoneRecord,
    PsaMasterData,
    PsaProjectRecord,
    WorkKind,
    WorkPage,
)

MAPPING = Path(__file__).with_name("mapping.yaml")
REF = "Hub_Ext_Id__c"
PROJECT = "pse__Proj__c"
MILESTONE = "pse__Milestone__c"
TASK = "pse__Project_Task__c"
REQUEST = "pse__Resource_Request__c"
#: Ids per ``IN (...)`` list, well inside SOQL's 100,000-character query limit.
IN_CHUNK = 200


def cursor_literal(since: str) -> str:
    """A change cursor (a ``SystemModstamp``, or the hub's epoch) as a SOQL datetime literal."""
    try:
        return soql_literal(datetime.fromisoformat(since))
    except ValueError:
        raise VendorPayloadError(
            f"the change cursor {since!r} is not a datetime", system="certinia", record=since
        ) from None


def _shift(value: Any, days: int) -> str | None:
    """A template's date or dateTime moved by ``days`` (None stays None)."""
    if not value:
        return None
    text = str(value)
    moved = date.fromisoformat(text[:10]) + timedelta(days=days)
    return moved.isoformat() + text[10:]


def _sf_id_of(value: str | None, prefix: str) -> str | None:
    """``value`` if it is a Salesforce id of the type with ``prefix`` (e.g. ``006``: Opportunity)."""
    if value and value.isalnum() and len(value) in (15, 18) and value.startswith(prefix):
        return value
    return None


class CertiniaPsa(ClientBacked[SalesforceClient]):
    """The PSA port over the Certinia package of one Salesforce org."""

    capabilities = Capabilities(bulk_size=200, upsert_by_external_id=True, external_references=True)

    def __init__(
        self, name: str, client: SalesforceClient, mapping: Mapping, settings: CertiniaSettings
    ) -> None:
        self.name = name
        self.client = client
        self.mapping = mapping
        self.settings = settings
        self.cache = Cached(settings.cache_seconds)

    # -- reading ---------------------------------------------------------------------
    def _query(self, soql: str, *, deleted: bool = False) -> Iterator[dict[str, Any]]:
        return self.client.query(soql, include_deleted=deleted)

    def _in(self, ids: Sequence[str]) -> Iterator[str]:
        """``(id, id, ...)`` lists of at most :data:`IN_CHUNK` ids."""
        for start in range(0, len(ids), IN_CHUNK):
            yield "(" + ", ".join(soql_id(i) for i in ids[start : start + IN_CHUNK]) + ")"

    # -- master data -----------------------------------------------------------------
    def _templates(self) -> list[dict[str, Any]]:
        return self.cache.get(
            "templates",
            lambda: list(
                self._query(
                    "SELECT Id, Name, pse__Billing_Type__c, pse__Project_Type__c, pse__Is_Billable__c, "
                    f"pse__Start_Date__c FROM {PROJECT} WHERE pse__Is_Template__c = true ORDER BY Name"
                )
            ),
        )

    def _named(self, sobject: str) -> dict[str, str]:
        """Regions or practices: name -> id."""
        return self.cache.get(
            sobject,
            lambda: {str(r["Name"]): str(r["Id"]) for r in self._query(f"SELECT Id, Name FROM {sobject}")},
        )

    def _roles(self) -> frozenset[str] | None:
        """The resource roles of the org's picklist (None: the picklist is not restricted)."""

        def read() -> frozenset[str] | None:
            path = f"/services/data/{self.client.api_version}/sobjects/{REQUEST}/describe"
            body = self.client.json(self.client.request("GET", path, record=REQUEST), REQUEST)
            for field in body.get("fields", []) if isinstance(body, dict) else []:
                if field.get("name") == "pse__Resource_Role__c":
                    values = {str(v["value"]) for v in field.get("picklistValues") or [] if v.get("active")}
                    return frozenset(values) or None
            raise VendorPayloadError(
                f"{REQUEST} has no pse__Resource_Role__c field; is the Certinia package installed?",
                system=self.name,
                record=REQUEST,
            )

        return self.cache.get("roles", read)

    def _lookup(self, sobject: str, name: str | None, what: str, project: Project) -> str | None:
        if not name:
            return None
        found = self._named(sobject).get(name)
        if found is None:
            self.cache.forget(sobject)  # created since the last read?
            found = self._named(sobject).get(name)
        if found is None:
            raise BusinessRuleError(
                f"project '{project.name}' is in the {what} '{name}', which the PSA does not have; "
                f"add the {what} in Certinia ({sobject}) or correct the deal",
                code=f"psa.{what}_unknown",
                owner=Owner.PMO,
                system=self.name,
                record=project.source_id,
            )
        return found

    def _template_for(self, project: Project) -> dict[str, Any]:
        billing_type = self.mapping.value("billing_model_to_billing_type", project.billing_model.value)
        for attempt in (1, 2):
            matches = [t for t in self._templates() if t.get("pse__Billing_Type__c") == billing_type]
            if matches:
                return matches[0]
            if attempt == 1:
                self.cache.forget("templates")  # created since the last read?
        raise BusinessRuleError(
            f"the PSA has no project template with billing type '{billing_type}'; create one in Certinia "
            "(a project with Is Template checked) or change the billing_model_to_billing_type value map",
            code="psa.template_missing",
            owner=Owner.PMO,
            system=self.name,
            record=project.source_id,
        )

    # -- projects --------------------------------------------------------------------
    def _find(self, reference: str) -> str | None:
        rows = list(self._query(f"SELECT Id FROM {PROJECT} WHERE {REF} = {soql_string(reference)}"))
        return str(rows[0]["Id"]) if rows else None

    def ensure_project(self, project: Project, reference: str, *, known_absent: bool = False) -> str:
        """Find the project by the hub's reference, or create it from its billing type's template.

        The project and every milestone and task copied from the template are
        upserts by reference, so a repeat after a lost answer writes nothing
        twice; a found project gets the template's records it is still missing.
        """
        template = self._template_for(project)
        if not known_absent:
            found = self._find(reference)
            if found is not None:
                self._copy_template(template, found, project, reference, known_empty=False)
                return found
        link = self.settings.link_crm_records
        fields = self.mapping.apply(
            "project_to_certinia",
            project.model_dump(mode="json"),
            {
                "bookings": float(project.budget.amount) if project.budget is not None else None,
                "billing_type": template.get("pse__Billing_Type__c"),
                "project_type": template.get("pse__Project_Type__c"),
                "billable": bool(template.get("pse__Is_Billable__c")),
                "region": self._lookup("pse__Region__c", project.dimensions.region, "region", project),
                "practice": self._lookup(
                    "pse__Practice__c", project.dimensions.practice, "practice", project
                ),
                "account": _sf_id_of(project.customer_id, "001") if link else None,
                "opportunity": _sf_id_of(project.opportunity_id, "006") if link else None,
            },
        )
        project_id, _ = self.client.upsert(PROJECT, REF, reference, fields)
        self._copy_template(template, project_id, project, reference, known_empty=True)
        return project_id

    def _copy_template(
        self,
        template: dict[str, Any],
        project_id: str,
        project: Project,
        reference: str,
        *,
        known_empty: bool,
    ) -> None:
        """Copy the template's milestones, then its tasks (pointing at the copied milestones)."""
        days = 0
        if project.start_date is not None and template.get("pse__Start_Date__c"):
            days = (project.start_date - date.fromisoformat(str(template["pse__Start_Date__c"])[:10])).days
        tid = soql_id(str(template["Id"]))
        milestones = {
            f"{reference}/{m['Id']}": {
                "Name": m["Name"],
                "pse__Project__c": project_id,
                "pse__Target_Date__c": _shift(m.get("pse__Target_Date__c"), days),
                "pse__Milestone_Amount__c": m.get("pse__Milestone_Amount__c"),
                "pse__Description__c": m.get("pse__Description__c"),
                "pse__Status__c": "Planned",
            }
            for m in self._query(
                "SELECT Id, Name, pse__Target_Date__c, pse__Milestone_Amount__c, pse__Description__c "
                f"FROM {MILESTONE} WHERE pse__Project__c = {tid} ORDER BY pse__Target_Date__c, Name"
            )
        }
        copied = self._ensure_children(MILESTONE, project_id, milestones, known_empty=known_empty)
        tasks = {
            f"{reference}/{t['Id']}": {
                "Name": t["Name"],
                "pse__Project__c": project_id,
                "pse__Milestone__c": copied.get(f"{reference}/{t['pse__Milestone__c']}")
                if t.get("pse__Milestone__c")
                else None,
                "pse__Start_Date_Time__c": _shift(t.get("pse__Start_Date_Time__c"), days),
                "pse__End_Date_Time__c": _shift(t.get("pse__End_Date_Time__c"), days),
                "pse__Estimated_Hours__c": t.get("pse__Estimated_Hours__c"),
                "pse__Status__c": "Planned",
            }
            for t in self._query(
                "SELECT Id, Name, pse__Milestone__c, pse__Start_Date_Time__c, pse__End_Date_Time__c, "
                f"pse__Estimated_Hours__c FROM {TASK} WHERE pse__Project__c = {tid} ORDER BY Name"
            )
        }
        self._ensure_children(TASK, project_id, tasks, known_empty=known_empty)

    def _references(self, sobject: str, project_id: str) -> dict[str, str]:
        """The hub's references of a project's records of a type: reference -> id."""
        soql = f"SELECT Id, {REF} FROM {sobject} WHERE pse__Project__c = {soql_id(project_id)}"
        return {str(r[REF]): str(r["Id"]) for r in self._query(soql) if r.get(REF)}

    def _ensure_children(
        self, sobject: str, project_id: str, wanted: dict[str, dict[str, Any]], *, known_empty: bool
    ) -> dict[str, str]:
        """Upsert the records (by reference) the project does not have yet; returns reference -> id.

        A record refused because an earlier, unanswered attempt already wrote it
        (a repeat cannot set a master-detail again) is found by reading back.
        """
        have = {} if known_empty else self._references(sobject, project_id)
        missing = [(ref, body) for ref, body in wanted.items() if ref not in have]
        if not missing:
            return have
        results = self.client.upsert_many(
            sobject,
            REF,
            [{**{k: v for k, v in body.items() if v is not None}, REF: ref} for ref, body in missing],
        )
        failed = []
        for (ref, _), result in zip(missing, results, strict=True):
            if result.success and result.id:
                have[ref] = result.id
            else:
                failed.append((ref, result))
        if failed:
            have.update(self._references(sobject, project_id))
            still = [(ref, result) for ref, result in failed if ref not in have]
            if still:
                raise item_error(still[0][1], f"{sobject}.{REF}={still[0][0]}")
        return have

    def ensure_staffing(
        self, psa_project_id: str, requests: Sequence[ResourceRequest], *, known_empty: bool = False
    ) -> int:
        """Raise the resource requests (by role and start date) the project does not have yet.

        Each carries its reference in ``Hub_Ext_Id__c``; requests staffing has
        already moved on are left as they are.
        """
        roles = self._roles()
        if roles is not None and any(r.role not in roles for r in requests):
            self.cache.forget("roles")
            roles = self._roles()
        unknown = sorted({r.role for r in requests if roles is not None and r.role not in roles})
        if unknown:
            raise BusinessRuleError(
                f"the deal asks for the role(s) {', '.join(repr(u) for u in unknown)}, which the PSA does not "
                "know; add the resource role in Certinia or correct the opportunity line",
                code="psa.role_unknown",
                owner=Owner.PMO,
                system=self.name,
                record=psa_project_id,
            )
        wanted = {
            (r.reference or f"{psa_project_id}/{r.role}/{r.start_date}"): self.mapping.apply(
                "resource_request_to_certinia",
                r.model_dump(mode="json"),
                {
                    "project": psa_project_id,
                    "end_date": (r.end_date or r.start_date).isoformat(),
                    "hours": float(r.hours),
                },
            )
            for r in requests
        }
        self._ensure_children(REQUEST, psa_project_id, wanted, known_empty=known_empty)
        return len(requests)

    def delete_project(self, psa_project_id: str) -> None:
        """Delete the project's resource requests and the project (its milestones and tasks go
        with it); already gone is what was wanted."""
        for request_id in self._references(REQUEST, psa_project_id).values():
            with contextlib.suppress(NotFoundError):
                self.client.delete(REQUEST, request_id)
        try:
            self.client.delete(PROJECT, psa_project_id)
        except NotFoundError:
            return

    # -- delivered work --------------------------------------------------------------
    def _state(self, milestone: dict[str, Any]) -> str:
        """The hub's state of a milestone's ``pse__Status__c`` (the mapping's ``milestone_status_to_state``)."""
        status = str(milestone.get("pse__Status__c") or "")
        return self.mapping.spec.value_maps.get("milestone_status_to_state", {}).get(status, status.lower())

    def master_data(self, kind: WorkKind, workspace_ids: set[str]) -> PsaMasterData:
        """Milestones (the tasks time is booked on) of the hub's projects, and each resource's role and name."""
        tasks: dict[str, tuple[str, str]] = {}
        if kind == "time" and workspace_ids:
            for ids in self._in(sorted(workspace_ids)):
                for m in self._query(
                    "SELECT Id, pse__Project__c, pse__Status__c, pse__Closed_for_Time_Entry__c "
                    f"FROM {MILESTONE} WHERE pse__Project__c IN {ids}"
                ):
                    state = "closed" if m.get("pse__Closed_for_Time_Entry__c") else self._state(m)
                    tasks[str(m["Id"])] = (str(m["pse__Project__c"]), state)
        roles, names = {}, {}
        for contact in self._query(
            "SELECT Id, Name, pse__Resource_Role__c FROM Contact WHERE pse__Is_Resource__c = true"
        ):
            roles[str(contact["Id"])] = str(contact.get("pse__Resource_Role__c") or "")
            names[str(contact["Id"])] = str(contact.get("Name") or f"resource {contact['Id']}")
        return PsaMasterData(task_states=tasks, roles=roles, names=names)

    def work_pages(self, kind: WorkKind, since: str) -> Iterator[WorkPage]:
        """Every change after the cursor (approvals, edits, deletions), oldest first, page by page."""
        soql = (
            f"SELECT {', '.join(FIELDS[kind])} FROM {SOBJECTS[kind]} "
            f"WHERE SystemModstamp > {cursor_literal(since)} ORDER BY SystemModstamp ASC, Id ASC"
        )
        yield from pages(kind, self._query(soql, deleted=True))

    def approved_work(self, kind: WorkKind, start: date, end: date) -> Iterator[dict[str, Any]]:
        """Approved work dated in the range, as ``{id, kind, workspace_id, user_id, billable, minutes,
        amount_minor, currency}`` (a timecard by day)."""
        if kind == "time":
            where = f"pse__Start_Date__c <= {end.isoformat()} AND pse__End_Date__c >= {start.isoformat()}"
        else:
            where = (
                f"pse__Expense_Date__c >= {start.isoformat()} AND pse__Expense_Date__c <= {end.isoformat()}"
            )
        soql = f"SELECT {', '.join(FIELDS[kind])} FROM {SOBJECTS[kind]} WHERE pse__Approved__c = true AND {where}"
        for raw in self._query(soql):
            for row in rows_of(kind, raw):
                if row["deleted"] or not start <= row["work_date"] <= end:
                    continue
                yield {
                    "id": row["source_id"],
                    "kind": kind,
                    "workspace_id": row["workspace_id"],
                    "user_id": row["user_id"],
                    "billable": row["billable"],
                    "minutes": row["minutes"],
                    "amount_minor": row["amount_minor"],
                    "currency": row["currency"],
                }

    # -- billing (F6, F8) ----------------------------------------------------------------
    def milestones(self, workspace_ids: set[str]) -> list[MilestoneRecord]:
        """Milestones of these projects; ``completed`` is the milestone's approval (its sign-off),
        dated by the change stamp of the record as approved."""
        out = []
        for ids in self._in(sorted(workspace_ids)):
            for m in self._query(
                "SELECT Id, Name, pse__Project__c, pse__Target_Date__c, pse__Status__c, pse__Approved__c, "
                f"SystemModstamp FROM {MILESTONE} WHERE pse__Project__c IN {ids}"
            ):
                completed = bool(m.get("pse__Approved__c")) or self._state(m) == "completed"
                due = m.get("pse__Target_Date__c")
                out.append(
                    MilestoneRecord(
                        id=str(m["Id"]),
                        workspace_id=str(m["pse__Project__c"]),
                        name=str(m.get("Name") or f"milestone {m['Id']}"),
                        due_date=date.fromisoformat(str(due)[:10]) if due else None,
                        completed=completed,
                        completed_at=parse_sf_datetime(str(m["SystemModstamp"])) if completed else None,
                    )
                )
        return sorted(out, key=lambda m: (m.workspace_id, m.due_date or date.max, m.name, m.id))

    def write_back_billed(self, psa_project_id: str, billed: Money) -> None:
        """Billed to date on the project (``Billed_To_Date__c``, an idempotent update), in the
        project's currency: an amount in another currency is refused, never relabelled."""
        record = self.client.get(PROJECT, psa_project_id)
        currency = record.get("CurrencyIsoCode")
        if currency and currency != billed.currency:
            raise BusinessRuleError(
                f"project {record.get('Name') or psa_project_id} is in {currency}, but the billed-to-date "
                f"amount is in {billed.currency}; it was not written",
                code="psa.currency_mismatch",
                owner=Owner.FINANCE,
                system=self.name,
                record=psa_project_id,
            )
        fields = self.mapping.apply("billed_to_date_to_certinia", {"amount": float(billed.amount)})
        self.client.update(PROJECT, psa_project_id, fields)

    def projects(self) -> list[PsaProjectRecord]:
        """Projects (templates aside) with the hub's reference, and those without one."""
        return [
            PsaProjectRecord(
                id=str(p["Id"]), reference=str(p[REF]) if p.get(REF) else None, name=str(p.get("Name") or "")
            )
            for p in self._query(f"SELECT Id, Name, {REF} FROM {PROJECT} WHERE pse__Is_Template__c = false")
        ]

    def close_milestone(self, milestone_id: str) -> None:
        """Close a milestone for time entry (the demo's project manager closes finished work)."""
        self.client.update(MILESTONE, milestone_id, {"pse__Closed_for_Time_Entry__c": True})


def build(
    name: str, settings: CertiniaSettings, transport: httpx.BaseTransport | None, retry: RetryPolicy
) -> CertiniaPsa:
    """The adapter of a configured Certinia system."""
    client = SalesforceClient(
        settings.base_url,
        settings.client_id,
        settings.secret("client_secret"),
        api_version=settings.api_version,
        transport=transport,
        timeout=settings.timeout_seconds,
        retry=retry,
        limiter=Limiter(settings.limits.concurrency, settings.limits.rate_per_second),
    )
    client.system = "certinia"  # its errors, retries and logs name the PSA, not the CRM
    return CertiniaPsa(name, client, Mapping.load(settings.mapping or MAPPING), settings)
