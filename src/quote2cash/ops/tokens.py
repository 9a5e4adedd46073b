"""API tokens: scoped, stored hashed, created and revoked with ``q2c tokens``.

A token reads ``q2c_<id>_<secret>``. The hub keeps the id, the owner, the
scopes and the SHA-256 of the whole token, never the token itself: it is
shown once, when created. Scopes:

- ``read`` — every ``GET`` of the operations API, ``/metrics`` and the console;
- ``operate`` — the actions on cases, replays and reconciliation runs (implies ``read``);
- ``admin`` — managing tokens (implies ``operate``);
- ``webhook:<source>`` — a sender of that source's webhooks, where the source is
  configured to need a token besides its signature.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from quote2cash.errors import NotFoundError, UsageError
from quote2cash.ops._source import Source, read
from quote2cash.runtime.hub import Hub
from quote2cash.store import audit
from quote2cash.store.tables import api_token

WEBHOOK_SOURCES = ("salesforce", "stripe", "hubspot", "netsuite", "kantata")
SCOPES = ("read", "operate", "admin", *(f"webhook:{s}" for s in WEBHOOK_SOURCES))
#: What each scope also grants.
IMPLIES = {"admin": {"admin", "operate", "read"}, "operate": {"operate", "read"}, "read": {"read"}}
PREFIX = "q2c_"


@dataclass(frozen=True)
class Token:
    """A token as the hub knows it (never the secret).

    Attributes:
        id: the public part, shown in listings and the audit trail.
        owner: who acts with it; every mutating call is audited under ``token:<id> (<owner>)``.
        scopes: what it may do (see the module docstring).
        note: what it is for.
        created_at, expires_at, revoked_at, last_used_at: its life.
    """

    id: str
    owner: str
    scopes: tuple[str, ...]
    note: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def actor(self) -> str:
        """How the audit trail names who acted with this token."""
        return f"{self.owner} (token {self.id})"

    def allows(self, scope: str) -> bool:
        """Whether the token grants ``scope``."""
        return any(scope in IMPLIES.get(s, {s}) for s in self.scopes)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the API and ``q2c tokens list --json``."""
        return {
            "id": self.id,
            "owner": self.owner,
            "scopes": list(self.scopes),
            "note": self.note,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
        }


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _token(row: Any) -> Token:
    return Token(
        id=str(row.id),
        owner=str(row.owner),
        scopes=tuple(row.scopes or ()),
        note=row.note,
        created_at=_utc(row.created_at) or datetime.now(UTC),
        expires_at=_utc(row.expires_at),
        revoked_at=_utc(row.revoked_at),
        last_used_at=_utc(row.last_used_at),
    )


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_scopes(scopes: list[str]) -> list[str]:
    """The scopes, checked against :data:`SCOPES` (at least one)."""
    if not scopes:
        raise UsageError(f"a token needs at least one scope: {', '.join(SCOPES)}")
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise UsageError(f"unknown scope {unknown[0]!r}: use {', '.join(SCOPES)}")
    return sorted(set(scopes), key=SCOPES.index)


def create(
    hub: Hub,
    *,
    owner: str,
    scopes: list[str],
    actor: str,
    note: str | None = None,
    expires_in_days: float | None = None,
) -> tuple[Token, str]:
    """A new token for ``owner``; returns it and the token text, which is shown only now."""
    if not owner.strip():
        raise UsageError("a token needs an owner: the person or system that will use it")
    checked = check_scopes(scopes)
    if expires_in_days is not None and expires_in_days <= 0:
        raise UsageError("--expires-in-days must be positive")
    token_id = secrets.token_hex(6)
    text = f"{PREFIX}{token_id}_{secrets.token_urlsafe(24)}"
    now = datetime.now(UTC)
    row = {
        "id": token_id,
        "secret_hash": _digest(text),
        "owner": owner.strip(),
        "scopes": checked,
        "note": note,
        "created_at": now,
        "expires_at": now + timedelta(days=expires_in_days) if expires_in_days else None,
    }

    def record(conn: sa.Connection) -> None:
        conn.execute(sa.insert(api_token).values(**row))
        audit.append(
            conn,
            actor=actor,
            action="token.created",
            subject=f"token/{token_id}",
            after={"owner": row["owner"], "scopes": checked, "note": note},
        )

    hub.tx(record)
    return _token(_Row(row)), text


class _Row:
    """A token row given as a dict, read like a result row."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update({"revoked_at": None, "last_used_at": None, **values})


def list_tokens(source: Source, *, include_revoked: bool = False) -> list[Token]:
    """Every token, oldest first (revoked ones only when asked)."""

    def q(conn: sa.Connection) -> list[Token]:
        query = sa.select(api_token).order_by(api_token.c.created_at, api_token.c.id)
        if not include_revoked:
            query = query.where(api_token.c.revoked_at.is_(None))
        return [_token(r) for r in conn.execute(query)]

    return read(source, q)


def revoke(hub: Hub, token_id: str, *, actor: str) -> Token:
    """Revoke a token at once; it is refused from the next request on."""

    def record(conn: sa.Connection) -> Token:
        row = conn.execute(sa.select(api_token).where(api_token.c.id == token_id)).first()
        if row is None:
            raise NotFoundError(f"there is no API token {token_id}", code="token.not_found")
        if row.revoked_at is None:
            conn.execute(
                sa.update(api_token).where(api_token.c.id == token_id).values(revoked_at=datetime.now(UTC))
            )
            audit.append(
                conn,
                actor=actor,
                action="token.revoked",
                subject=f"token/{token_id}",
                after={"owner": row.owner},
            )
        return _token(conn.execute(sa.select(api_token).where(api_token.c.id == token_id)).one())

    return hub.tx(record)


def authenticate(source: Source, text: str) -> Token | None:
    """The live token ``text`` is, or None (unknown, wrong secret, revoked or expired)."""
    if not text.startswith(PREFIX) or text.count("_") < 2:
        return None
    token_id = text[len(PREFIX) :].split("_", 1)[0]

    def q(conn: sa.Connection) -> Token | None:
        row = conn.execute(sa.select(api_token).where(api_token.c.id == token_id)).first()
        if row is None or not hmac.compare_digest(str(row.secret_hash), _digest(text)):
            return None
        token = _token(row)
        now = datetime.now(UTC)
        if token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= now):
            return None
        last = token.last_used_at
        if last is None or now - last > timedelta(minutes=1):  # one write a minute, not one per call
            conn.execute(sa.update(api_token).where(api_token.c.id == token_id).values(last_used_at=now))
            conn.commit()
        return token

    return read(source, q)


__all__ = ["SCOPES", "Token", "authenticate", "check_scopes", "create", "list_tokens", "revoke"]
