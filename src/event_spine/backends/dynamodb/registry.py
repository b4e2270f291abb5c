"""DynamoRegistryStore: one item per route, compare-and-set on ``version``."""

from __future__ import annotations

from typing import Any

from event_spine.backends.dynamodb.layout import Item, _key, _n, _s
from event_spine.backends.dynamodb.table import _OneTable
from event_spine.errors import ConcurrentUpdate
from event_spine.schemas.routes import ResourceKind, ResourceRoute, RouteKey


def _route_pk(kind: ResourceKind, tenant_id: str, env: str, project_id: str, *_: str) -> str:
    return f"{kind.value}|{tenant_id}|{env}|{project_id}"


def _route_of(item: Item) -> ResourceRoute:
    return ResourceRoute.model_validate_json(item["b"]["S"])


class DynamoRegistryStore(_OneTable):
    """RegistryStore on DynamoDB: one item per route, compare-and-set on ``version``."""

    _table_field = "registry_table"

    async def load(self, key: RouteKey) -> ResourceRoute | None:
        """One route."""
        item = await self._table.get(_key(_route_pk(*key), key.mode))
        return None if item is None else _route_of(item)

    async def find(
        self, resource_kind: ResourceKind, tenant_id: str, env: str, project_id: str
    ) -> list[ResourceRoute]:
        """Routes of a kind and scope, any mode (one Query on the partition)."""
        pk = _route_pk(resource_kind, tenant_id, env, project_id)
        pages = self._table.pages(
            "query", KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": _s(pk)}
        )
        return [_route_of(item) async for page in pages for item in page]

    async def list_routes(self) -> list[ResourceRoute]:
        """Every route (a Scan: the registry is small and read rarely)."""
        return [_route_of(item) async for page in self._table.pages("scan") for item in page]

    async def save(self, route: ResourceRoute, expected_version: int) -> None:
        """Conditional put: the stored version must be ``expected_version`` (0: absent)."""
        item = {
            **_key(_route_pk(*route.key()), route.mode),
            "v": _n(route.version),
            "b": _s(route.model_dump_json()),
        }
        if expected_version == 0:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {
                "ConditionExpression": "#v = :v",
                "ExpressionAttributeNames": {"#v": "v"},
                "ExpressionAttributeValues": {":v": _n(expected_version)},
            }
        if not await self._table.conditional("put_item", Item=item, **condition):
            raise ConcurrentUpdate(
                f"{route.describe()} changed since it was read (expected version "
                f"{expected_version})"
            )
