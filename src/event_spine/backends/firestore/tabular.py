"""FirestoreTabularStore: one document per row, values as JSON bytes."""

from __future__ import annotations

from typing import Any

import orjson
from google.api_core import exceptions as gexc
from google.cloud.firestore_v1.base_query import FieldFilter

from event_spine.backends.firestore.client import _FirestoreStore, _mapped
from event_spine.backends.firestore.layout import _hashed
from event_spine.schemas.scope import Scope


def _prefix_end(prefix: str) -> str:
    """The smallest string above every string that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class FirestoreTabularStore(_FirestoreStore):
    """TabularStore on Firestore: one document per row, values as JSON bytes."""

    _collection = "rows"

    async def _row(self, scope: Scope, table: str, key: str) -> tuple[Any, str]:
        scope_table = "|".join((*scope.key(), table))
        # Hashed: keys may hold "/" and, quoted, exceed the 1500-byte id limit.
        return (await self._col()).document(_hashed(f"{scope_table}|{key}", 16)), scope_table

    async def put(self, scope: Scope, table: str, key: str, value: dict[str, Any]) -> None:
        """Insert or replace (JSON bytes: Firestore maps cannot hold nested arrays)."""
        ref, scope_table = await self._row(scope, table, key)
        data = {"scope_table": scope_table, "key": key, "value": orjson.dumps(value)}
        with _mapped(self._what):
            await ref.set(data, **self._rpc)

    async def get(self, scope: Scope, table: str, key: str) -> dict[str, Any] | None:
        """One row."""
        ref, scope_table = await self._row(scope, table, key)
        with _mapped(self._what):
            snap = await ref.get(**self._rpc)
        if not snap.exists or (snap.get("scope_table"), snap.get("key")) != (scope_table, key):
            return None
        value: dict[str, Any] = orjson.loads(snap.get("value"))
        return value

    async def delete(self, scope: Scope, table: str, key: str) -> bool:
        """Remove a row; an ``exists`` precondition tells whether it was there."""
        ref, _ = await self._row(scope, table, key)
        client = await self._db()
        with _mapped(self._what):
            try:
                await ref.delete(option=client.write_option(exists=True), **self._rpc)
            except gexc.NotFound:
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
        """Rows by key prefix, in key order, paged by a range filter on the key."""
        _, scope_table = await self._row(scope, table, "")
        query = (await self._col()).where(filter=FieldFilter("scope_table", "==", scope_table))
        if after_key is not None and after_key >= prefix:
            query = query.where(filter=FieldFilter("key", ">", after_key))
        elif prefix:
            query = query.where(filter=FieldFilter("key", ">=", prefix))
        if prefix:
            query = query.where(filter=FieldFilter("key", "<", _prefix_end(prefix)))
        query = query.order_by("key").limit(limit)
        with _mapped(self._what):
            return [
                (snap.get("key"), orjson.loads(snap.get("value")))
                async for snap in query.stream(**self._rpc)
            ]
