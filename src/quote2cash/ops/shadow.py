"""ERP coexistence: where each posting went, and the shadow ERP compared with the system of record.

During a migration postings go to the legacy ERP or the cloud ERP by routing
(``erp_routing``), and a *shadow* ERP may receive a copy of each
(``erp_routing.shadow``). Two reports read every ERP back through its port:

- :func:`where_posted`: per ERP of record, the postings, entries, hours and
  amounts of a month, and any posting key held by more than one of them (each
  entry must land in exactly one system of record);
- :func:`shadow_report`: per project × period, the counts and amounts the
  systems of record hold against those the shadow holds, with the
  differences: a posting missing from the shadow, one only the shadow holds,
  or one whose amount or hours differ. It is written as JSON and CSV next to
  the reconciliation reports (``shadow-<kind>-<period>.*``).
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import cast

from quote2cash.errors import UsageError
from quote2cash.ops._args import period as month
from quote2cash.ops._args import work_kind
from quote2cash.ports import PostedRecord, WorkKind
from quote2cash.runtime.hub import Hub


@dataclass
class ErpFigures:
    """What one ERP holds of the hub's postings for a kind and month."""

    erp: str
    postings: int = 0
    entries: int = 0
    hours: str = "0.00"
    projects: int = 0


@dataclass
class Placement:
    """Where a month's postings went: per ERP of record, and keys held by more than one."""

    kind: str
    period: str
    by_erp: list[ErpFigures]
    in_several: list[str] = field(default_factory=list)


@dataclass
class ShadowLine:
    """One project × period in the systems of record and in the shadow."""

    project: str
    period: str
    record_erp: str
    record_count: int = 0
    record_entries: int = 0
    record_amount: str = "0"
    shadow_count: int = 0
    shadow_entries: int = 0
    shadow_amount: str = "0"
    count_difference: int = 0
    amount_difference: str = "0"
    status: str = "same"  # same | different


@dataclass
class ShadowDifference:
    """One posting the shadow and the system of record disagree on."""

    kind: str  # missing_in_shadow | only_in_shadow | amount_differs | hours_differ
    project: str
    key: str
    record: str  # the amount in the system of record ("" when it holds none)
    shadow: str  # the amount in the shadow ("" when it holds none)


@dataclass
class ShadowReport:
    """The shadow ERP compared with the systems of record for one kind and month."""

    kind: str
    period: str
    shadow: str
    lines: list[ShadowLine]
    differences: list[ShadowDifference]
    files: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Differences by kind."""
        out: dict[str, int] = defaultdict(int)
        for d in self.differences:
            out[d.kind] += 1
        return dict(out)


def _record_erps(hub: Hub) -> list[str]:
    return [n for n in hub.erp_names() if n != hub.config.erp_routing.shadow]


def _read(hub: Hub, erps: list[str], kind: str, period: str) -> dict[str, list[tuple[str, PostedRecord]]]:
    """Posting key -> (ERP, record) for every copy the ERPs hold."""
    held: dict[str, list[tuple[str, PostedRecord]]] = defaultdict(list)
    for name in erps:
        for r in hub.erp(name).posted(cast(WorkKind, kind), period):
            held[r.key].append((name, r))
    return held


def where_posted(hub: Hub, kind: str, period: str) -> Placement:
    """Per ERP of record, what it holds of a month's postings; and any key more than one holds."""
    kind, period = work_kind(kind), month(period)
    erps = _record_erps(hub)
    held = _read(hub, erps, kind, period)
    figures = {name: ErpFigures(name) for name in erps}
    projects: dict[str, set[str]] = defaultdict(set)
    hours: dict[str, Decimal] = defaultdict(Decimal)
    for copies in held.values():
        for name, r in copies:
            f = figures[name]
            f.postings += 1
            f.entries += r.entries
            hours[name] += r.hours
            projects[name].add(str(r.project))
    for name, f in figures.items():
        f.hours = str(hours[name].quantize(Decimal("0.01")))
        f.projects = len(projects[name])
    several = sorted(k for k, copies in held.items() if len({n for n, _ in copies}) > 1)
    return Placement(kind, period, list(figures.values()), several)


def shadow_report(hub: Hub, kind: str, period: str, *, out: Path | None = None) -> ShadowReport:
    """Compare the shadow ERP with the systems of record for ``time`` or ``expenses`` in a month.

    With ``out`` the report is also written there as JSON and CSV;
    ``ShadowReport.files`` lists the paths written.
    """
    kind, period = work_kind(kind), month(period)
    shadow = hub.config.erp_routing.shadow
    if shadow is None:
        raise UsageError(
            f"{hub.config.source}: no shadow ERP is configured; name one under `erp_routing: {{shadow: NAME}}`"
        )
    record = _read(hub, _record_erps(hub), kind, period)
    copies = _read(hub, [shadow], kind, period)
    lines: dict[str, ShadowLine] = {}
    differences: list[ShadowDifference] = []

    def line(project: str, erp: str) -> ShadowLine:
        if project not in lines:
            lines[project] = ShadowLine(project, period, erp)
        return lines[project]

    totals: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for key in sorted(set(record) | set(copies)):
        mine = record.get(key, [])
        theirs = copies.get(key, [])
        first = (mine or theirs)[0][1]
        project = str(first.project)
        ln = line(project, mine[0][0] if mine else "")
        for _, r in mine:
            ln.record_count += 1
            ln.record_entries += r.entries
            totals[project][0] += r.amount
        for _, r in theirs:
            ln.shadow_count += 1
            ln.shadow_entries += r.entries
            totals[project][1] += r.amount
        here = str(mine[0][1].amount) if mine else ""
        there = str(theirs[0][1].amount) if theirs else ""
        if not theirs:
            differences.append(ShadowDifference("missing_in_shadow", project, key, here, ""))
        elif not mine:
            differences.append(ShadowDifference("only_in_shadow", project, key, "", there))
        elif mine[0][1].amount != theirs[0][1].amount:
            differences.append(ShadowDifference("amount_differs", project, key, here, there))
        elif mine[0][1].hours != theirs[0][1].hours:
            differences.append(ShadowDifference("hours_differ", project, key, here, there))
    different = {d.project for d in differences}
    for project, ln in lines.items():
        ln.record_amount, ln.shadow_amount = str(totals[project][0]), str(totals[project][1])
        ln.count_difference = ln.shadow_count - ln.record_count
        ln.amount_difference = str(totals[project][1] - totals[project][0])
        ln.status = "different" if project in different else "same"
    report = ShadowReport(kind, period, shadow, [lines[p] for p in sorted(lines)], differences)
    if out is not None:
        report.files = write(report, out)
    return report


def write(report: ShadowReport, folder: Path) -> list[str]:
    """Write the report as JSON (everything) and CSV (lines, then differences)."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"shadow-{report.kind}-{report.period}"
    data = {
        "kind": report.kind,
        "period": report.period,
        "shadow": report.shadow,
        "differences_by_kind": report.counts(),
        "lines": [asdict(x) for x in report.lines],
        "differences": [asdict(d) for d in report.differences],
        "generated_at": datetime.now(UTC).isoformat(),
    }
    Path(f"{stem}.json").write_text(json.dumps(data, indent=2))
    columns = [f for f in ShadowLine.__dataclass_fields__]
    with open(f"{stem}.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        writer.writerows([getattr(x, c) for c in columns] for x in report.lines)
    with open(f"{stem}-differences.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["difference", "project", "key", "record_amount", "shadow_amount"])
        writer.writerows([d.kind, d.project, d.key, d.record, d.shadow] for d in report.differences)
    return [f"{stem}.json", f"{stem}.csv", f"{stem}-differences.csv"]


__all__ = [
    "ErpFigures",
    "Placement",
    "ShadowDifference",
    "ShadowLine",
    "ShadowReport",
    "shadow_report",
    "where_posted",
    "write",
]
