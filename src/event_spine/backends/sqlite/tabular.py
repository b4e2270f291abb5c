"""SqliteTabularStore: rows by scope, table and key."""

from __future__ import annotations

from typing import Any

import orjson

from event_spine.backends.base import DelegatedLifecycle
from event_spine.backends.sqlite.config import SqliteConfig
from event_spine.backends.sqlite.database import SqliteDatabase
from event_spine.schemas.scope import Scope

_TABULAR_SCHEMA = """
CREATE TABLE IF NOT EXISTS spine_rows (
    tenant_id  TEXT NOT NULL,
    env        TEXT NOT NULL,
    mode       TEXT NOT NULL,
    project_id TEXT NOT NULL,
    tbl        TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      BLOB NOT NULL,
    PRIMARY KEY (tenant_id, env, mode, project_id, tbl, key)
) WITHOUT ROWID;
"""
_ROW = "tenant_id = ? AND env = ? AND mode = ? AND project_id = ? AND tbl = ?"


class SqliteTabularStore(DelegatedLifecycle):
    """TabularStore on SQLite."""

    def __init__(self, config: SqliteConfig) -> None:
        self._database = self._resource = SqliteDatabase(config, _TABULAR_SCHEMA)

    async def put(self, scope: Scope, table: str, key: str, value: dict[str, Any]) -> None:
        """Insert or replace."""
        data = orjson.dumps(value)

        def write() -> None:
            with self._database.transaction() as db:
                db.execute(
                    "INSERT OR REPLACE INTO spine_rows VALUES (?,?,?,?,?,?,?)",
                    (*scope.key(), table, key, data),
                )

        await self._database.run(write)

    async def get(self, scope: Scope, table: str, key: str) -> dict[str, Any] | None:
        """One row."""

        def read() -> dict[str, Any] | None:
            row = self._database.db.execute(
                f"SELECT value FROM spine_rows WHERE {_ROW} AND key = ?",
                (*scope.key(), table, key),
            ).fetchone()
            return None if row is None else orjson.loads(row[0])

        return await self._database.run(read)

    async def delete(self, scope: Scope, table: str, key: str) -> bool:
        """Remove a row."""

        def write() -> bool:
            with self._database.transaction() as db:
                cursor = db.execute(
                    f"DELETE FROM spine_rows WHERE {_ROW} AND key = ?",
                    (*scope.key(), table, key),
                )
            return cursor.rowcount > 0

        return await self._database.run(write)

    async def list_prefix(
        self,
        scope: Scope,
        table: str,
        prefix: str = "",
        after_key: str | None = None,
        limit: int = 100,
    ) -> list[tuple[str, dict[str, Any]]]:
        """Rows by key prefix, in key order."""

        def read() -> list[tuple[str, dict[str, Any]]]:
            rows = self._database.db.execute(
                f"SELECT key, value FROM spine_rows WHERE {_ROW}"
                " AND substr(key, 1, ?) = ? AND key > ? ORDER BY key LIMIT ?",
                (*scope.key(), table, len(prefix), prefix, after_key or "", limit),
            ).fetchall()
            return [(key, orjson.loads(value)) for key, value in rows]

        return await self._database.run(read)
