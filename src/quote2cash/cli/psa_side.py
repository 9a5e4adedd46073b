"""The PSA side of a stack: its sandbox, and what the demo does in it as the firm's people.

Each PSA a stack can have is one class with the same few methods (:class:`PsaSide`):
load the firm's catalogue, the hub configuration that points at it, the
weather it gets, a month of approved work, milestone sign-offs and extra
time for billing, and the counts the demo's summary shows. The demo calls
these and never asks which PSA it has.

- :class:`KantataSide`: a Kantata sandbox of its own.
- :class:`CertiniaSide`: the ``pse__`` objects of a Salesforce org: the CRM's
  own org when the CRM is Salesforce (one sandbox serves both), otherwise a
  Salesforce org of its own.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, ClassVar, Protocol

from quote2cash.sandbox.firm import Firm, rate_cards
from quote2cash.sandbox.hubspot import HubSpotSandbox
from quote2cash.sandbox.kantata import KantataSandbox
from quote2cash.sandbox.salesforce import SalesforceSandbox
from quote2cash.sandbox.salesforce import certinia as pse
from quote2cash.sandbox.salesforce import timecards as certinia_month
from quote2cash.sandbox.seed import certinia_system, kantata_system, seed_certinia, seed_kantata
from quote2cash.sandbox.timesheets import seed_month as kantata_month


@dataclass(frozen=True)
class SeededWork:
    """A month of approved work added to the PSA.

    ``time_entries`` counts what the hub posts one by one (Kantata's time
    entries, Certinia's timecard days); ``described`` says it as the PSA holds it.
    """

    time_entries: int
    expenses: int
    described: str


class PsaSide(Protocol):
    """The PSA of a stack, as the demo drives it."""

    kind: ClassVar[str]

    @property
    def box(self) -> KantataSandbox | SalesforceSandbox:
        """The sandbox serving the PSA."""
        ...

    @property
    def intro(self) -> str:
        """A line for the demo's opening about where the PSA lives ("" when there is nothing to say)."""
        ...

    def seed(self, firm: Firm) -> None:
        """Load the firm's PSA catalogue: roles or resources, templates."""

    def system(self) -> dict[str, Any]:
        """The hub configuration of this PSA (``systems.psa``)."""
        ...

    def inject_faults(self) -> None:
        """Real-world weather on the PSA: throttling, and timeouts on project writes that did land."""

    def projects(self) -> int:
        """Projects in the PSA."""
        ...

    def references(self) -> list[str]:
        """The hub's reference on every project carrying one (a reference twice is a duplicate)."""
        ...

    def staffing_requests(self) -> int:
        """Staffing (resource) requests in the PSA."""
        ...

    def seed_month(self, year: int, month: int, *, seed: int, projects: Collection[str]) -> SeededWork:
        """A generated month of approved time and expenses on these projects, bad entries planted."""
        ...

    def sign_off_first_milestones(self, projects: Iterable[str]) -> int:
        """Sign off the first milestone of each project; returns how many were."""
        ...

    def add_person(self, name: str, email: str, role: str) -> str:
        """Someone of the firm who can book time, with a role; returns the PSA's id."""
        ...

    def book_time(
        self, project: str, role: str, hours: Sequence[tuple[date, int]], rate_minor: int, currency: str
    ) -> bool:
        """Approved billable time by someone in ``role``: (day, minutes) at ``rate_minor`` an hour.

        False (nothing booked) when the PSA has nobody in the role or the project no task for it.
        """
        ...


def open_psa(kind: str, folder: Path, crm: SalesforceSandbox | HubSpotSandbox, *, seed: int = 0) -> PsaSide:
    """The PSA side of a stack whose PSA is ``kind``, its sandbox in ``folder`` unless it is the CRM's."""
    if kind == CertiniaSide.kind:
        if isinstance(crm, SalesforceSandbox):
            return CertiniaSide(crm, crm_org=True)
        return CertiniaSide(SalesforceSandbox(folder / "certinia.sqlite", seed=seed), crm_org=False)
    return KantataSide(KantataSandbox(folder / "kantata.sqlite", seed=seed))


# -- Kantata ------------------------------------------------------------------------------------
@dataclass
class KantataSide:
    """Kantata: workspaces from templates, staffing requests, time entries and expenses."""

    box: KantataSandbox
    kind: ClassVar[str] = "kantata"
    intro: ClassVar[str] = ""

    def seed(self, firm: Firm) -> None:
        """Roles, the firm's consultants and a project template per billing model."""
        seed_kantata(firm, self.box)

    def system(self) -> dict[str, Any]:
        """``systems.psa`` for the Kantata sandbox."""
        return kantata_system(self.box.url)

    def inject_faults(self) -> None:
        """Throttling, and two workspace creates whose answer comes after the client gave up."""
        self.box.inject("throttle", probability=0.04, retry_after=0.05)
        self.box.inject("timeout_after_commit", method="POST", path=r"/workspaces\.json$", count=2, seconds=6)

    def projects(self) -> int:
        """Workspaces."""
        return len(self.box.records("workspaces"))

    def references(self) -> list[str]:
        """The opportunity reference of every workspace the hub created."""
        return [
            str(r.get("service_model_ref"))
            for r in self.box.records("external_references")
            if r.get("service_name") == "quote2cash"
        ]

    def staffing_requests(self) -> int:
        """Resource requests."""
        return len(self.box.records("resource_requests"))

    def seed_month(self, year: int, month: int, *, seed: int, projects: Collection[str]) -> SeededWork:
        """Time entries (two a consultant a day) and expenses, approved."""
        work = kantata_month(self.box, rate_cards(), year, month, seed=seed, workspaces=projects)
        described = f"{len(work.time_entries)} time entries and {len(work.expenses)} expenses"
        return SeededWork(len(work.time_entries), len(work.expenses), described)

    def sign_off_first_milestones(self, projects: Iterable[str]) -> int:
        """Complete the first milestone story (by title) of each workspace."""
        done = 0
        for workspace in projects:
            stones = sorted(
                (
                    s
                    for s in self.box.records("stories")
                    if str(s["workspace_id"]) == workspace and s["story_type"] == "milestone"
                ),
                key=lambda s: str(s["title"]),
            )
            if stones:
                self.box.update_story(str(stones[0]["id"]), {"state": "completed"})
                done += 1
        return done

    def add_person(self, name: str, email: str, role: str) -> str:
        """A Kantata user whose headline is the role."""
        return self.box.add_user(name, email, role)

    def book_time(
        self, project: str, role: str, hours: Sequence[tuple[date, int]], rate_minor: int, currency: str
    ) -> bool:
        """Time entries on the workspace's first task (by title), by the first user with the role."""
        person = next((u for u in self.box.records("users") if u.get("headline") == role), None)
        tasks = sorted(
            (
                s
                for s in self.box.records("stories")
                if str(s["workspace_id"]) == project and s["story_type"] == "task"
            ),
            key=lambda s: str(s["title"]),
        )
        if person is None or not tasks:
            return False
        self.box.add_time_entries(
            [
                {
                    "workspace_id": project,
                    "story_id": str(tasks[0]["id"]),
                    "user_id": str(person["id"]),
                    "date_performed": day.isoformat(),
                    "time_in_minutes": minutes,
                    "billable": True,
                    "rate_in_cents": rate_minor,
                    "currency": currency,
                    "approved": True,
                }
                for day, minutes in hours
            ]
        )
        return True


# -- Certinia -----------------------------------------------------------------------------------
@dataclass
class CertiniaSide:
    """Certinia: projects from templates, resource requests, weekly timecards and expenses.

    ``crm_org``: the org is the CRM's too (the stack's Salesforce sandbox).
    """

    box: SalesforceSandbox
    crm_org: bool
    kind: ClassVar[str] = "certinia"

    @property
    def intro(self) -> str:
        """Where the ``pse__`` objects live."""
        if self.crm_org:
            return (
                "Certinia is the PSA: its pse__ objects live in the CRM's own Salesforce org, so each "
                "project links the account and opportunity it was won from; time is kept on weekly timecards."
            )
        return (
            "Certinia is the PSA, in a Salesforce org of its own (the CRM is not Salesforce); "
            "time is kept on weekly timecards."
        )

    def seed(self, firm: Firm) -> None:
        """Regions, practices, a project template per billing type and the consultants as resources."""
        seed_certinia(firm, self.box)

    def system(self) -> dict[str, Any]:
        """``systems.psa`` for Certinia in the org."""
        return certinia_system(self.box.url, crm_org=self.crm_org)

    def inject_faults(self) -> None:
        """The org's request limit on PSA writes, and two project upserts answered too late.

        Salesforce refuses a request over the org's limits with ``REQUEST_LIMIT_EXCEEDED``
        (HTTP 403), not 429; only ``pse__`` paths get it, so a shared org's CRM writes keep the
        CRM's own weather.
        """
        self.box.inject("error", status=403, path=r"pse__", probability=0.04)
        self.box.inject(
            "timeout_after_commit",
            method="PATCH",
            path=r"/sobjects/pse__Proj__c/Hub_Ext_Id__c/",
            count=2,
            seconds=6,
        )

    def _projects(self) -> list[dict[str, Any]]:
        return [p for p in self.box.records("pse__Proj__c") if not p.get("pse__Is_Template__c")]

    def projects(self) -> int:
        """Projects (``pse__Proj__c``, templates aside)."""
        return len(self._projects())

    def references(self) -> list[str]:
        """``Hub_Ext_Id__c`` of every project carrying one."""
        return [str(p["Hub_Ext_Id__c"]) for p in self._projects() if p.get("Hub_Ext_Id__c")]

    def staffing_requests(self) -> int:
        """Resource requests (``pse__Resource_Request__c``)."""
        return len(self.box.records("pse__Resource_Request__c"))

    def seed_month(self, year: int, month: int, *, seed: int, projects: Collection[str]) -> SeededWork:
        """The month's entries as weekly timecard headers (per resource, project, milestone and
        billing), and expenses; approved."""
        cards = certinia_month.seed_month(self.box, rate_cards(), year, month, seed=seed, projects=projects)
        described = (
            f"{len(cards.headers)} weekly timecards ({cards.days} days with hours) "
            f"and {len(cards.expenses)} expenses"
        )
        return SeededWork(cards.days, len(cards.expenses), described)

    def _milestones(self, project: str) -> list[dict[str, Any]]:
        """A project's milestones by target date (then name)."""
        return sorted(
            (m for m in self.box.records("pse__Milestone__c") if m["pse__Project__c"] == project),
            key=lambda m: (str(m.get("pse__Target_Date__c")), str(m["Name"])),
        )

    def sign_off_first_milestones(self, projects: Iterable[str]) -> int:
        """Approve the first milestone (by target date) of each project."""
        done = 0
        for project in projects:
            stones = self._milestones(project)
            if stones:
                approved = {"pse__Status__c": "Approved", "pse__Approved__c": True}
                self.box.update("pse__Milestone__c", stones[0]["Id"], approved)
                done += 1
        return done

    def add_person(self, name: str, email: str, role: str) -> str:
        """A contact who is an active PSA resource with the role."""
        return pse.add_resource(self.box, name, role, email=email)

    def book_time(
        self, project: str, role: str, hours: Sequence[tuple[date, int]], rate_minor: int, currency: str
    ) -> bool:
        """Weekly timecards on the project's first milestone open for time, by the first active
        resource with the role (in the project's currency, as Certinia keeps a timecard's)."""
        person = next(
            (
                c
                for c in self.box.records("Contact")
                if c.get("pse__Resource_Role__c") == role and c.get("pse__Is_Resource_Active__c")
            ),
            None,
        )
        open_ = [
            m
            for m in self._milestones(project)
            if not m.get("pse__Closed_for_Time_Entry__c")
            and m.get("pse__Status__c") not in certinia_month.CLOSED_STATUSES
        ]
        if person is None or not open_:
            return False
        entries = [
            {
                "workspace_id": project,
                "story_id": str(open_[0]["Id"]),
                "user_id": str(person["Id"]),
                "date_performed": day.isoformat(),
                "time_in_minutes": minutes,
                "billable": True,
                "rate_in_cents": rate_minor,
                "approved": True,
            }
            for day, minutes in hours
        ]
        headers = certinia_month.timecards(entries)
        self.box.insert_many("pse__Timecard_Header__c", headers)
        return True


__all__ = ["CertiniaSide", "KantataSide", "PsaSide", "SeededWork", "open_psa"]
