"""Every error code the hub raises is in the catalogue, with an owner and a meaning."""

from __future__ import annotations

import re
from pathlib import Path

import quote2cash
from quote2cash.errors import CATALOGUE, HubError

SRC = Path(quote2cash.__file__).parent
CODE = re.compile(r"""code\s*=\s*["']([a-z_]+\.[a-z_]+)["']""")


def test_every_code_raised_in_the_source_is_in_the_catalogue() -> None:
    used: dict[str, str] = {}
    for path in SRC.rglob("*.py"):
        if "sandbox" in path.parts:
            continue  # the vendors' own codes, not the hub's
        for code in CODE.findall(path.read_text()):
            used.setdefault(code, str(path.relative_to(SRC)))
    missing = {code: where for code, where in used.items() if code not in CATALOGUE}
    assert missing == {}
    assert len(used) > 40  # the scan itself found the codes


def test_catalogue_entries_are_complete() -> None:
    for code, entry in CATALOGUE.items():
        assert entry.code == code and entry.meaning.endswith(".") and 400 <= entry.http_status < 600
    # Retryable codes are exactly the transient ones; an error takes its owner from the catalogue.
    assert {c for c, e in CATALOGUE.items() if e.retryable} == {
        "vendor.unreachable",
        "vendor.timeout",
        "vendor.throttled",
        "vendor.server_error",
        "vendor.write_in_doubt",
        "vendor.reader_failed",
        "api.busy",  # the hub's own database, briefly locked: the API client sends again
    }
    assert str(HubError("x", code="erp.period_closed").owner) == "finance"
