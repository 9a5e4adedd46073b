"""Financial dimensions and accounting periods."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field


class FinancialDimensions(BaseModel):
    """Where a posting lands in the ledger."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    legal_entity: str
    subsidiary: str | None = Field(default=None, description="ERP id of the subsidiary")
    practice: str | None = None
    department: str | None = None
    cost_centre: str | None = None
    region: str | None = None
    tax_code: str | None = None


class AccountingPeriod(BaseModel):
    """A month of the ledger, open or closed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    start: date
    end: date
    closed: bool = False

    def contains(self, day: date) -> bool:
        """Whether the day falls in this period."""
        return self.start <= day <= self.end
