"""Settings of a Kantata (Mavenlink) system (OAuth bearer token)."""

from __future__ import annotations

from typing import Literal

from quote2cash.registry import SystemSettings


class KantataSettings(SystemSettings):
    """A Kantata account.

    Attributes:
        base_url: the API root (``https://api.mavenlink.com/api/v1``).
        token_env: the environment variable holding the OAuth token.
        service_name: the name the hub's external references carry.
        cost_centre_field: the Kantata custom field (on time entries and expenses)
            in which people book an entry to a cost centre of its own, by name or
            ERP department id; None: entries post to their project's cost centre.
    """

    kind: Literal["kantata"] = "kantata"
    token_env: str
    service_name: str = "quote2cash"
    cost_centre_field: str | None = None
