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
    """

    kind: Literal["kantata"] = "kantata"
    token_env: str
    service_name: str = "quote2cash"
