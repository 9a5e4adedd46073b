"""What every canonical record carries: where it came from."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Canonical(BaseModel):
    """Base of canonical records: source system, id and version travel with the data."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source_system: str = Field(description="system of record, e.g. 'salesforce'")
    source_id: str = Field(description="the record's id in its system of record")
    source_version: str | None = Field(
        default=None, description="the source's change stamp (e.g. SystemModstamp), for ordering"
    )
