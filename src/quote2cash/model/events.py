"""The business-event envelope every change travels in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = "1.0"


class BusinessEvent(BaseModel):
    """One change crossing the hub, e.g. ``opportunity.closed_won``.

    ``id`` is the source event id when the source has one, so a redelivery
    carries the same id and the inbox drops it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    type: str = Field(pattern=r"^[a-z_]+(\.[a-z_]+)+$")
    source: str = Field(description="system the event came from, e.g. 'salesforce'")
    subject: str = Field(description="the record the event is about, e.g. 'Opportunity/006…'")
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    correlation_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    causation_id: str | None = None
    schema_version: str = SCHEMA_VERSION
    payload: dict[str, Any] = Field(default_factory=dict)

    @field_validator("time")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("event time must be timezone-aware (UTC)")
        return value.astimezone(UTC)
