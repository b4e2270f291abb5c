"""API keys: bound to one scope or to admin, stored hashed next to the routes.

A key is ``spk_<key_id>_<secret>``: ``key_id`` (12 hex characters) finds the row,
``secret`` (32 random bytes, urlsafe base64) is checked against the stored
``sha256(secret)`` with a constant-time compare. The token is shown once, at
creation; only its hash is kept. A high-entropy secret needs no slow hash: a
brute force of 256 bits is out of reach, so sha256 costs ~1 µs per check instead
of the ~50 ms a password hash would add to every request.

The table ``spine_api_keys`` lives in the routing registry's own database (SQLite
file or PostgreSQL schema); its layout is in docs/api.md. Other registry
backends hold no keys (``KeyStoreUnsupported``, raised by ``keystores.key_store_for``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from event_spine.schemas.formats import compile_anchored
from event_spine.schemas.scope import Scope

TOKEN_RE: Final = compile_anchored(r"^spk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One key as stored (never the secret): its scope, or ``admin``."""

    key_id: str
    name: str
    admin: bool
    scope: Scope | None
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        """Not revoked."""
        return self.revoked_at is None

    def describe(self) -> str:
        """What the key may read, for messages."""
        return "admin" if self.admin or self.scope is None else self.scope.describe()

    def as_json(self) -> dict[str, Any]:
        """The key as `spine keys list --json` prints it."""
        return {
            "key_id": self.key_id,
            "name": self.name,
            "admin": self.admin,
            "scope": None if self.scope is None else self.scope.model_dump(),
            "created_at": self.created_at.isoformat(),
            "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
        }


def hash_secret(secret: str) -> str:
    """The stored form of a secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token() -> tuple[str, str, str]:
    """(key_id, secret, token) of a fresh key."""
    key_id = secrets.token_hex(6)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return key_id, secret, f"spk_{key_id}_{secret}"


def split_token(token: str) -> tuple[str, str] | None:
    """(key_id, secret) of a well-formed token, else None."""
    match = TOKEN_RE.match(token)
    return None if match is None else (match.group(1), match.group(2))


def secret_matches(secret: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented secret with the stored hash."""
    return hmac.compare_digest(hash_secret(secret).encode(), stored_hash.encode())


class KeyStore(Protocol):
    """Durable API keys."""

    async def open(self) -> None:
        """Create the table when missing. Idempotent."""

    async def close(self) -> None:
        """Release resources."""

    async def insert(self, key: ApiKey, secret_hash: str) -> None:
        """Store a new key."""

    async def lookup(self, key_id: str) -> tuple[ApiKey, str] | None:
        """The key and its stored hash, or None."""

    async def list_keys(self) -> list[ApiKey]:
        """Every key, revoked ones too, oldest first."""

    async def revoke(self, key_id: str, at: datetime) -> bool:
        """Mark a key revoked; False when no active key has that id."""


async def create_key(
    store: KeyStore, name: str, scope: Scope | None, *, admin: bool = False
) -> tuple[ApiKey, str]:
    """Store a new key; returns it and the token (shown once)."""
    if admin == (scope is not None):
        raise ValueError("a key is either admin or bound to one scope")
    key_id, secret, token = new_token()
    key = ApiKey(key_id, name, admin, scope, datetime.now(UTC))
    await store.insert(key, hash_secret(secret))
    return key, token


def row_to_key(row: tuple[Any, ...]) -> tuple[ApiKey, str]:
    """(key_id, name, admin, tenant, env, mode, project, created, revoked, hash) -> key."""
    key_id, name, admin, tenant, env, mode, project, created, revoked, secret_hash = row
    scope = None if admin else Scope(tenant_id=tenant, env=env, mode=mode, project_id=project)
    return (
        ApiKey(key_id, name, bool(admin), scope, _time(created), _time(revoked)),
        secret_hash,
    )


def _time(value: Any) -> Any:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))
