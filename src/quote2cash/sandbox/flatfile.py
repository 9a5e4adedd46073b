"""A legacy flat-file ERP: the import job that takes the hub's CSV files and answers them.

The simulator plays the ERP's side of the documented file exchange
(``docs/flatfile-erp.md``) and knows nothing of the hub's connector code. A
thread watches ``outbound/`` like a scheduled import job: it takes each file
whose manifest is there, in manifest order, checks it against the manifest
(row count, SHA-256) and the layout, applies each row to its own ledger (a
SQLite file, committed row by row like the legacy job it stands for), and
writes ``inbound/<stem>.rej.csv`` (refused rows, if any) and then
``inbound/<stem>.ack.csv`` atomically. Rows are keyed by the hub's key, so a
file taken twice, or a key sent again in another file, holds one record.

It also exports its master data (``masterdata.json``) and its customers
(``customers.csv``) to ``inbound/``. Tests can close a period, deactivate a
department, refuse a key on purpose (:meth:`FlatFileErpSimulator.reject`) or
stop the job mid-file as a crash would (:meth:`FlatFileErpSimulator.crash_after`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import secrets
import sqlite3
import threading
import time
from calendar import monthrange
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from quote2cash.model.money import minor_units

#: The layouts the import job accepts, by file-name prefix (docs/flatfile-erp.md). Written
#: out here, as the ERP team's job would have them, not imported from the connector: a
#: connector whose layout drifts from the documented one is then refused (BAD_LAYOUT).
LAYOUTS = {
    "customer": ("key", "action", "name", "website", "tax_id", "country", "subsidiary", "currency", "terms"),
    "project": (
        "key",
        "action",
        "name",
        "customer",
        "subsidiary",
        "currency",
        "department",
        "class",
        "billing_model",
        "start_date",
        "end_date",
    ),
    "postings": (
        "key",
        "kind",
        "mode",
        "project",
        "erp_project",
        "task",
        "legal_entity",
        "subsidiary",
        "department",
        "period",
        "tran_date",
        "billable",
        "minutes",
        "hours",
        "amount",
        "currency",
        "entries",
        "debit_account",
        "credit_account",
        "reversal_of",
    ),
}
ID_PREFIX = {"customer": "C-", "project": "PRJ-", "postings": "JE-"}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS master (id INTEGER PRIMARY KEY CHECK (id = 1), data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS seq (kind TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS record (
    layout TEXT NOT NULL, key TEXT NOT NULL, erp_id TEXT NOT NULL, digest TEXT NOT NULL,
    data TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, file TEXT NOT NULL,
    PRIMARY KEY (layout, key));
CREATE TABLE IF NOT EXISTS imported (
    file TEXT PRIMARY KEY, accepted INTEGER NOT NULL, rejected INTEGER NOT NULL);
"""


class _Crash(Exception):
    """The import job stops here, as a killed process would."""


def default_master(
    subsidiaries: tuple[str, ...] = ("1", "2", "3", "4"),
    currencies: tuple[str, ...] = ("USD", "GBP", "EUR", "CHF", "SGD"),
    years: tuple[int, ...] = (2026, 2027),
) -> dict[str, Any]:
    """A legacy ERP's reference data: every subsidiary and month open, four departments, four terms."""
    return {
        "subsidiaries": [{"id": s, "name": f"Subsidiary {s}", "active": True} for s in subsidiaries],
        "currencies": [{"code": c, "id": c} for c in currencies],
        "terms": [{"id": str(d), "name": f"Net {d}"} for d in (15, 30, 45, 60)],
        "departments": [
            {"id": i, "name": n, "active": True}
            for i, n in (
                ("TECH", "Technology"),
                ("STRAT", "Strategy"),
                ("OPS", "Operations"),
                ("DATA", "Data"),
            )
        ],
        "classes": [],
        "periods": [
            {
                "name": f"{y}-{m:02d}",
                "start": date(y, m, 1).isoformat(),
                "end": date(y, m, monthrange(y, m)[1]).isoformat(),
                "closed": False,
            }
            for y in years
            for m in range(1, 13)
        ],
    }


class FlatFileErpSimulator:
    """The legacy ERP's import job over one exchange folder, with its own SQLite ledger."""

    def __init__(
        self,
        folder: Path,
        *,
        ledger: Path | None = None,
        master: dict[str, Any] | None = None,
        poll_seconds: float = 0.02,
    ) -> None:
        self.folder = Path(folder)
        self.outbound = self.folder / "outbound"
        self.inbound = self.folder / "inbound"
        self.outbound.mkdir(parents=True, exist_ok=True)
        self.inbound.mkdir(parents=True, exist_ok=True)
        self.poll_seconds = poll_seconds
        self.crashed = False
        self._db = sqlite3.connect(
            str(ledger or self.folder / "legacy-erp.sqlite"), check_same_thread=False, isolation_level=None
        )
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._crash_after: int | None = None
        self._forced: dict[str, tuple[str, str]] = {}
        if master is not None or self._master() is None:
            self._save_master(master or default_master())
        self.export()

    # -- running ---------------------------------------------------------------------------
    def start(self) -> FlatFileErpSimulator:
        """Watch the outbound folder in a background thread (again after a stop or a crash)."""
        self.stop()
        self.crashed = False
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="legacy-erp-import")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching (the ledger stays usable)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def close(self) -> None:
        """Stop and close the ledger."""
        self.stop()
        with self._lock:
            self._db.close()

    @property
    def running(self) -> bool:
        """Whether the import thread is alive (False after :meth:`stop` or a crash)."""
        return self._thread is not None and self._thread.is_alive()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except _Crash:
                self.crashed = True
                return
            self._stop.wait(self.poll_seconds)

    def crash_after(self, rows: int) -> None:
        """Stop the job mid-file once ``rows`` more rows are applied, without answering the file."""
        self._crash_after = rows

    def reject(self, key: str, code: str = "REFUSED", reason: str = "refused by the ERP team") -> None:
        """Refuse the row with this key the next time it is imported (any code, even an unknown one);
        the key ``*`` refuses the next posting row, whatever its key."""
        self._forced[key] = (code, reason)

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until every published file has been answered."""
        deadline = time.monotonic() + timeout
        while self._pending():
            if time.monotonic() > deadline:
                raise AssertionError(f"the legacy ERP did not answer {self._pending()} in {timeout}s")
            time.sleep(0.01)

    def _pending(self) -> list[str]:
        return [s for s, _ in self._ready() if not (self.inbound / f"{s}.ack.csv").exists()]

    # -- the import job ------------------------------------------------------------------------
    def _ready(self) -> list[tuple[str, dict[str, Any]]]:
        found = []
        for path in self.outbound.glob("*.manifest.json"):
            try:
                manifest = json.loads(path.read_bytes())
            except ValueError:
                manifest = {}
            found.append((path.name.removesuffix(".manifest.json"), manifest))
        return sorted(found, key=lambda sm: (str(sm[1].get("created_at", "")), sm[0]))

    def run_once(self) -> list[str]:
        """Import every published file not answered yet, oldest manifest first; returns their stems."""
        done = []
        with self._lock:
            for stem, manifest in self._ready():
                if (self.inbound / f"{stem}.ack.csv").exists():
                    continue
                self._import(stem, manifest)
                done.append(stem)
            if any(s.startswith("customer_") for s in done):
                self.export()
        return done

    def _import(self, stem: str, manifest: dict[str, Any]) -> None:
        layout = stem.split("_", 1)[0]
        columns = LAYOUTS.get(layout)
        path = self.outbound / f"{stem}.csv"
        data = path.read_bytes() if path.exists() else b""
        problem = self._check(data, manifest, columns)
        accepted: list[tuple[int, str, str]] = []
        refused: list[tuple[int, str, str, str]] = []
        if problem is not None:
            refused.append((0, "*", *problem))
        else:
            assert columns is not None
            rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))[1:]
            for n, cells in enumerate(rows, start=1):
                row = dict(zip(columns, cells, strict=True))
                outcome = self._apply(layout, row, stem)
                if outcome[0] == "accepted":
                    accepted.append((n, row["key"], outcome[1]))
                else:
                    refused.append((n, row["key"], outcome[1], outcome[2]))
                if self._crash_after is not None:
                    self._crash_after -= 1
                    if self._crash_after <= 0:
                        self._crash_after = None
                        raise _Crash(stem)
        if refused:
            self._write(
                f"{stem}.rej.csv",
                ("row", "key", "status", "code", "reason"),
                [(n, k, "rejected", c, r) for n, k, c, r in refused],
            )
        self._write(
            f"{stem}.ack.csv",
            ("row", "key", "status", "erp_id"),
            [(n, k, "accepted", i) for n, k, i in accepted],
        )
        self._db.execute(
            "INSERT OR REPLACE INTO imported VALUES (?, ?, ?)", (f"{stem}.csv", len(accepted), len(refused))
        )

    def _check(
        self, data: bytes, manifest: dict[str, Any], columns: tuple[str, ...] | None
    ) -> tuple[str, str] | None:
        if hashlib.sha256(data).hexdigest() != manifest.get("sha256"):
            return ("MANIFEST_MISMATCH", "the file's SHA-256 differs from its manifest")
        try:
            rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
        except (UnicodeDecodeError, csv.Error):
            return ("BAD_LAYOUT", "the file is not UTF-8 CSV")
        if len(rows) - 1 != manifest.get("rows"):
            return (
                "MANIFEST_MISMATCH",
                f"{len(rows) - 1} rows where the manifest states {manifest.get('rows')}",
            )
        if columns is None or not rows or tuple(rows[0]) != columns:
            return ("BAD_LAYOUT", "the header is not the documented layout of this file")
        if any(len(r) != len(columns) for r in rows[1:]):
            return ("BAD_LAYOUT", "a row has more or fewer cells than the header")
        return None

    def _apply(self, layout: str, row: dict[str, str], stem: str) -> tuple[str, str, str]:
        """Validate and store one row: ("accepted", erp id, "") or ("rejected", code, reason)."""
        key = row["key"]
        if key in self._forced:
            code, reason = self._forced.pop(key)
            return ("rejected", code, reason)
        if layout == "postings" and "*" in self._forced:
            code, reason = self._forced.pop("*")
            return ("rejected", code, reason)
        if not key:
            return ("rejected", "BAD_ROW", "the key is empty")
        if layout == "customer" and row["action"] == "update":
            # An update carries only what the hub owns: an empty cell keeps the ERP's value.
            found = self._db.execute(
                "SELECT data FROM record WHERE layout = 'customer' AND key = ?", (key,)
            ).fetchone()
            if found is None:
                return ("rejected", "UNKNOWN_CUSTOMER", f"customer {key} to update does not exist")
            row = {**json.loads(found[0]), **{k: v for k, v in row.items() if v}, "action": "upsert"}
        problem = {"customer": self._customer, "project": self._project, "postings": self._posting}[layout](
            row
        )
        if problem is not None:
            return ("rejected", *problem)
        digest = hashlib.sha256(json.dumps(row, sort_keys=True).encode()).hexdigest()
        held = self._db.execute(
            "SELECT erp_id, digest FROM record WHERE layout = ? AND key = ?", (layout, key)
        ).fetchone()
        if held is not None and layout == "postings":
            if held[1] != digest:
                return ("rejected", "DUPLICATE_KEY", f"{key} is already held as {held[0]} with other content")
            return ("accepted", held[0], "")
        if layout == "project" and row["action"] == "delete":
            if held is None:
                return ("accepted", "-", "")  # already gone is what was asked for
            self._db.execute("UPDATE record SET deleted = 1 WHERE layout = ? AND key = ?", (layout, key))
            return ("accepted", held[0], "")
        erp_id = held[0] if held is not None else f"{ID_PREFIX[layout]}{self._next_id(layout)}"
        self._db.execute(
            "INSERT OR REPLACE INTO record VALUES (?, ?, ?, ?, ?, 0, ?)",
            (layout, key, erp_id, digest, json.dumps(row), f"{stem}.csv"),
        )
        return ("accepted", erp_id, "")

    # -- validation of each layout ----------------------------------------------------------------
    def _subsidiary(self, sub: str) -> tuple[str, str] | None:
        subs = {s["id"]: s["active"] for s in self.master["subsidiaries"]}
        if not subs.get(sub):
            return ("SUBSIDIARY_INACTIVE", f"subsidiary {sub!r} is inactive or unknown")
        return None

    def _department(self, dept: str) -> tuple[str, str] | None:
        active = {d["id"] for d in self.master["departments"] if d["active"]}
        if dept and dept not in active:
            return ("DEPARTMENT_INACTIVE", f"department {dept!r} is inactive or unknown")
        return None

    def _customer(self, row: dict[str, str]) -> tuple[str, str] | None:
        if row["action"] != "upsert" or not row["name"]:
            return ("BAD_ROW", "a customer row needs the action 'upsert' and a name")
        if row["currency"] and row["currency"] not in {c["id"] for c in self.master["currencies"]}:
            return ("CURRENCY_UNKNOWN", f"currency {row['currency']!r} is not set up")
        if row["terms"] and row["terms"] not in {t["id"] for t in self.master["terms"]}:
            return ("TERMS_UNKNOWN", f"payment terms {row['terms']!r} are not set up")
        return self._subsidiary(row["subsidiary"])

    def _project(self, row: dict[str, str]) -> tuple[str, str] | None:
        if row["action"] == "delete":
            return None
        if row["action"] != "upsert" or not row["name"]:
            return ("BAD_ROW", "a project row needs the action 'upsert' or 'delete', and a name")
        if self._find("customer", row["customer"]) is None:
            return ("UNKNOWN_CUSTOMER", f"customer {row['customer']!r} is not held")
        return self._subsidiary(row["subsidiary"]) or self._department(row["department"])

    def _posting(self, row: dict[str, str]) -> tuple[str, str] | None:
        if self._find("project", row["erp_project"]) is None:
            return ("UNKNOWN_PROJECT", f"project {row['erp_project']!r} is not held")
        try:
            day = date.fromisoformat(row["tran_date"])
            minutes = int(row["minutes"])
            int(row["entries"])
        except ValueError:
            return ("BAD_ROW", "tran_date, minutes or entries cannot be read")
        if row["currency"] not in {c["code"] for c in self.master["currencies"]}:
            return ("CURRENCY_UNKNOWN", f"currency {row['currency']!r} is not set up")
        places = minor_units(row["currency"])
        pattern = rf"-?\d+\.\d{{{places}}}" if places else r"-?\d+"
        if not re.fullmatch(pattern, row["amount"]):
            return ("BAD_AMOUNT", f"amount {row['amount']!r} is not a decimal with {places} places")
        if row["hours"] != f"{minutes / 60:.2f}":
            return ("BAD_ROW", f"hours {row['hours']!r} do not match {minutes} minutes")
        period = next((p for p in self.master["periods"] if p["start"] <= day.isoformat() <= p["end"]), None)
        if period is None or period["closed"]:
            return ("PERIOD_CLOSED", f"{day.isoformat()} falls in no open accounting period")
        return self._subsidiary(row["subsidiary"]) or self._department(row["department"])

    def _find(self, layout: str, ref: str) -> str | None:
        """The key of a held record referred to by the hub's key or the ERP's id."""
        found = self._db.execute(
            "SELECT key FROM record WHERE layout = ? AND (key = ? OR erp_id = ?) AND deleted = 0",
            (layout, ref, ref),
        ).fetchone()
        return None if found is None else str(found[0])

    def _next_id(self, layout: str) -> int:
        row = self._db.execute("SELECT value FROM seq WHERE kind = ?", (layout,)).fetchone()
        value = (row[0] if row else 1000) + 1
        self._db.execute("INSERT OR REPLACE INTO seq VALUES (?, ?)", (layout, value))
        return int(value)

    # -- master data and exports ------------------------------------------------------------------
    def _master(self) -> dict[str, Any] | None:
        row = self._db.execute("SELECT data FROM master WHERE id = 1").fetchone()
        return None if row is None else dict(json.loads(row[0]))

    @property
    def master(self) -> dict[str, Any]:
        """The ERP's reference data (as exported to ``masterdata.json``)."""
        found = self._master()
        assert found is not None
        return found

    def _save_master(self, master: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO master VALUES (1, ?)", (json.dumps(master),))
            self._atomic("masterdata.json", json.dumps({"exported_at": _now(), **master}, indent=2).encode())

    def close_period(self, name: str, closed: bool = True) -> None:
        """Close (or reopen) an accounting period, and export the master data again."""
        master = self.master
        for p in master["periods"]:
            if p["name"] == name:
                p["closed"] = closed
        self._save_master(master)

    def set_department(self, dept_id: str, active: bool) -> None:
        """Activate or deactivate a department, and export the master data again."""
        master = self.master
        for d in master["departments"]:
            if d["id"] == dept_id:
                d["active"] = active
        self._save_master(master)

    def add_customer(self, name: str, *, website: str = "", tax_id: str = "", subsidiary: str = "1") -> str:
        """A customer keyed in by hand in the ERP (no hub key); returns its ERP id."""
        with self._lock:
            erp_id = f"C-{self._next_id('customer')}"
            row = {"name": name, "website": website, "tax_id": tax_id, "subsidiary": subsidiary}
            self._db.execute(
                "INSERT INTO record VALUES ('customer', ?, ?, '', ?, 0, '')",
                (erp_id, erp_id, json.dumps(row)),
            )
            self.export()
            return erp_id

    def export(self) -> None:
        """Write the customer export (``customers.csv``) as the ERP's nightly job would."""
        rows = []
        for key, erp_id, data, file in self._db.execute(
            "SELECT key, erp_id, data, file FROM record WHERE layout = 'customer' ORDER BY erp_id"
        ):
            r = json.loads(data)
            hub_key = key if file else ""
            rows.append(
                (
                    erp_id,
                    r["name"],
                    r.get("website", ""),
                    r.get("tax_id", ""),
                    hub_key,
                    r["subsidiary"],
                    "true",
                )
            )
        self._write(
            "customers.csv", ("id", "name", "website", "tax_id", "external_id", "subsidiary", "active"), rows
        )

    # -- what the ERP holds (for tests) ---------------------------------------------------------------
    def records(self, layout: str) -> list[dict[str, Any]]:
        """Every live record of a layout (``customer``, ``project``, ``postings``) with its ERP id."""
        return [
            {**json.loads(data), "key": key, "erp_id": erp_id}
            for key, erp_id, data in self._db.execute(
                "SELECT key, erp_id, data FROM record WHERE layout = ? AND deleted = 0 ORDER BY erp_id",
                (layout,),
            )
        ]

    def imported(self) -> dict[str, tuple[int, int]]:
        """Files answered so far: name -> (accepted rows, refused rows)."""
        return {f: (a, r) for f, a, r in self._db.execute("SELECT file, accepted, rejected FROM imported")}

    # -- writing -----------------------------------------------------------------------------------------
    def _write(self, name: str, header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        out = io.StringIO(newline="")
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows(rows)
        self._atomic(name, out.getvalue().encode("utf-8"))

    def _atomic(self, name: str, data: bytes) -> None:
        tmp = self.inbound / f".{name}.{secrets.token_hex(4)}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.inbound / name)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


__all__ = ["LAYOUTS", "FlatFileErpSimulator", "default_master"]
