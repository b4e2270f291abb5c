"""The API key table in a SQLite or PostgreSQL registry database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from event_spine.api.keys import ApiKey, KeyStore, row_to_key
from event_spine.backends.base import DelegatedLifecycle
from event_spine.backends.postgres.config import PostgresConfig
from event_spine.backends.sqlite.config import SqliteConfig
from event_spine.backends.sqlite.database import SqliteDatabase
from event_spine.errors import KeyStoreUnsupported
from event_spine.schemas.routes import BackendType

_COLUMNS = (
    "key_id, name, admin, tenant_id, env, mode, project_id, created_at, revoked_at, secret_sha256"
)
_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS spine_api_keys (
    key_id        TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    admin         INTEGER NOT NULL,
    tenant_id     TEXT,
    env           TEXT,
    mode          TEXT,
    project_id    TEXT,
    created_at    TEXT NOT NULL,
    revoked_at    TEXT,
    secret_sha256 TEXT NOT NULL
) WITHOUT ROWID;
"""


def _values(key: ApiKey, secret_hash: str) -> tuple[Any, ...]:
    s = key.scope
    return (
        key.key_id,
        key.name,
        int(key.admin),
        None if s is None else s.tenant_id,
        None if s is None else s.env,
        None if s is None else s.mode,
        None if s is None else s.project_id,
        key.created_at.isoformat(),
        None,
        secret_hash,
    )


class SqliteKeyStore(DelegatedLifecycle):
    """Keys in the registry's SQLite file (its own connection and thread)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._db = SqliteDatabase(SqliteConfig.model_validate(config), _SQLITE_SCHEMA)
        self._resource = self._db

    async def insert(self, key: ApiKey, secret_hash: str) -> None:
        """Store a new key."""

        def write() -> None:
            with self._db.transaction() as db:
                db.execute(
                    f"INSERT INTO spine_api_keys ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    _values(key, secret_hash),
                )

        await self._db.run(write)

    async def lookup(self, key_id: str) -> tuple[ApiKey, str] | None:
        """The key and its hash, or None."""

        def read() -> tuple[Any, ...] | None:
            return self._db.db.execute(  # type: ignore[no-any-return]
                f"SELECT {_COLUMNS} FROM spine_api_keys WHERE key_id = ?", (key_id,)
            ).fetchone()

        row = await self._db.run(read)
        return None if row is None else row_to_key(row)

    async def list_keys(self) -> list[ApiKey]:
        """Every key, oldest first."""

        def read() -> list[tuple[Any, ...]]:
            return self._db.db.execute(
                f"SELECT {_COLUMNS} FROM spine_api_keys ORDER BY created_at, key_id"
            ).fetchall()

        return [row_to_key(row)[0] for row in await self._db.run(read)]

    async def revoke(self, key_id: str, at: datetime) -> bool:
        """Mark an active key revoked."""

        def write() -> bool:
            with self._db.transaction() as db:
                cur = db.execute(
                    "UPDATE spine_api_keys SET revoked_at = ? WHERE key_id = ?"
                    " AND revoked_at IS NULL",
                    (at.isoformat(), key_id),
                )
                return cur.rowcount == 1

        return await self._db.run(write)


class PostgresKeyStore(DelegatedLifecycle):
    """Keys in the registry's PostgreSQL schema (``<prefix>api_keys``)."""

    def __init__(self, config: dict[str, Any]) -> None:
        # Imported here: asyncpg is the postgres extra's.
        from event_spine.backends.postgres.database import side_table  # noqa: PLC0415

        cfg = PostgresConfig.model_validate(config)
        self._table = cfg.table("api_keys")
        self._db = self._resource = side_table(
            cfg,
            "api_keys",
            "key_id text PRIMARY KEY, name text NOT NULL, admin boolean NOT NULL, tenant_id text,"
            " env text, mode text, project_id text, created_at timestamptz NOT NULL,"
            " revoked_at timestamptz, secret_sha256 text NOT NULL",
        )

    async def insert(self, key: ApiKey, secret_hash: str) -> None:
        """Store a new key."""
        values = list(_values(key, secret_hash))
        values[2] = key.admin
        values[7] = key.created_at
        await self._db.pool.execute(
            f"INSERT INTO {self._table} ({_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
            *values,
        )

    async def lookup(self, key_id: str) -> tuple[ApiKey, str] | None:
        """The key and its hash, or None."""
        row = await self._db.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM {self._table} WHERE key_id = $1", key_id
        )
        return None if row is None else row_to_key(tuple(row))

    async def list_keys(self) -> list[ApiKey]:
        """Every key, oldest first."""
        rows = await self._db.pool.fetch(
            f"SELECT {_COLUMNS} FROM {self._table} ORDER BY created_at, key_id"
        )
        return [row_to_key(tuple(r))[0] for r in rows]

    async def revoke(self, key_id: str, at: datetime) -> bool:
        """Mark an active key revoked."""
        status = await self._db.pool.execute(
            f"UPDATE {self._table} SET revoked_at = $2 WHERE key_id = $1 AND revoked_at IS NULL",
            key_id,
            at,
        )
        return str(status).endswith(" 1")


def key_store_for(backend: BackendType, config: dict[str, Any]) -> KeyStore:
    """The key store living in the registry's database."""
    if backend is BackendType.SQLITE:
        return SqliteKeyStore(config)
    if backend is BackendType.POSTGRES:
        return PostgresKeyStore(config)
    raise KeyStoreUnsupported(
        f"API keys live in the routing registry's database, which must be SQLite or "
        f"PostgreSQL; `--registry` is {backend.value}."
    )
