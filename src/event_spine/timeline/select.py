"""Timelines: the timeline store of a scope, chosen by its ``event_spine`` route.

The routing registry decides, never an environment variable: a scope whose
``event_spine`` route names an in-process backend (``BackendSpec.in_process``: the
``memory`` backend) gets a MemoryTimeline (one per scope, kept by this object); any
other backend gets the durable SpineTimeline.
With ``write_both=True`` a durable scope gets a TeeTimeline: appends go to memory
and to the spine; reads come from memory (read-your-writes within this process),
and ``.durable`` reads what the sink stored (every process's entries).
"""

from __future__ import annotations

from event_spine.backends.catalog import spec_of
from event_spine.backends.factory import StoreFactory
from event_spine.producers.emit import get_default_producer
from event_spine.producers.producer import EventSpineProducer
from event_spine.routing.registry import RoutingRegistry
from event_spine.schemas.context import RequestContext
from event_spine.schemas.routes import ResourceKind, RouteKey
from event_spine.schemas.scope import Scope
from event_spine.timeline.base import TimelineEntry, TimelineStore
from event_spine.timeline.memory import MemoryTimeline
from event_spine.timeline.spine import SpineTimeline


class TeeTimeline:
    """Writes both stores, reads the fast one."""

    def __init__(self, memory: MemoryTimeline, durable: SpineTimeline) -> None:
        self.scope = memory.scope
        self.memory = memory
        self.durable = durable

    async def append(self, ctx: RequestContext, name: str, entry: TimelineEntry) -> str:
        """Append to memory first (it checks scope), then hand over to the spine."""
        await self.memory.append(ctx, name, entry)
        return await self.durable.append(ctx, name, entry)

    async def list_after(
        self, ctx: RequestContext, name: str, after_id: str | None = None, limit: int = 100
    ) -> list[TimelineEntry]:
        """From memory: this process's entries, at once."""
        return await self.memory.list_after(ctx, name, after_id, limit)


class Timelines:
    """Hands out the timeline store of each caller's scope."""

    def __init__(
        self,
        registry: RoutingRegistry,
        stores: StoreFactory,
        producer: EventSpineProducer | None = None,
        *,
        write_both: bool = False,
    ) -> None:
        self.registry = registry
        self.stores = stores
        self.producer = producer
        self.write_both = write_both
        self._memory: dict[tuple[str, str, str, str], MemoryTimeline] = {}

    def memory(self, scope: Scope) -> MemoryTimeline:
        """The process-local timeline store of ``scope`` (created on first use)."""
        store = self._memory.get(scope.key())
        if store is None:
            store = self._memory[scope.key()] = MemoryTimeline(scope)
        return store

    async def for_context(self, ctx: RequestContext) -> TimelineStore:
        """The store the scope's ``event_spine`` route selects (RouteNotFound without one)."""
        route = await self.registry.get_route(
            RouteKey.for_scope(ResourceKind.EVENT_SPINE, ctx.key())
        )
        scope = ctx.scope
        if spec_of(route.backend_type).in_process:
            return self.memory(scope)
        producer = self.producer or get_default_producer()
        durable = SpineTimeline(scope, producer, self.registry, self.stores)
        if self.write_both:
            return TeeTimeline(self.memory(scope), durable)
        return durable
