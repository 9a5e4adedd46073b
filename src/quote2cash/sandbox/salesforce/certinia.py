"""The Certinia PSA managed package in the emulated org: ``pse__`` objects and their rules.

Certinia PSA lives in the Salesforce org itself (VENDORS.md §1.2), so its
objects are served by the same REST resources as ``Account``: SOQL, sObject
rows, Collections and ``describe``. What the package adds here:

- the objects a quote-to-cash loop touches: regions and practices, projects
  (templates are projects with ``pse__Is_Template__c``), milestones, project
  tasks, resource requests, schedules, assignments, weekly timecard headers
  and expenses, and the resource fields on ``Contact``;
- the package's rules, as it enforces them: an assignment needs a schedule
  created first (``pse__Schedule__c`` is required, as Salesforce answers for a
  required lookup); a timecard or expense needs an active resource and a
  project open for that kind of entry; daily hours are 0–24; an approved
  timecard is locked until its status moves away from ``Approved``;
- its derived fields: auto-numbered names, a timecard's end date and total
  hours, the ``pse__Submitted__c`` / ``pse__Approved__c`` flags that follow
  ``pse__Status__c``, the currency of child records from their project, and the
  hours of a schedule.

The hub's own package adds ``Hub_Ext_Id__c`` (the hub's reference, an
external id) to the records it creates and ``Billed_To_Date__c`` to projects
(the F8 write-back; ``pse__Billings__c`` belongs to the package's actuals).

Python helpers seed a PSA catalogue (regions, practices, templates,
resources) and delivered work (assignments, timecards, expenses) through the
org's validation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from quote2cash.sandbox.salesforce.errors import SalesforceError

if TYPE_CHECKING:
    from quote2cash.sandbox.salesforce.app import SalesforceSandbox
    from quote2cash.sandbox.salesforce.schema import FieldSpec, ObjectSpec

#: The week of a timecard header, Monday first: the day field of each weekday is ``pse__<Day>_Hours__c``.
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
HOURS_FIELDS = tuple(f"pse__{day}_Hours__c" for day in WEEKDAYS)
NOTES_FIELDS = tuple(f"pse__{day}_Notes__c" for day in WEEKDAYS)

#: Resource roles of the emulated org's restricted picklist (the demo firm's roles).
RESOURCE_ROLES = frozenset(
    {"Partner", "Engagement Manager", "Senior Consultant", "Consultant", "Analyst", "Architect", "Developer"}
)
TIMECARD_STATUSES = frozenset({"Saved", "Submitted", "Approved", "Rejected"})
EXPENSE_STATUSES = frozenset({"Draft", "Submitted", "Approved", "Rejected"})
REQUEST_STATUSES = frozenset({"Draft", "Ready to Staff", "Hold", "Assigned", "Cancelled"})

#: Key prefixes of the package's objects (custom objects get ``a0…`` prefixes in a real org).
PREFIXES = {
    "pse__Region__c": "a0A",
    "pse__Practice__c": "a0B",
    "pse__Proj__c": "a0C",
    "pse__Milestone__c": "a0D",
    "pse__Project_Task__c": "a0E",
    "pse__Resource_Request__c": "a0F",
    "pse__Schedule__c": "a0G",
    "pse__Assignment__c": "a0H",
    "pse__Timecard_Header__c": "a0I",
    "pse__Expense__c": "a0J",
}
#: Display formats of the auto-numbered ``Name`` fields.
AUTO_NAMES = {
    "pse__Resource_Request__c": "RR-{:06d}",
    "pse__Schedule__c": "SCH-{:06d}",
    "pse__Assignment__c": "AS-{:06d}",
    "pse__Timecard_Header__c": "TC-{:06d}",
    "pse__Expense__c": "EX-{:06d}",
}
_CHILD_CURRENCY = frozenset(
    {"pse__Milestone__c", "pse__Assignment__c", "pse__Timecard_Header__c", "pse__Resource_Request__c"}
)


class _Records(Protocol):
    """What the rules read from the org."""

    def fetch(self, sobject: str, id_: str) -> dict[str, Any] | None:
        """A record by id, deleted ones included, or None."""


# -- object specs --------------------------------------------------------------------
def objects(standard: dict[str, ObjectSpec]) -> dict[str, ObjectSpec]:
    """The package's objects, and ``Contact`` with the resource fields, to add to the org's objects."""
    from quote2cash.sandbox.salesforce.schema import FieldSpec, ObjectSpec, _obj, _ro, _text

    def lookup(name: str, target: str | None, *, master: bool = False, required: bool = False) -> FieldSpec:
        # Custom lookups are traversed in SOQL as ``__r``; a master-detail cannot be reparented.
        return FieldSpec(
            name,
            "reference",
            updateable=not master,
            required=required or master,
            refers_to=target,
            relationship=name[:-3] + "__r",
            cascade=master,
        )

    def f(name: str, type_: str, **kw: Any) -> FieldSpec:
        return FieldSpec(name, type_, **kw)

    def hub_ref() -> FieldSpec:
        return _text("Hub_Ext_Id__c", 80)

    owner = FieldSpec("OwnerId", "reference", refers_to="User", relationship="Owner")
    currency = f("CurrencyIsoCode", "picklist")
    auto_name = _ro("Name", "string")
    days = [f(h, "double") for h in HOURS_FIELDS]
    specs = [
        _obj("pse__Region__c", PREFIXES["pse__Region__c"], [_text_required("Name", 80), owner, currency]),
        _obj("pse__Practice__c", PREFIXES["pse__Practice__c"], [_text_required("Name", 80), owner, currency]),
        _obj(
            "pse__Proj__c",
            PREFIXES["pse__Proj__c"],
            [
                _text_required("Name", 80),
                owner,
                currency,
                lookup("pse__Account__c", "Account"),
                lookup("pse__Opportunity__c", "Opportunity"),
                lookup("pse__Project_Manager__c", "Contact"),
                lookup("pse__Parent_Project__c", "pse__Proj__c"),
                lookup("pse__Region__c", "pse__Region__c"),
                lookup("pse__Practice__c", "pse__Practice__c"),
                f("pse__Start_Date__c", "date"),
                f("pse__End_Date__c", "date"),
                *(
                    f(n, "picklist")
                    for n in ("pse__Stage__c", "pse__Project_Status__c", "pse__Project_Type__c")
                ),
                f("pse__Billing_Type__c", "picklist"),
                *(
                    f(n, "boolean")
                    for n in (
                        "pse__Is_Active__c",
                        "pse__Is_Billable__c",
                        "pse__Is_Template__c",
                        "pse__Closed_for_Time_Entry__c",
                        "pse__Closed_for_Expense_Entry__c",
                    )
                ),
                f("pse__Bookings__c", "currency"),
                f("pse__Notes__c", "textarea"),
                _ro("pse__Billings__c", "currency"),
                _ro("pse__Project_ID__c", "string"),
                hub_ref(),
                f("Billed_To_Date__c", "currency"),
            ],
        ),
        _obj(
            "pse__Milestone__c",
            PREFIXES["pse__Milestone__c"],
            [
                _text_required("Name", 80),
                lookup("pse__Project__c", "pse__Proj__c", master=True),
                f("pse__Target_Date__c", "date"),
                f("pse__Actual_Date__c", "date"),
                f("pse__Milestone_Amount__c", "currency"),
                f("pse__Status__c", "picklist"),
                *(
                    f(n, "boolean")
                    for n in (
                        "pse__Approved__c",
                        "pse__Include_In_Financials__c",
                        "pse__Closed_for_Time_Entry__c",
                    )
                ),
                _ro("pse__Invoiced__c", "boolean"),
                f("pse__Description__c", "textarea"),
                _ro("CurrencyIsoCode", "picklist"),
                hub_ref(),
            ],
        ),
        _obj(
            "pse__Project_Task__c",
            PREFIXES["pse__Project_Task__c"],
            [
                _text_required("Name", 80),
                lookup("pse__Project__c", "pse__Proj__c", master=True),
                lookup("pse__Milestone__c", "pse__Milestone__c"),
                lookup("pse__Parent_Task__c", "pse__Project_Task__c"),
                f("pse__Start_Date_Time__c", "datetime"),
                f("pse__End_Date_Time__c", "datetime"),
                f("pse__Status__c", "picklist"),
                f("pse__Estimated_Hours__c", "double"),
                hub_ref(),
            ],
        ),
        _obj(
            "pse__Resource_Request__c",
            PREFIXES["pse__Resource_Request__c"],
            [
                auto_name,
                owner,
                lookup("pse__Project__c", "pse__Proj__c"),
                lookup("pse__Opportunity__c", "Opportunity"),
                lookup("pse__Account__c", "Account"),
                lookup("pse__Milestone__c", "pse__Milestone__c"),
                lookup("pse__Region__c", "pse__Region__c"),
                lookup("pse__Practice__c", "pse__Practice__c"),
                lookup("pse__Resource__c", "Contact"),
                lookup("pse__Staffer_Resource__c", "Contact"),
                lookup("pse__Assignment__c", "pse__Assignment__c"),
                f("pse__Start_Date__c", "date", required=True),
                f("pse__End_Date__c", "date", required=True),
                f("pse__SOW_Hours__c", "double"),
                f("pse__Percent_Allocated__c", "percent"),
                f("pse__Resource_Role__c", "picklist", required=True, picklist=RESOURCE_ROLES),
                f("pse__Status__c", "picklist", picklist=REQUEST_STATUSES),
                f("pse__Request_Priority__c", "picklist"),
                f("pse__Notes__c", "textarea"),
                _ro("CurrencyIsoCode", "picklist"),
                hub_ref(),
            ],
        ),
        _obj(
            "pse__Schedule__c",
            PREFIXES["pse__Schedule__c"],
            [
                auto_name,
                f("pse__Start_Date__c", "date", required=True),
                f("pse__End_Date__c", "date", required=True),
                *days,
                _ro("pse__Scheduled_Hours__c", "double"),
            ],
        ),
        _obj(
            "pse__Assignment__c",
            PREFIXES["pse__Assignment__c"],
            [
                auto_name,
                owner,
                lookup("pse__Resource__c", "Contact", required=True),
                lookup("pse__Project__c", "pse__Proj__c", required=True),
                # Schedule before assignment: the package refuses an assignment without one.
                lookup("pse__Schedule__c", "pse__Schedule__c", required=True),
                lookup("pse__Milestone__c", "pse__Milestone__c"),
                lookup("pse__Resource_Request__c", "pse__Resource_Request__c"),
                f("pse__Bill_Rate__c", "currency"),
                f("pse__Role__c", "picklist", picklist=RESOURCE_ROLES),
                f("pse__Is_Billable__c", "boolean"),
                f("pse__Status__c", "picklist"),
                _ro("pse__Scheduled_Hours__c", "double"),
                _ro("CurrencyIsoCode", "picklist"),
            ],
        ),
        _obj(
            "pse__Timecard_Header__c",
            PREFIXES["pse__Timecard_Header__c"],
            [
                auto_name,
                owner,
                lookup("pse__Resource__c", "Contact", required=True),
                lookup("pse__Project__c", "pse__Proj__c", required=True),
                lookup("pse__Assignment__c", "pse__Assignment__c"),
                lookup("pse__Milestone__c", "pse__Milestone__c"),
                f("pse__Start_Date__c", "date", required=True),
                _ro("pse__End_Date__c", "date"),
                *days,
                *(f(n, "textarea") for n in NOTES_FIELDS),
                _ro("pse__Total_Hours__c", "double"),
                f("pse__Status__c", "picklist", picklist=TIMECARD_STATUSES),
                _ro("pse__Submitted__c", "boolean"),
                _ro("pse__Approved__c", "boolean"),
                _ro("pse__Include_In_Financials__c", "boolean"),
                f("pse__Billable__c", "boolean"),
                f("pse__Bill_Rate__c", "currency"),
                f("pse__Cost_Rate__c", "currency"),
                _ro("pse__Total_Billable_Amount__c", "currency"),
                f("pse__Billed__c", "boolean"),
                f("pse__Invoiced__c", "boolean"),
                _ro("CurrencyIsoCode", "picklist"),
            ],
        ),
        _obj(
            "pse__Expense__c",
            PREFIXES["pse__Expense__c"],
            [
                auto_name,
                owner,
                lookup("pse__Project__c", "pse__Proj__c", required=True),
                lookup("pse__Resource__c", "Contact", required=True),
                lookup("pse__Assignment__c", "pse__Assignment__c"),
                lookup("pse__Milestone__c", "pse__Milestone__c"),
                lookup("pse__Expense_Report__c", None),
                f("pse__Expense_Date__c", "date", required=True),
                f("pse__Type__c", "picklist"),
                f("pse__Amount__c", "currency", required=True),
                currency,
                f("pse__Billing_Currency__c", "picklist"),
                f("pse__Billable__c", "boolean"),
                # Certinia's own spelling (field reference unverified).
                f("pse__Non_Reimbursible__c", "boolean"),
                f("pse__Description__c", "textarea"),
                f("pse__Status__c", "picklist", picklist=EXPENSE_STATUSES),
                _ro("pse__Submitted__c", "boolean"),
                _ro("pse__Approved__c", "boolean"),
                _ro("pse__Include_In_Financials__c", "boolean"),
                f("pse__Billed__c", "boolean"),
            ],
        ),
    ]
    contact = standard["Contact"]
    resource_fields = [
        f("pse__Is_Resource__c", "boolean"),
        f("pse__Is_Resource_Active__c", "boolean"),
        f("pse__Resource_Role__c", "picklist", picklist=RESOURCE_ROLES),
        f("pse__Default_Cost_Rate__c", "currency"),
        lookup("pse__Region__c", "pse__Region__c"),
        lookup("pse__Practice__c", "pse__Practice__c"),
        lookup("pse__Salesforce_User__c", "User"),
    ]
    out = {spec.name: spec for spec in specs}
    fields = {**contact.fields, **{x.name: x for x in resource_fields}}
    out["Contact"] = ObjectSpec(contact.name, contact.prefix, fields, api_writable=contact.api_writable)
    return out


def _text_required(name: str, length: int) -> FieldSpec:
    from quote2cash.sandbox.salesforce.schema import FieldSpec

    return FieldSpec(name, "string", required=True, length=length)


# -- the package's rules (called by the org on every write) --------------------------
def defaults(sobject: str, doc: dict[str, Any]) -> None:
    """Default field values of a new record."""
    if sobject == "pse__Timecard_Header__c":
        doc.update({"pse__Status__c": "Saved", "pse__Billable__c": False})
    elif sobject == "pse__Expense__c":
        doc.update({"pse__Status__c": "Draft", "pse__Billable__c": False, "pse__Non_Reimbursible__c": False})
    elif sobject == "pse__Resource_Request__c":
        doc["pse__Status__c"] = "Draft"
    elif sobject == "pse__Proj__c":
        doc.update(
            {
                "pse__Is_Active__c": False,
                "pse__Is_Billable__c": False,
                "pse__Is_Template__c": False,
                "pse__Closed_for_Time_Entry__c": False,
                "pse__Closed_for_Expense_Entry__c": False,
            }
        )
    elif sobject == "Contact":
        doc.update({"pse__Is_Resource__c": False, "pse__Is_Resource_Active__c": False})


def _rule(message: str, *fields: str) -> SalesforceError:
    # Validation rules and triggers of a managed package answer this code.
    return SalesforceError("FIELD_CUSTOM_VALIDATION_EXCEPTION", message, fields=list(fields))


def validate(
    org: _Records, sobject: str, doc: dict[str, Any], fields: dict[str, Any], *, insert: bool
) -> None:
    """The package's validation of one write (after the field checks); raises SalesforceError."""
    if sobject == "pse__Timecard_Header__c":
        _validate_timecard(org, doc, fields, insert=insert)
    elif sobject == "pse__Expense__c":
        if insert or {"pse__Project__c", "pse__Resource__c", "pse__Amount__c", "pse__Expense_Date__c"} & set(
            fields
        ):
            _check_resource(org, doc)
            project = org.fetch("pse__Proj__c", doc["pse__Project__c"]) or {}
            if project.get("pse__Closed_for_Expense_Entry__c") or project.get("pse__Is_Template__c"):
                raise _rule(f"Project {project.get('Name')} is closed for expense entry", "pse__Project__c")
    elif sobject == "pse__Schedule__c":
        if doc["pse__End_Date__c"] < doc["pse__Start_Date__c"]:
            raise _rule("Schedule end date must not be before its start date", "pse__End_Date__c")
        _check_hours(doc)
    elif sobject == "pse__Resource_Request__c" and doc["pse__End_Date__c"] < doc["pse__Start_Date__c"]:
        raise _rule("Resource request end date must not be before its start date", "pse__End_Date__c")


def _check_hours(doc: dict[str, Any]) -> None:
    for day, name in zip(WEEKDAYS, HOURS_FIELDS, strict=True):
        hours = doc.get(name)
        if hours is not None and not 0 <= hours <= 24:
            raise _rule(f"{day} hours must be between 0 and 24", name)


def _check_resource(org: _Records, doc: dict[str, Any]) -> None:
    contact = org.fetch("Contact", doc["pse__Resource__c"]) or {}
    if not (contact.get("pse__Is_Resource__c") and contact.get("pse__Is_Resource_Active__c")):
        raise _rule(f"{contact.get('Name') or 'The contact'} is not an active resource", "pse__Resource__c")


def _validate_timecard(org: _Records, doc: dict[str, Any], fields: dict[str, Any], *, insert: bool) -> None:
    old = None if insert else org.fetch("pse__Timecard_Header__c", doc["Id"])
    edits = set(fields) - {"pse__Status__c", "pse__Billed__c", "pse__Invoiced__c"}
    locked = old is not None and old.get("pse__Status__c") == "Approved" == doc["pse__Status__c"]
    if locked and edits:
        # An approved timecard is locked by its approval; it is reopened by changing the status.
        raise SalesforceError("ENTITY_IS_LOCKED", "the entity is locked for editing", fields=sorted(edits))
    _check_hours(doc)
    if insert or {"pse__Project__c", "pse__Resource__c", "pse__Start_Date__c", *HOURS_FIELDS} & set(fields):
        _check_resource(org, doc)
        project = org.fetch("pse__Proj__c", doc["pse__Project__c"]) or {}
        if project.get("pse__Closed_for_Time_Entry__c") or project.get("pse__Is_Template__c"):
            raise _rule(f"Project {project.get('Name')} is closed for time entry", "pse__Project__c")
        milestone_id = doc.get("pse__Milestone__c")
        if milestone_id:
            milestone = org.fetch("pse__Milestone__c", milestone_id) or {}
            if milestone.get("pse__Project__c") != doc["pse__Project__c"]:
                raise _rule("The milestone does not belong to the timecard's project", "pse__Milestone__c")


def derive(org: _Records, sobject: str, doc: dict[str, Any], fields: dict[str, Any], *, insert: bool) -> None:
    """Compute the package's read-only fields of one write, as its triggers and formulas do."""
    from quote2cash.sandbox.salesforce.schema import id_counter

    pattern = AUTO_NAMES.get(sobject)
    if insert and pattern is not None:
        doc["Name"] = pattern.format(id_counter(doc["Id"]))
    if sobject == "pse__Proj__c" and insert:
        doc["pse__Project_ID__c"] = f"PR-{id_counter(doc['Id']):06d}"
    if sobject in _CHILD_CURRENCY and doc.get("pse__Project__c"):
        project = org.fetch("pse__Proj__c", doc["pse__Project__c"]) or {}
        doc["CurrencyIsoCode"] = project.get("CurrencyIsoCode")
    if sobject == "pse__Timecard_Header__c":
        start = date.fromisoformat(doc["pse__Start_Date__c"])
        doc["pse__End_Date__c"] = (start + timedelta(days=6)).isoformat()
        total = sum((Decimal(str(doc.get(h) or 0)) for h in HOURS_FIELDS), Decimal(0))
        doc["pse__Total_Hours__c"] = float(total)
        rate = Decimal(str(doc.get("pse__Bill_Rate__c") or 0))
        doc["pse__Total_Billable_Amount__c"] = float(total * rate) if doc.get("pse__Billable__c") else 0.0
    if sobject in ("pse__Timecard_Header__c", "pse__Expense__c"):
        status = doc.get("pse__Status__c")
        doc["pse__Submitted__c"] = status in ("Submitted", "Approved")
        doc["pse__Approved__c"] = doc["pse__Include_In_Financials__c"] = status == "Approved"
    if sobject == "pse__Schedule__c":
        doc["pse__Scheduled_Hours__c"] = _scheduled_hours(doc)
    if sobject == "pse__Assignment__c" and doc.get("pse__Schedule__c"):
        schedule = org.fetch("pse__Schedule__c", doc["pse__Schedule__c"]) or {}
        doc["pse__Scheduled_Hours__c"] = schedule.get("pse__Scheduled_Hours__c")


def _scheduled_hours(doc: dict[str, Any]) -> float:
    day, end = date.fromisoformat(doc["pse__Start_Date__c"]), date.fromisoformat(doc["pse__End_Date__c"])
    total = Decimal(0)
    while day <= end:
        total += Decimal(str(doc.get(HOURS_FIELDS[day.weekday()]) or 0))
        day += timedelta(days=1)
    return float(total)


# -- seeding helpers (Python side, through the org's validation) ---------------------
#: Billing type of each of the demo firm's project templates.
TEMPLATE_BILLING_TYPES = {
    "T&M Delivery": "Time and Materials",
    "Fixed-Fee Delivery": "Fixed Price",
    "Milestone Delivery": "Milestone",
    "Retainer Service": "Retainer",
    "Managed Service": "Subscription",
}


def add_named(box: SalesforceSandbox, sobject: str, names: Iterable[str]) -> dict[str, str]:
    """Insert regions or practices by name; returns name -> id."""
    wanted = list(dict.fromkeys(names))
    ids = box.insert_many(sobject, [{"Name": n} for n in wanted])
    return dict(zip(wanted, ids, strict=True))


def add_template(
    box: SalesforceSandbox,
    name: str,
    billing_type: str,
    phases: Sequence[str],
    *,
    start: date = date(2026, 1, 5),
    milestone_amounts: bool = False,
) -> str:
    """A project template: one milestone per phase (30 days apart) with one task each."""
    template = box.insert(
        "pse__Proj__c",
        {
            "Name": name,
            "pse__Is_Template__c": True,
            "pse__Billing_Type__c": billing_type,
            "pse__Is_Billable__c": billing_type != "Subscription",
            "pse__Project_Type__c": "Customer Project",
            "pse__Stage__c": "Planned",
            "pse__Start_Date__c": start.isoformat(),
            "pse__End_Date__c": (start + timedelta(days=30 * len(phases))).isoformat(),
        },
    )
    milestones = box.insert_many(
        "pse__Milestone__c",
        [
            {
                "Name": phase,
                "pse__Project__c": template,
                "pse__Target_Date__c": (start + timedelta(days=30 * n + 29)).isoformat(),
                "pse__Status__c": "Planned",
                "pse__Milestone_Amount__c": 10000.0 if milestone_amounts else None,
            }
            for n, phase in enumerate(phases)
        ],
    )
    box.insert_many(
        "pse__Project_Task__c",
        [
            {
                "Name": f"{phase} — work",
                "pse__Project__c": template,
                "pse__Milestone__c": milestone,
                "pse__Start_Date_Time__c": f"{start + timedelta(days=30 * n)}T09:00:00.000Z",
                "pse__End_Date_Time__c": f"{start + timedelta(days=30 * n + 25)}T17:00:00.000Z",
                "pse__Status__c": "Planned",
                "pse__Estimated_Hours__c": 40.0,
            }
            for n, (phase, milestone) in enumerate(zip(phases, milestones, strict=True))
        ],
    )
    return template


def add_resource(
    box: SalesforceSandbox,
    name: str,
    role: str,
    *,
    email: str | None = None,
    cost_rate: Decimal | float | None = None,
    currency: str = "USD",
    active: bool = True,
) -> str:
    """A contact who is a PSA resource with a role and a default cost rate; returns its id."""
    first, _, last = name.rpartition(" ")
    return box.insert(
        "Contact",
        {
            "FirstName": first or None,
            "LastName": last,
            "Email": email,
            "CurrencyIsoCode": currency,
            "pse__Is_Resource__c": True,
            "pse__Is_Resource_Active__c": active,
            "pse__Resource_Role__c": role,
            "pse__Default_Cost_Rate__c": None if cost_rate is None else float(cost_rate),
        },
    )


def seed_catalogue(
    box: SalesforceSandbox,
    *,
    regions: Iterable[str],
    practices: Iterable[str],
    templates: Mapping[str, Sequence[str]],
    consultants: Iterable[dict[str, Any]] = (),
) -> dict[str, dict[str, str]]:
    """Regions, practices, a template per billing type and resources; returns their ids by name.

    ``consultants`` are the firm generator's (``full_name``, ``email``, ``headline`` as the role).
    """
    out = {
        "regions": add_named(box, "pse__Region__c", regions),
        "practices": add_named(box, "pse__Practice__c", practices),
        "templates": {
            name: add_template(
                box,
                name,
                TEMPLATE_BILLING_TYPES.get(name, name),
                phases,
                milestone_amounts=name.startswith("Mile"),
            )
            for name, phases in templates.items()
        },
        "resources": {},
    }
    for person in consultants:
        out["resources"][person["full_name"]] = add_resource(
            box, person["full_name"], person["headline"], email=person.get("email")
        )
    return out


def add_assignment(
    box: SalesforceSandbox,
    project: str,
    resource: str,
    *,
    start: date,
    end: date,
    hours_per_day: float = 8.0,
    bill_rate: Decimal | float | None = None,
    role: str | None = None,
) -> str:
    """A schedule (Monday to Friday) and then the assignment on it, as the package requires."""
    schedule = box.insert(
        "pse__Schedule__c",
        {
            "pse__Start_Date__c": start.isoformat(),
            "pse__End_Date__c": end.isoformat(),
            **{h: hours_per_day for h in HOURS_FIELDS[:5]},
        },
    )
    return box.insert(
        "pse__Assignment__c",
        {
            "pse__Project__c": project,
            "pse__Resource__c": resource,
            "pse__Schedule__c": schedule,
            "pse__Bill_Rate__c": None if bill_rate is None else float(bill_rate),
            "pse__Role__c": role,
            "pse__Is_Billable__c": bill_rate is not None,
            "pse__Status__c": "Scheduled",
        },
    )


def add_timecard(
    box: SalesforceSandbox,
    project: str,
    resource: str,
    week_start: date,
    hours: Sequence[float],
    *,
    billable: bool = False,
    bill_rate: Decimal | float | None = None,
    status: str = "Approved",
    milestone: str | None = None,
    assignment: str | None = None,
) -> str:
    """A weekly timecard header (Monday first, up to seven days of hours); approved by default."""
    if len(hours) > 7:
        raise ValueError("a timecard holds at most seven days")
    return box.insert(
        "pse__Timecard_Header__c",
        {
            "pse__Project__c": project,
            "pse__Resource__c": resource,
            "pse__Milestone__c": milestone,
            "pse__Assignment__c": assignment,
            "pse__Start_Date__c": week_start.isoformat(),
            **{name: float(h) for name, h in zip(HOURS_FIELDS, hours, strict=False)},
            "pse__Billable__c": billable,
            "pse__Bill_Rate__c": None if bill_rate is None else float(bill_rate),
            "pse__Status__c": status,
        },
    )


def add_expense(
    box: SalesforceSandbox,
    project: str,
    resource: str,
    day: date,
    amount: Decimal | float,
    *,
    currency: str = "USD",
    type_: str | None = "Travel",
    billable: bool = False,
    reimbursable: bool = True,
    status: str = "Approved",
) -> str:
    """An expense on a project (approved by default)."""
    return box.insert(
        "pse__Expense__c",
        {
            "pse__Project__c": project,
            "pse__Resource__c": resource,
            "pse__Expense_Date__c": day.isoformat(),
            "pse__Amount__c": float(amount),
            "CurrencyIsoCode": currency,
            "pse__Type__c": type_,
            "pse__Billable__c": billable,
            "pse__Non_Reimbursible__c": not reimbursable,
            "pse__Status__c": status,
        },
    )


__all__ = [
    "HOURS_FIELDS",
    "RESOURCE_ROLES",
    "TEMPLATE_BILLING_TYPES",
    "WEEKDAYS",
    "add_assignment",
    "add_expense",
    "add_named",
    "add_resource",
    "add_template",
    "add_timecard",
    "defaults",
    "derive",
    "objects",
    "seed_catalogue",
    "validate",
]
