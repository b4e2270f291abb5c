"""DynamoTabularStore: pk = scope|table, sk = row key, v = JSON."""

from __future__ import annotations

from typing import Any

import orjson

from event_spine.backends.dynamodb.layout import Item, _key, _s
from event_spine.backends.dynamodb.table import _OneTable
from event_spine.schemas.scope import Scope


def _rows_pk(scope: Scope, table: str) -> str:
    return "|".join((*scope.key(), table))


class DynamoTabularStore(_OneTable):
    """TabularStore on DynamoDB: pk = scope|table, sk = row key, v = JSON."""

    _table_field = "tabular_table"

    async def put(self, scope: Scope, table: str, key: str, value: dict[str, Any]) -> None:
        """Insert or replace (rows are limited to DynamoDB's 400 KB item size)."""
        item = {**_key(_rows_pk(scope, table), key), "v": _s(orjson.dumps(value).decode())}
        await self._table.call("put_item", Item=item)

    async def get(self, scope: Scope, table: str, key: str) -> dict[str, Any] | None:
        """One row."""
        item = await self._table.get(_key(_rows_pk(scope, table), key))
        return None if item is None else _value(item)

    async def delete(self, scope: Scope, table: str, key: str) -> bool:
        """Remove a row; the old item tells whether it existed."""
        response = await self._table.call(
            "delete_item", Key=_key(_rows_pk(scope, table), key), ReturnValues="ALL_OLD"
        )
        return bool(response.get("Attributes"))

    async def list_prefix(
        self,
        scope: Scope,
        table: str,
        prefix: str = "",
        after_key: str | None = None,
        limit: int = 100,
    ) -> list[tuple[str, dict[str, Any]]]:
        """Rows by key prefix, key > after_key, in key order: range queries, no offsets."""
        rows: list[tuple[str, dict[str, Any]]] = []
        after = after_key
        while len(rows) < limit:
            response = await self._table.call(
                "query",
                ConsistentRead=True,
                Limit=limit - len(rows),
                **_rows_range(_rows_pk(scope, table), prefix, after),
            )
            for item in response.get("Items", []):
                key = item["sk"]["S"]
                if not key.startswith(prefix):  # keys are sorted: past the prefix range
                    return rows
                rows.append((key, _value(item)))
            last = response.get("LastEvaluatedKey")
            if not last:
                break
            after = last["sk"]["S"]
        return rows


def _rows_range(pk: str, prefix: str, after: str | None) -> dict[str, Any]:
    """begins_with(prefix) while ``after`` sorts below the prefix (every key with it
    sorts above), else ``sk > after``, the caller stopping at the first key without it."""
    values: dict[str, Any] = {":pk": _s(pk)}
    condition = "pk = :pk"
    if after is not None and after >= prefix:
        condition += " AND sk > :after"
        values[":after"] = _s(after)
    elif prefix:
        condition += " AND begins_with(sk, :prefix)"
        values[":prefix"] = _s(prefix)
    return {"KeyConditionExpression": condition, "ExpressionAttributeValues": values}


def _value(item: Item) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(item["v"]["S"])
    return value
