"""The legacy ERP's answers (and the folder's failures) → the hub's errors.

A rejection row names one of the codes below (kept in
``details["vendor_code"]``, its reason in ``details["reason"]``): a posting
refused for a closed period is ``erp.period_closed``, any other refused posting
``erp.posting_rejected``, a refused customer or project ``vendor.rejected``. A
code the hub does not know, an acknowledgement file it cannot read and a file
that does not match its manifest are :class:`VendorPayloadError`; a folder
that cannot be reached is transient (a network share not mounted yet).
"""

from __future__ import annotations

from typing import Any

from quote2cash.errors import BusinessRuleError, HubError, Owner, TransientError, VendorPayloadError

SYSTEM = "flatfile"

#: Every rejection code of the documented layout, with what it means.
REJECTION_CODES: dict[str, str] = {
    "UNKNOWN_PROJECT": "the posting names a project the ERP does not hold (or has deleted)",
    "UNKNOWN_CUSTOMER": "the project names a customer the ERP does not hold",
    "PERIOD_CLOSED": "the transaction date falls in a closed (or missing) accounting period",
    "DEPARTMENT_INACTIVE": "the department (cost centre) is inactive or unknown",
    "SUBSIDIARY_INACTIVE": "the subsidiary is inactive or unknown",
    "CURRENCY_UNKNOWN": "the currency is not set up in the ERP",
    "TERMS_UNKNOWN": "the payment terms are not set up in the ERP",
    "BAD_AMOUNT": "the amount is not a decimal with the currency's minor-unit places",
    "BAD_ROW": "a cell cannot be read (date, number, flag) or a required cell is empty",
    "DUPLICATE_KEY": "the key is already held with different content",
    "MANIFEST_MISMATCH": "the file does not match its manifest (row count or SHA-256); nothing was imported",
    "BAD_LAYOUT": "the file's header is not the documented layout; nothing was imported",
    "REFUSED": "refused by the ERP team (the reason says why)",
}


def rejection_error(layout: str, code: str, reason: str, *, key: str, file: str, row: int) -> HubError:
    """The hub error of one rejection row of the file ``file`` (layout ``customer``/``project``/``postings``)."""
    details: dict[str, Any] = {"vendor_code": code, "reason": reason, "file": file, "row": row}
    if code not in REJECTION_CODES:
        return VendorPayloadError(
            f"the legacy ERP refused {key} (file {file}, row {row}) with the code {code!r}, which the hub "
            f"does not know: {reason}",
            system=SYSTEM,
            record=key,
            details=details,
        )
    if layout != "postings":
        return BusinessRuleError(
            f"the legacy ERP refused {layout} {key}: {reason} ({code})",
            code="vendor.rejected",
            system=SYSTEM,
            record=key,
            details=details,
        )
    return BusinessRuleError(
        f"the legacy ERP refused posting {key}: {reason} ({code})",
        code="erp.period_closed" if code == "PERIOD_CLOSED" else "erp.posting_rejected",
        owner=Owner.FINANCE,
        system=SYSTEM,
        record=key,
        details=details,
    )


def malformed_answer(file: str, problem: str, **details: Any) -> VendorPayloadError:
    """An acknowledgement or rejection file the hub cannot read."""
    return VendorPayloadError(
        f"the legacy ERP's answer file {file} cannot be read: {problem}",
        system=SYSTEM,
        record=file,
        details={"file": file, **details},
    )


def manifest_mismatch(file: str, problem: str, **details: Any) -> VendorPayloadError:
    """A file whose rows or checksum differ from its manifest (changed after it was written)."""
    return VendorPayloadError(
        f"the file {file} does not match its manifest: {problem}; it was changed after it was written",
        system=SYSTEM,
        record=file,
        details={"file": file, "reason": "manifest_mismatch", **details},
    )


def file_conflict(file: str, *, answered: bool) -> BusinessRuleError:
    """Different content for a file the ERP has (or may have) imported: a posted file is never replaced."""
    state = "acknowledged by the ERP" if answered else "published to the ERP (its manifest is written)"
    return BusinessRuleError(
        f"refusing to overwrite {file}, already {state}, with different content: a posting is never "
        "changed under its key; reverse it and post anew",
        code="vendor.rejected",
        system=SYSTEM,
        record=file,
        details={"file": file, "vendor_code": "FILE_CONFLICT"},
    )


def unreachable(path: str, problem: str) -> TransientError:
    """The exchange folder (or the file the ERP should have dropped in it) is not there."""
    return TransientError(
        f"the legacy ERP's folder cannot be read: {problem} ({path})",
        code="vendor.unreachable",
        system=SYSTEM,
        record=path,
    )


__all__ = [
    "REJECTION_CODES",
    "SYSTEM",
    "file_conflict",
    "malformed_answer",
    "manifest_mismatch",
    "rejection_error",
    "unreachable",
]
