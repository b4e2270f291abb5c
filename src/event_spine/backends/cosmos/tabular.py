"""CosmosTabularStore: a partition per scope and table, rows ordered by ``key``."""

from __future__ import annotations

from typing import Any

from azure.cosmos.exceptions import CosmosResourceNotFoundError

from event_spine.backends.base import DelegatedLifecycle
from event_spine.backends.cosmos.config import CosmosConfig
from event_spine.backends.cosmos.container import _Container, _mapped
from event_spine.backends.cosmos.layout import _indexing, _row_id, _row_pk
from event_spine.schemas.scope import Scope


class CosmosTabularStore(DelegatedLifecycle):
    """TabularStore on Cosmos: a partition per scope and table, rows ordered by ``key``."""

    def __init__(self, config: CosmosConfig) -> None:
        self._rows = self._resource = _Container(
            config, config.tabular_container, _indexing("/data/*")
        )

    async def put(self, scope: Scope, table: str, key: str, value: dict[str, Any]) -> None:
        """Insert or replace (upsert)."""
        item = {"id": _row_id(key), "pk": _row_pk(scope, table), "key": key, "data": value}
        with _mapped(self._rows.what):
            await self._rows.proxy.upsert_item(item)

    async def get(self, scope: Scope, table: str, key: str) -> dict[str, Any] | None:
        """One row."""
        item = await self._rows.find(_row_pk(scope, table), _row_id(key))
        return None if item is None else dict(item["data"])

    async def delete(self, scope: Scope, table: str, key: str) -> bool:
        """Remove a row; a 404 means it was not there."""
        with _mapped(self._rows.what):
            try:
                await self._rows.proxy.delete_item(
                    _row_id(key), partition_key=_row_pk(scope, table)
                )
            except CosmosResourceNotFoundError:
                return False
        return True

    async def list_prefix(
        self,
        scope: Scope,
        table: str,
        prefix: str = "",
        after_key: str | None = None,
        limit: int = 100,
    ) -> list[tuple[str, dict[str, Any]]]:
        """Rows by key prefix, in key order: a range on ``key``, never an offset."""
        pk = _row_pk(scope, table)
        items = await self._rows.query(
            "SELECT c.key, c.data FROM c WHERE c.pk = @pk AND STARTSWITH(c.key, @prefix)"
            " AND c.key > @after ORDER BY c.key",
            {"@pk": pk, "@prefix": prefix, "@after": after_key or ""},
            pk,
            limit,
        )
        return [(item["key"], dict(item["data"])) for item in items]
