"""The file "wire" to a legacy ERP: atomic CSV files with manifests, and the ERP's answers.

The hub writes each file to ``outbound/`` atomically (a hidden temporary file
in the same folder, ``fsync``, ``os.replace``, ``fsync`` of the folder), then
its manifest ``<stem>.manifest.json`` (file name, layout, row count, SHA-256,
created-at) the same way, last: the ERP's import job only takes a file whose
manifest is there, so it never sees a partial file. A file without a manifest
is a crash leftover the ERP ignores; writing the same file again completes it.

Names are deterministic (:meth:`FlatFileClient.publish`): writing the same
content under the same name again is skipped; a changed customer or project is
a new revision (``<stem>.r2``); a posting file's content never changes, and a
different content for a published name is refused. The ERP answers each file
with ``inbound/<stem>.rej.csv`` (refused rows, when there are any) and then
``inbound/<stem>.ack.csv`` (accepted rows, always written, last).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from quote2cash.connectors.flatfile.errors import (
    file_conflict,
    malformed_answer,
    manifest_mismatch,
    unreachable,
)
from quote2cash.connectors.flatfile.layout import (
    ACK_COLUMNS,
    LAYOUTS,
    REJ_COLUMNS,
    WHOLE_FILE,
    decode,
    encode,
)
from quote2cash.errors import VendorPayloadError

_REVISION = re.compile(r"^(?P<base>[A-Za-z0-9_-]+)(?:\.r(?P<rev>\d+))?$")


@dataclass(frozen=True)
class Manifest:
    """What a published file holds, written beside it once it is complete."""

    file: str
    layout: str
    rows: int
    sha256: str
    created_at: str

    def encode(self) -> bytes:
        """The manifest as JSON."""
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode("utf-8") + b"\n"


@dataclass(frozen=True)
class Answer:
    """The ERP's answer to one row of a file (``row`` 0 with key ``*``: the whole file refused)."""

    row: int
    key: str
    status: Literal["accepted", "rejected"]
    erp_id: str | None = None
    code: str | None = None
    reason: str | None = None


def layout_of(stem: str) -> str:
    """The layout (``customer``, ``project``, ``postings``) of a hub file, from its name."""
    prefix = stem.split("_", 1)[0]
    if prefix not in LAYOUTS:
        raise ValueError(f"{stem!r} is not the name of a hub file")
    return prefix


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FlatFileClient:
    """One exchange folder shared with a legacy ERP.

    ``replace`` is the publishing step of an atomic write (``os.replace``); a
    test passes one that stops the process to prove a crash leaves no partial
    file. ``calls`` counts files written and read.
    """

    system = "flatfile"

    def __init__(
        self,
        folder: Path,
        *,
        outbound: str = "outbound",
        inbound: str = "inbound",
        replace: Callable[[Path, Path], None] = os.replace,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.folder = Path(folder)
        self.outbound = self.folder / outbound
        self.inbound = self.folder / inbound
        self.calls = 0
        self.retries = 0
        self._replace = replace
        self._clock = clock
        self._lock = threading.RLock()
        self._rows: dict[str, list[dict[str, str]]] = {}
        self._answers: dict[str, list[Answer]] = {}

    def close(self) -> None:
        """Nothing is held open between calls."""

    def ensure_folders(self) -> None:
        """Create the outbound folder (the ERP creates inbound); transient if the folder is missing."""
        if not self.folder.is_dir():
            raise unreachable(str(self.folder), "the exchange folder does not exist or is not mounted")
        self.outbound.mkdir(exist_ok=True)

    # -- writing ------------------------------------------------------------------------
    def write_atomic(self, directory: Path, name: str, data: bytes) -> None:
        """Write ``directory/name`` so that a reader sees the whole file or none of it."""
        for stale in directory.glob(f".{name}.*.tmp"):  # left by a crash before the rename
            stale.unlink(missing_ok=True)
        tmp = directory / f".{name}.{secrets.token_hex(4)}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        self._replace(tmp, directory / name)
        _fsync_dir(directory)
        self.calls += 1

    def revisions(self, base: str) -> list[str]:
        """The stems of a file's revisions written so far (data file or manifest), oldest first."""
        found: dict[int, str] = {}
        for path in self.outbound.glob(f"{base}*"):
            stem = path.name.removesuffix(".manifest.json").removesuffix(".csv")
            match = _REVISION.match(stem)
            if match and match["base"] == base:
                found[int(match["rev"] or 1)] = stem
        return [found[r] for r in sorted(found)]

    def publish(self, base: str, rows: Sequence[Sequence[Any]], *, mutable: bool) -> str:
        """Write a file and then its manifest; returns the stem written (or found already written).

        The same content as the latest revision is not written again, unless
        the ERP refused some of it (then it is sent again as a new revision).
        Different content is a new revision when ``mutable`` (a changed
        customer or project); a posting file's content never changes, so it is
        refused once its manifest is out.
        """
        version, columns = LAYOUTS[layout_of(base)]
        data = encode(columns, rows)
        with self._lock:
            self.ensure_folders()
            stems = self.revisions(base)
            if stems:
                last = stems[-1]
                path = self.outbound / f"{last}.csv"
                existing = path.read_bytes() if path.exists() else None
                if self.manifest(last) is None:  # a crash leftover: the ERP has not taken it
                    if existing != data:
                        self.write_atomic(self.outbound, path.name, data)
                    self._write_manifest(last, version, data, len(rows))
                    return last
                answers = self.answers(last)
                if existing == data:
                    if answers is None or all(a.status == "accepted" for a in answers):
                        return last
                elif not mutable:
                    raise file_conflict(path.name, answered=answers is not None)
            stem = base if not stems else f"{base}.r{len(stems) + 1}"
            self.write_atomic(self.outbound, f"{stem}.csv", data)
            self._write_manifest(stem, version, data, len(rows))
            return stem

    def _write_manifest(self, stem: str, version: str, data: bytes, rows: int) -> None:
        manifest = Manifest(
            file=f"{stem}.csv",
            layout=version,
            rows=rows,
            sha256=hashlib.sha256(data).hexdigest(),
            created_at=self._clock().isoformat(timespec="microseconds").replace("+00:00", "Z"),
        )
        self.write_atomic(self.outbound, f"{stem}.manifest.json", manifest.encode())

    # -- reading what the hub wrote -----------------------------------------------------------
    def manifest(self, stem: str) -> Manifest | None:
        """The manifest of a published file, None while there is none."""
        path = self.outbound / f"{stem}.manifest.json"
        try:
            raw = json.loads(path.read_bytes())
            return Manifest(**raw)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            raise manifest_mismatch(f"{stem}.csv", f"its manifest cannot be read ({exc})") from exc

    def published(self, layout: str) -> list[tuple[str, Manifest]]:
        """The published files of a layout (those with a manifest), in the order the ERP takes them."""
        out = []
        for path in self.outbound.glob(f"{layout}_*.manifest.json"):
            stem = path.name.removesuffix(".manifest.json")
            manifest = self.manifest(stem)
            if manifest is not None:
                out.append((stem, manifest))
        return sorted(out, key=lambda sm: (sm[1].created_at, sm[0]))

    def rows(self, stem: str) -> list[dict[str, str]]:
        """The rows of a published file, checked against its manifest (kept once read)."""
        if stem in self._rows:
            return self._rows[stem]
        manifest = self.manifest(stem)
        if manifest is None:
            raise manifest_mismatch(f"{stem}.csv", "it has no manifest")
        data = (self.outbound / manifest.file).read_bytes()
        self.calls += 1
        digest = hashlib.sha256(data).hexdigest()
        if digest != manifest.sha256:
            raise manifest_mismatch(
                manifest.file, "the SHA-256 differs", expected=manifest.sha256, found=digest
            )
        rows = decode(
            data, LAYOUTS[layout_of(stem)][1], what=f"hub file {manifest.file}", record=manifest.file
        )
        if len(rows) != manifest.rows:
            raise manifest_mismatch(manifest.file, f"{len(rows)} rows where it states {manifest.rows}")
        self._rows[stem] = rows
        return rows

    # -- reading the ERP's answers -------------------------------------------------------------
    def answers(self, stem: str) -> list[Answer] | None:
        """The ERP's answer to every row of a published file, None until its acknowledgement file is there.

        Raises :class:`VendorPayloadError` when an answer file does not fit its
        layout, answers a row the file does not have (or under another key),
        or leaves a row unanswered.
        """
        if stem in self._answers:
            return self._answers[stem]
        ack_path = self.inbound / f"{stem}.ack.csv"
        try:
            ack_data = ack_path.read_bytes()
        except FileNotFoundError:
            return None
        self.calls += 1
        rej_path = self.inbound / f"{stem}.rej.csv"
        rej_data = rej_path.read_bytes() if rej_path.exists() else None
        rows = self.rows(stem)
        answers = self._parse_answers(ack_path.name, ack_data, "accepted", rows)
        if rej_data is not None:
            answers += self._parse_answers(rej_path.name, rej_data, "rejected", rows)
        whole = [a for a in answers if a.row == 0]
        if whole:
            answers = [
                Answer(n, r["key"], "rejected", code=whole[0].code, reason=whole[0].reason)
                for n, r in enumerate(rows, start=1)
            ]
        seen = sorted(a.row for a in answers)
        if seen != list(range(1, len(rows) + 1)):
            missing = sorted(set(range(1, len(rows) + 1)) - set(seen))
            twice = sorted({r for r in seen if seen.count(r) > 1})
            raise malformed_answer(
                ack_path.name, f"rows unanswered {missing[:10]}, answered twice {twice[:10]}", rows=len(rows)
            )
        answers.sort(key=lambda a: a.row)
        self._answers[stem] = answers
        return answers

    def _parse_answers(self, name: str, data: bytes, status: str, rows: list[dict[str, str]]) -> list[Answer]:
        columns = ACK_COLUMNS if status == "accepted" else REJ_COLUMNS
        try:
            cells = decode(data, columns, what=f"answer file {name}", record=name)
        except VendorPayloadError as exc:
            raise malformed_answer(name, exc.message) from exc
        out = []
        for n, c in enumerate(cells, start=1):
            try:
                row = int(c["row"])
            except ValueError:
                raise malformed_answer(name, f"line {n}: row {c['row']!r} is not a number") from None
            whole = status == "rejected" and row == 0 and c["key"] == WHOLE_FILE
            if not whole and not (1 <= row <= len(rows) and rows[row - 1]["key"] == c["key"]):
                raise malformed_answer(
                    name, f"line {n} answers row {row} as {c['key']!r}, which the file does not hold"
                )
            if c["status"] != status:
                raise malformed_answer(name, f"line {n} has the status {c['status']!r}, expected {status!r}")
            if status == "accepted":
                if not c["erp_id"]:
                    raise malformed_answer(name, f"line {n} accepts {c['key']} without an ERP id")
                out.append(Answer(row, c["key"], "accepted", erp_id=c["erp_id"]))
            else:
                if not c["code"]:
                    raise malformed_answer(name, f"line {n} refuses {c['key']} without a code")
                out.append(Answer(row, c["key"], "rejected", code=c["code"], reason=c["reason"]))
        return out

    def wait_answers(self, stem: str, seconds: float, poll: float) -> list[Answer] | None:
        """The answers to a file, waiting up to ``seconds`` for them (None: not answered in time)."""
        deadline = time.monotonic() + seconds
        while True:
            found = self.answers(stem)
            if found is not None or time.monotonic() >= deadline:
                return found
            time.sleep(min(poll, max(0.0, deadline - time.monotonic())))

    def inbound_file(self, name: str) -> bytes | None:
        """A file the ERP dropped in the inbound folder, None if it is not there."""
        if not self.folder.is_dir():
            raise unreachable(str(self.folder), "the exchange folder does not exist or is not mounted")
        try:
            data = (self.inbound / name).read_bytes()
        except FileNotFoundError:
            return None
        self.calls += 1
        return data


__all__ = ["Answer", "FlatFileClient", "Manifest", "layout_of"]
