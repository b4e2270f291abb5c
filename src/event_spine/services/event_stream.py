"""EventStreamService: read a stream through its route, scoped to the caller."""

from __future__ import annotations

from event_spine.backends.base import StreamCursor
from event_spine.backends.factory import StoreFactory
from event_spine.backends.seams import EventStore
from event_spine.errors import RouteNotFound
from event_spine.routing.registry import RoutingRegistry
from event_spine.schemas.context import RequestContext
from event_spine.schemas.query import EventPage, EventQuery, StreamPage
from event_spine.schemas.routes import ResourceKind, ResourceRoute, RouteKey
from event_spine.schemas.wire import StoredEvent


class EventStreamService:
    """Routed, scope-checked reads of one caller's streams.

    Reads go to the ``event_stream`` route when one is registered for the scope,
    else to the ``event_spine`` route the sink writes to. With neither, RouteNotFound.
    """

    def __init__(
        self, ctx: RequestContext, registry: RoutingRegistry, stores: StoreFactory
    ) -> None:
        self.ctx = ctx
        self.registry = registry
        self.stores = stores

    async def route(self) -> ResourceRoute:
        """The route reads use."""
        c = self.ctx
        try:
            route = await self.registry.get_route(
                RouteKey.for_scope(ResourceKind.EVENT_STREAM, c.key())
            )
        except RouteNotFound:
            route = await self.registry.get_route(
                RouteKey.for_scope(ResourceKind.EVENT_SPINE, c.key())
            )
        return route

    async def _store(self) -> EventStore:
        return await self.stores.event_store(await self.route())

    async def list_after(
        self, stream_id: str, last_event_id: str | None = None, limit: int = 100
    ) -> list[StoredEvent]:
        """Up to ``limit`` durable events after ``last_event_id``, in stream order."""
        store = await self._store()
        return await store.list_after(self.ctx.scope, stream_id, last_event_id, limit)

    async def get(self, event_id: str) -> StoredEvent | None:
        """One event of the caller's scope, or None (an id only another scope holds too)."""
        return await (await self._store()).get(self.ctx.scope, event_id)

    async def cursor(self, stream_id: str) -> StreamCursor | None:
        """The stream's checkpoint."""
        return await (await self._store()).cursor(self.ctx.scope, stream_id)

    async def query(self, q: EventQuery) -> EventPage:
        """One page of the caller's visible events that ``q`` selects (schemas.query)."""
        return await (await self._store()).query(self.ctx.scope, q)

    async def list_streams(
        self, prefix: str | None = None, limit: int = 100, after: str | None = None
    ) -> StreamPage:
        """Up to ``limit`` of the caller's streams in id order; ``after`` is a cursor."""
        store = await self._store()
        return await store.list_streams(self.ctx.scope, prefix, limit, after)

    async def count_event_types(self, stream_id: str) -> dict[str, int]:
        """How many visible events of each type the caller's stream holds."""
        return await (await self._store()).count_event_types(self.ctx.scope, stream_id)
