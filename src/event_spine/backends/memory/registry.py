"""RegistryStore in a dict."""

from __future__ import annotations

from event_spine.backends.memory.config import MemoryConfig
from event_spine.errors import ConcurrentUpdate
from event_spine.schemas.routes import ResourceKind, ResourceRoute, RouteKey


class MemoryRegistryStore:
    """RegistryStore in a dict (tests; nothing survives the process)."""

    def __init__(self, config: MemoryConfig | None = None) -> None:
        self._routes: dict[RouteKey, ResourceRoute] = {}

    async def open(self) -> None:
        """Nothing to create."""

    async def close(self) -> None:
        """Nothing to release."""

    async def load(self, key: RouteKey) -> ResourceRoute | None:
        """One route."""
        return self._routes.get(key)

    async def find(
        self, resource_kind: ResourceKind, tenant_id: str, env: str, project_id: str
    ) -> list[ResourceRoute]:
        """Routes of a kind and scope, any mode."""
        return [
            r
            for k, r in self._routes.items()
            if k[:4] == (resource_kind, tenant_id, env, project_id)
        ]

    async def list_routes(self) -> list[ResourceRoute]:
        """Every route."""
        return list(self._routes.values())

    async def save(self, route: ResourceRoute, expected_version: int) -> None:
        """Compare-and-set (no await inside, so atomic on one loop)."""
        current = self._routes.get(route.key())
        if (current.version if current else 0) != expected_version:
            raise ConcurrentUpdate(f"{route.describe()} changed since it was read")
        self._routes[route.key()] = route
