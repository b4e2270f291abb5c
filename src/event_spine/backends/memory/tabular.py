"""TabularStore in a dict."""

from __future__ import annotations

import copy
from typing import Any

from event_spine.backends.memory.config import MemoryConfig
from event_spine.schemas.scope import Scope


class MemoryTabularStore:
    """TabularStore in a dict."""

    def __init__(self, config: MemoryConfig | None = None) -> None:
        self._rows: dict[tuple[tuple[str, str, str, str], str], dict[str, dict[str, Any]]] = {}

    async def open(self) -> None:
        """Nothing to create."""

    async def close(self) -> None:
        """Nothing to release."""

    def _table(self, scope: Scope, table: str) -> dict[str, dict[str, Any]]:
        return self._rows.setdefault((scope.key(), table), {})

    async def put(self, scope: Scope, table: str, key: str, value: dict[str, Any]) -> None:
        """Insert or replace (a deep copy, like a real store)."""
        self._table(scope, table)[key] = copy.deepcopy(value)

    async def get(self, scope: Scope, table: str, key: str) -> dict[str, Any] | None:
        """One row."""
        value = self._table(scope, table).get(key)
        return copy.deepcopy(value) if value is not None else None

    async def delete(self, scope: Scope, table: str, key: str) -> bool:
        """Remove a row."""
        return self._table(scope, table).pop(key, None) is not None

    async def list_prefix(
        self,
        scope: Scope,
        table: str,
        prefix: str = "",
        after_key: str | None = None,
        limit: int = 100,
    ) -> list[tuple[str, dict[str, Any]]]:
        """Rows by key prefix, in key order."""
        rows = self._table(scope, table)
        keys = sorted(k for k in rows if k.startswith(prefix) and k > (after_key or ""))
        return [(k, copy.deepcopy(rows[k])) for k in keys[:limit]]
