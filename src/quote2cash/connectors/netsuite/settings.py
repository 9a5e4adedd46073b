"""Settings of a NetSuite system (token-based authentication, OAuth 1.0a)."""

from __future__ import annotations

from typing import Literal

from quote2cash.registry import SystemSettings


class NetSuiteSettings(SystemSettings):
    """A NetSuite account.

    Attributes:
        base_url: the account's SuiteTalk REST host.
        account: the account id (``1234567`` or ``1234567_SB1``), the OAuth realm.
        consumer_key: the integration record's consumer key.
        consumer_secret_env: the environment variable holding its consumer secret.
        token_id: the access token id.
        token_secret_env: the environment variable holding the token secret.
    """

    kind: Literal["netsuite"] = "netsuite"
    account: str
    consumer_key: str
    consumer_secret_env: str
    token_id: str
    token_secret_env: str
