"""Kantata as the hub's PSA (:class:`quote2cash.ports.Psa`).

Workspaces carry the hub's external reference in the same write that creates
them, so a create whose answer was lost is found by looking the reference up
(an in-doubt write is never repeated blindly). Templates and roles are master
data, reused for ``cache_seconds``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx

from quote2cash.connectors._cache import Cached
from quote2cash.connectors._http import ClientBacked, Limiter, RetryPolicy
from quote2cash.connectors.kantata.client import KantataClient
from quote2cash.connectors.kantata.feed import (
    PAGE,
    RESOURCES,
    convert,
    cost_centres,
    page_params,
    process_pages,
    reader_settings,
)
from quote2cash.connectors.kantata.settings import KantataSettings
from quote2cash.errors import BusinessRuleError, InDoubtError, NotFoundError, Owner
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
#: Pages of a change feed read in this process before a reader process takes over the backlog.
INLINE_PAGES = 5


class KantataPsa(ClientBacked[KantataClient]):
    """The PSA port over one Kantata account."""

    capabilities = Capabilities(bulk_size=100, external_references=True)

    def __init__(self, name: str, client: KantataClient, mapping: Mapping, settings: KantataSettings) -> None:
        self.name = name
        self.client = client
        self.mapping = mapping
        self.settings = settings
        self.cache = Cached(settings.cache_seconds)

    # -- master data -------------------------------------------------------------------
    def _templates(self) -> dict[str, str]:
        def read() -> dict[str, str]:
            out: dict[str, str] = {}
            for t in self.client.list("project_templates"):
                for key in ("name", "title"):
                    if t.get(key):
                        out[str(t[key])] = str(t["id"])
            return out

        return self.cache.get("templates", read)

    def _roles(self) -> dict[str, str]:
        return self.cache.get(
            "roles", lambda: {str(r.get("name")): str(r["id"]) for r in self.client.list("roles")}
        )

    # -- projects ------------------------------------------------------------------------
    def _template_for(self, project: Project) -> str:
        name = self.mapping.value("billing_model_to_template", project.billing_model.value)
        template = self._templates().get(name)
        if template is None:
            self.cache.forget("templates")  # created since the last read?
            template = self._templates().get(name)
        if template is None:
            raise BusinessRuleError(
                f"the PSA has no project template named '{name}'; create it in the PSA or change the "
                "billing_model_to_template value map",
                code="psa.template_missing",
                owner=Owner.PMO,
                system=self.name,
            )
        return template

    def _find(self, reference: str) -> str | None:
        return self.client.find_subject_by_reference(self.settings.service_name, "Opportunity", reference)

    def ensure_project(self, project: Project, reference: str, *, known_absent: bool = False) -> str:
        """Find the workspace by the hub's reference, or create it carrying the reference.

        ``known_absent``: the hub's ledger shows no earlier attempt, so the
        look-up before the create is skipped; a create whose answer is lost is
        still looked up before anything is sent again.
        """
        if not known_absent:
            found = self._find(reference)
            if found is not None:
                return found
        budget = project.budget.to_minor() if project.budget is not None else 0
        body = self.mapping.apply(
            "project_to_kantata",
            project.model_dump(mode="json"),
            {
                "template": self._template_for(project),
                "price_in_cents": budget,
                "description": project.name + f" — {project.billing_model.value.replace('_', ' ')}",
            },
        )
        refs = [
            {
                "service_name": self.settings.service_name,
                "service_model": "Opportunity",
                "service_model_ref": reference,
            }
        ]
        for attempt in range(1, self.client.retry.max_attempts + 1):
            try:
                return str(self.client.create("workspaces", {**body, "external_references": refs})["id"])
            except InDoubtError as exc:
                found = self._find(reference)
                if found is not None:
                    return found
                if attempt == self.client.retry.max_attempts:
                    exc.details["attempts"] = attempt
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def ensure_staffing(
        self, psa_project_id: str, requests: Sequence[ResourceRequest], *, known_empty: bool = False
    ) -> int:
        """Create the staffing requests the workspace does not have yet (by their reference).

        ``known_empty``: the workspace was created by this run, so it has none
        yet and the look-up is skipped; after an in-doubt create it is made.
        """
        roles = self._roles()
        unknown = sorted({r.role for r in requests if r.role not in roles})
        if unknown:
            self.cache.forget("roles")
            roles = self._roles()
            unknown = sorted({r.role for r in requests if r.role not in roles})
        if unknown:
            raise BusinessRuleError(
                f"the deal asks for the role(s) {', '.join(repr(u) for u in unknown)}, which the PSA does not "
                "know; add the role in the PSA or correct the opportunity line",
                code="psa.role_unknown",
                owner=Owner.PMO,
                system=self.name,
                record=psa_project_id,
            )
        for attempt in range(1, self.client.retry.max_attempts + 1):
            existing: set[str] = set()
            if not known_empty or attempt > 1:
                existing = {
                    str(r.get("notes"))
                    for r in self.client.list("resource_requests", workspace_id=psa_project_id)
                }
            missing = [
                {
                    "workspace_id": psa_project_id,
                    "role_id": roles[r.role],
                    "start_date": r.start_date.isoformat(),
                    "end_date": r.end_date.isoformat() if r.end_date else None,
                    "hours": float(r.hours),
                    "status": "requested",
                    "notes": r.reference,
                }
                for r in requests
                if r.reference not in existing
            ]
            if not missing:
                return len(requests)
            try:
                # Kantata creates resource requests one at a time (no bulk create for them).
                for body in missing:
                    self.client.create("resource_requests", body)
                return len(requests)
            except InDoubtError as exc:
                if attempt == self.client.retry.max_attempts:
                    exc.details["attempts"] = attempt
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def delete_project(self, psa_project_id: str) -> None:
        """Delete the workspace; already gone is what was wanted."""
        try:
            self.client.delete("workspaces", psa_project_id)
        except NotFoundError:
            return

    # -- delivered work ------------------------------------------------------------------
    def master_data(self, kind: WorkKind, workspace_ids: set[str]) -> PsaMasterData:
        """Task states of the hub's workspaces, and each user's role and name."""
        tasks: dict[str, tuple[str, str]] = {}
        if kind == "time" and workspace_ids:
            for story in self.client.list("stories", per_page=200):
                if str(story.get("workspace_id")) in workspace_ids:
                    tasks[str(story["id"])] = (str(story["workspace_id"]), str(story.get("state") or ""))
        roles, names = {}, {}
        for user in self.client.list("users", per_page=200):
            roles[str(user["id"])] = str(user.get("headline") or "")
            names[str(user["id"])] = str(user.get("full_name") or f"user {user['id']}")
        return PsaMasterData(task_states=tasks, roles=roles, names=names)

    def work_pages(self, kind: WorkKind, since: str) -> Iterator[WorkPage]:
        """Pages of changes after ``since``: the first few read here, a longer backlog by a reader
        process (starting one costs about as much as reading a few pages, so a short feed never
        waits for it)."""
        last = since
        field_name = self.settings.cost_centre_field
        for _ in range(INLINE_PAGES):
            envelope = self.client.fetch_page(
                RESOURCES[kind], page=1, per_page=PAGE, updated_after=last, **page_params(field_name)
            )
            records = self.client.resolve(envelope)
            if not records:
                return
            page = convert(kind, records, cost_centres(envelope, field_name))
            yield page
            if len(records) < PAGE:
                return
            last = page.last
        settings = reader_settings(
            self.client.base_url.removesuffix("/api/v1"),
            self.settings.secret("token"),
            self.settings.timeout_seconds,
            self.client.retry,
            self.client.limiter,
            field_name,
        )
        yield from process_pages(settings, kind, last)

    def approved_work(self, kind: WorkKind, start: date, end: date) -> Iterator[dict[str, Any]]:
        """Approved entries dated in the range, as ``{id, kind, workspace_id, user_id, billable, minutes,
        amount_minor, currency}``."""
        date_filter = {"date_performed_between" if kind == "time" else "date_between": f"{start}:{end}"}
        for raw in self.client.list(RESOURCES[kind], per_page=200, approved=True, **date_filter):
            minutes = int(raw.get("time_in_minutes") or 0)
            amount = (
                round(minutes * int(raw.get("rate_in_cents") or 0) / 60)
                if kind == "time"
                else int(raw.get("amount_in_cents") or 0)
            )
            yield {
                "id": str(raw["id"]),
                "kind": kind,
                "workspace_id": str(raw["workspace_id"]),
                "user_id": None if raw.get("user_id") is None else str(raw["user_id"]),
                "billable": bool(raw.get("billable")),
                "minutes": minutes,
                "amount_minor": amount,
                "currency": str(raw.get("currency") or ""),
            }

    # -- billing (F6, F8) ----------------------------------------------------------------
    def milestones(self, workspace_ids: set[str]) -> list[MilestoneRecord]:
        """Milestone stories of these workspaces; ``completed`` is the milestone's sign-off."""
        out = []
        for story in self.client.list("stories", per_page=200):
            if story.get("story_type") != "milestone" or str(story.get("workspace_id")) not in workspace_ids:
                continue
            completed = story.get("state") == "completed"
            stamp = story.get("updated_at") if completed else None
            due = story.get("due_date")
            out.append(
                MilestoneRecord(
                    id=str(story["id"]),
                    workspace_id=str(story["workspace_id"]),
                    name=str(story.get("title") or f"milestone {story['id']}"),
                    due_date=date.fromisoformat(str(due)[:10]) if due else None,
                    completed=completed,
                    completed_at=datetime.fromisoformat(str(stamp).replace("Z", "+00:00")) if stamp else None,
                )
            )
        return sorted(out, key=lambda m: (m.workspace_id, m.due_date or date.max, int(m.id)))

    def write_back_billed(self, psa_project_id: str, billed: Money) -> None:
        """Billed to date on the workspace, in its currency's minor units (an idempotent update)."""
        self.client.update("workspaces", psa_project_id, {"billed_to_date_in_cents": billed.to_minor()})

    def projects(self) -> list[PsaProjectRecord]:
        """Workspaces with the hub's opportunity reference, and those without one."""
        refs = {
            str(r["subject_id"]): str(r.get("service_model_ref"))
            for r in self.client.list(
                "external_references",
                per_page=200,
                service_name=self.settings.service_name,
                service_model="Opportunity",
            )
            if r.get("subject_id") is not None
        }
        return [
            PsaProjectRecord(
                id=str(w["id"]), reference=refs.get(str(w["id"])), name=str(w.get("title") or "")
            )
            for w in self.client.list("workspaces", per_page=200)
        ]

    def close_task(self, task_id: str) -> None:
        """Mark a task completed (the demo's project manager closes tasks)."""
        self.client.update("stories", task_id, {"state": "completed"})


def build(
    name: str, settings: KantataSettings, transport: httpx.BaseTransport | None, retry: RetryPolicy
) -> KantataPsa:
    """The adapter of a configured Kantata system."""
    client = KantataClient(
        settings.base_url,
        settings.secret("token"),
        transport=transport,
        timeout=settings.timeout_seconds,
        retry=retry,
        limiter=Limiter(settings.limits.concurrency, settings.limits.rate_per_second),
    )
    return KantataPsa(name, client, Mapping.load(settings.mapping or MAPPING), settings)
