"""RegistryStore: where routes persist. Implementations live in their backend modules."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from event_spine.schemas.routes import ResourceKind, ResourceRoute, RouteKey


@runtime_checkable
class RegistryStore(Protocol):
    """Durable route storage with compare-and-set writes."""

    async def open(self) -> None:
        """Create what the store needs. Idempotent."""

    async def close(self) -> None:
        """Release resources."""

    async def load(self, key: RouteKey) -> ResourceRoute | None:
        """The route at ``key``, or None."""

    async def find(
        self, resource_kind: ResourceKind, tenant_id: str, env: str, project_id: str
    ) -> list[ResourceRoute]:
        """Routes of a kind and scope, in any mode."""

    async def list_routes(self) -> list[ResourceRoute]:
        """Every route."""

    async def save(self, route: ResourceRoute, expected_version: int) -> None:
        """Write ``route`` only if the stored version is ``expected_version`` (0: absent).

        Raises ConcurrentUpdate otherwise, so two concurrent switches never lose one.
        """
