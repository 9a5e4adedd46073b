"""Settings of a legacy ERP reached through CSV files in a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from quote2cash.registry import SystemSettings


class FlatFileSettings(SystemSettings):
    """A legacy ERP that imports the hub's CSV files and answers with files of its own.

    Attributes:
        base_url: not used (the folder is the address); kept optional for the common settings' sake.
        folder: the exchange folder (a local path or a mounted share) shared with the ERP's import job.
        outbound: sub-folder the hub writes customers, projects and postings to.
        inbound: sub-folder the ERP writes its master-data export, customer export and answers to.
        bulk_size: postings one file holds (one ``post`` call writes one file).
        ack_wait_seconds: how long a write waits for the ERP's answer before returning
            (0: do not wait; the answer is read later, by ``posted`` and ``rejections``).
        poll_seconds: how often a waiting write looks for the answer.
    """

    kind: Literal["flatfile"] = "flatfile"
    base_url: str | None = None  # type: ignore[assignment]  # a folder has no URL
    folder: Path
    outbound: str = Field(default="outbound", pattern=r"^[A-Za-z0-9_.-]+$")
    inbound: str = Field(default="inbound", pattern=r"^[A-Za-z0-9_.-]+$")
    bulk_size: int = Field(default=500, ge=1, le=10_000)
    ack_wait_seconds: float = Field(default=0.0, ge=0, le=600)
    poll_seconds: float = Field(default=0.2, gt=0, le=60)
