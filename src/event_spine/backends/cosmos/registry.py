"""CosmosRegistryStore: one item per route, compare-and-set through the etag."""

from __future__ import annotations

from event_spine.backends.base import DelegatedLifecycle
from event_spine.backends.cosmos.config import CosmosConfig
from event_spine.backends.cosmos.container import _Container
from event_spine.errors import ConcurrentUpdate
from event_spine.schemas.routes import ResourceKind, ResourceRoute, RouteKey


class CosmosRegistryStore(DelegatedLifecycle):
    """RegistryStore on Cosmos: one item per route, compare-and-set through the etag."""

    def __init__(self, config: CosmosConfig) -> None:
        self._routes = self._resource = _Container(config, config.registry_container, None)

    async def load(self, key: RouteKey) -> ResourceRoute | None:
        """One route."""
        pk = "|".join(key[:4])  # kind, tenant, env, project
        item = await self._routes.find(pk, key.mode)
        return None if item is None else ResourceRoute.model_validate(item["route"])

    async def find(
        self, resource_kind: ResourceKind, tenant_id: str, env: str, project_id: str
    ) -> list[ResourceRoute]:
        """Routes of a kind and scope, any mode: one partition."""
        pk = "|".join((resource_kind, tenant_id, env, project_id))
        items = await self._routes.query("SELECT c.route FROM c WHERE c.pk = @pk", {"@pk": pk}, pk)
        return [ResourceRoute.model_validate(item["route"]) for item in items]

    async def list_routes(self) -> list[ResourceRoute]:
        """Every route (a cross-partition query; the registry is small)."""
        items = await self._routes.query(
            "SELECT c.route FROM c WHERE c.kind = @kind", {"@kind": "route"}, None
        )
        return [ResourceRoute.model_validate(item["route"]) for item in items]

    async def save(self, route: ResourceRoute, expected_version: int) -> None:
        """Write only if the stored version is ``expected_version``; the etag closes the race."""
        key = route.key()
        pk = "|".join(key[:4])  # kind, tenant, env, project
        current = await self._routes.find(pk, key.mode)
        stale = ConcurrentUpdate(
            f"{route.describe()} changed since it was read (expected version {expected_version})"
        )
        if (current["version"] if current else 0) != expected_version:
            raise stale
        body = {"id": key.mode, "pk": pk, "kind": "route", "version": route.version}
        if not await self._routes.swap(body | {"route": route.model_dump(mode="json")}, current):
            raise stale
