"""Settings of a HubSpot system (a private app's access token)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from quote2cash.registry import SystemSettings


class HubSpotSettings(SystemSettings):
    """A HubSpot portal.

    Attributes:
        base_url: the API host (``https://api.hubapi.com``, or a sandbox's URL).
        access_token_env: the environment variable holding the private app's
            access token (``pat-…``); the app needs the ``crm.objects.deals``,
            ``crm.objects.companies``, ``crm.objects.line_items`` and
            ``crm.schemas.*`` scopes (read and write).
        pipeline: the internal id of the deal pipeline the hub watches.
        won_stage: the internal id of that pipeline's closed-won stage.
        search_page_size: deals one search page asks for (HubSpot allows 200).
        search_result_cap: results one search query can reach (HubSpot: 10 000);
            the closed-won feed starts a new window before it.
        max_events_per_poll: closed-won deals one poll reads at most; the rest
            follow on the next poll, from the cursor.
    """

    kind: Literal["hubspot"] = "hubspot"
    access_token_env: str
    pipeline: str = "default"
    won_stage: str = "closedwon"
    search_page_size: int = Field(default=200, ge=1, le=200)
    search_result_cap: int = Field(default=10_000, ge=1)
    max_events_per_poll: int = Field(default=5_000, ge=1)
