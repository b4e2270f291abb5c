"""SpineTimeline: the durable path, through the spine like every event.

append = a fire-and-forget emit of a ``timeline.<kind>`` event into the stream
``timeline/<name>`` (entry_id = event_id, so a retried append stores one entry);
list_after = EventStreamService on the scope's route. An entry is readable once the
sink has written it (read-your-writes needs the memory store: ``write_both``).
"""

from __future__ import annotations

from event_spine.backends.factory import StoreFactory
from event_spine.producers.producer import EventSpineProducer
from event_spine.routing.registry import RoutingRegistry
from event_spine.schemas.context import RequestContext
from event_spine.schemas.scope import Scope
from event_spine.services.event_stream import EventStreamService
from event_spine.timeline.base import TIMELINE_EVENT_PREFIX, TimelineEntry, timeline_stream


def emit_timeline_entry(
    producer: EventSpineProducer, ctx: RequestContext, name: str, entry: TimelineEntry
) -> str:
    """Emit one entry into ``timeline/<name>`` of the context's scope (sync, no I/O)."""
    return producer.emit_event(
        ctx,
        f"{TIMELINE_EVENT_PREFIX}{entry.kind}",
        timeline_stream(name),
        entry.payload(),
        event_id=entry.entry_id,
    )


class SpineTimeline:
    """Timelines of one scope, stored by the sink in the scope's routed store."""

    def __init__(
        self,
        scope: Scope,
        producer: EventSpineProducer,
        registry: RoutingRegistry,
        stores: StoreFactory,
    ) -> None:
        self.scope = scope
        self.producer = producer
        self.registry = registry
        self.stores = stores

    async def append(self, ctx: RequestContext, name: str, entry: TimelineEntry) -> str:
        """Hand the entry to the producer (durable once the sink writes it)."""
        ctx.require_same_scope(self.scope)
        return emit_timeline_entry(self.producer, ctx, name, entry)

    async def list_after(
        self, ctx: RequestContext, name: str, after_id: str | None = None, limit: int = 100
    ) -> list[TimelineEntry]:
        """Durable entries after ``after_id``, read through the scope's route."""
        ctx.require_same_scope(self.scope)
        service = EventStreamService(ctx, self.registry, self.stores)
        events = await service.list_after(timeline_stream(name), after_id, limit)
        return [TimelineEntry.from_event(event) for event in events]
