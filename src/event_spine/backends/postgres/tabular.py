"""PostgresTabularStore: one row per (scope, table, key), value as JSON text."""

from __future__ import annotations

from typing import Any

import orjson

from event_spine.backends.base import DelegatedLifecycle
from event_spine.backends.postgres.config import PostgresConfig
from event_spine.backends.postgres.database import _ID, _Database, _mapped, _rowcount, _schema_ddl
from event_spine.schemas.scope import Scope

_ROWS_DDL = f"""
CREATE TABLE IF NOT EXISTS {{rows}} (
    tenant_id {_ID}, env {_ID}, mode {_ID}, project_id {_ID}, tbl {_ID}, key {_ID},
    value      json NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, env, mode, project_id, tbl, key)
);
"""
_ROW = "tenant_id = $1 AND env = $2 AND mode = $3 AND project_id = $4 AND tbl = $5"


def _prefix_end(prefix: str) -> str | None:
    """The smallest key above every key starting with ``prefix`` (keys are ASCII)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else None


class PostgresTabularStore(DelegatedLifecycle):
    """TabularStore on PostgreSQL: one row per (scope, table, key), value as JSON text.

    JSON (not JSONB) keeps the value's text exactly as written, so numbers and key
    order read back unchanged. ``list_prefix`` is a primary-key range scan.
    """

    def __init__(self, config: PostgresConfig) -> None:
        rows = config.table("rows")
        self._db = self._resource = _Database(
            config, "rows", _schema_ddl(config) + _ROWS_DDL.format(rows=rows), ["rows"]
        )
        self._put = (
            f"INSERT INTO {rows} (tenant_id, env, mode, project_id, tbl, key, value)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT"
            " (tenant_id, env, mode, project_id, tbl, key) DO UPDATE SET"
            " value = excluded.value, updated_at = now()"
        )
        self._get = f"SELECT value FROM {rows} WHERE {_ROW} AND key = $6"
        self._delete = f"DELETE FROM {rows} WHERE {_ROW} AND key = $6"
        self._list = (
            f"SELECT key, value FROM {rows} WHERE {_ROW} AND key >= $6 AND key > $7"
            " AND ($8::text IS NULL OR key < $8) ORDER BY key LIMIT $9"
        )

    async def put(self, scope: Scope, table: str, key: str, value: dict[str, Any]) -> None:
        """Insert or replace."""
        text = orjson.dumps(value).decode()
        with _mapped(self._db.where):
            await self._db.pool.execute(self._put, *scope.key(), table, key, text)

    async def get(self, scope: Scope, table: str, key: str) -> dict[str, Any] | None:
        """One row."""
        with _mapped(self._db.where):
            text = await self._db.pool.fetchval(self._get, *scope.key(), table, key)
        return None if text is None else orjson.loads(text)

    async def delete(self, scope: Scope, table: str, key: str) -> bool:
        """Remove a row; True if it existed."""
        with _mapped(self._db.where):
            status = await self._db.pool.execute(self._delete, *scope.key(), table, key)
        return _rowcount(status) > 0

    async def list_prefix(
        self,
        scope: Scope,
        table: str,
        prefix: str = "",
        after_key: str | None = None,
        limit: int = 100,
    ) -> list[tuple[str, dict[str, Any]]]:
        """Rows whose key starts with ``prefix``, after ``after_key``, in key order."""
        args = (*scope.key(), table, prefix, after_key or "", _prefix_end(prefix), limit)
        with _mapped(self._db.where):
            rows = await self._db.pool.fetch(self._list, *args)
        return [(key, orjson.loads(value)) for key, value in rows]
