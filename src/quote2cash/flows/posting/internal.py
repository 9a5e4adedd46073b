"""Internal projects: PSA projects with no deal behind them (bench, pre-sales,
training), mapped to a legal entity and a cost centre by configuration, so their
time and expenses post as cost instead of waiting as "project unknown"."""

from __future__ import annotations

from typing import Any

from quote2cash.model import BillingModel
from quote2cash.ports import ErpMasterData
from quote2cash.runtime.hub import Hub


def internal_projects(hub: Hub, erps: dict[str, ErpMasterData]) -> list[dict[str, Any]]:
    """The configured internal projects, shaped like ``project_registry`` rows.

    Their time and expenses are cost: no client, no ERP project, posted to the
    cost centre named in the config (resolved to its ERP department id; a name
    the ERP does not know stays as it is, and the cost-centre rule opens a case).
    """
    rows = []
    for ws, internal in hub.config.internal_projects.items():
        entity = hub.legal_entities[internal.legal_entity]
        erp = hub.config.erp_for(internal.legal_entity, None)
        departments = erps[erp].departments if erp in erps else {}
        rows.append(
            {
                "canonical_id": f"internal-{ws}",
                "name": internal.name,
                "psa_workspace_id": ws,
                "erp_job_id": None,
                "erp": erp,
                "customer_id": None,
                "start_date": None,
                "legal_entity": internal.legal_entity,
                "subsidiary": hub.subsidiary_of[internal.legal_entity],
                "currency": entity.base_currency,
                "billing_model": BillingModel.INTERNAL.value,
                "rate_card": None,
                "department": departments.get(internal.cost_centre, internal.cost_centre),
                "open_for_time": True,
                "open_for_expenses": True,
            }
        )
    return rows
