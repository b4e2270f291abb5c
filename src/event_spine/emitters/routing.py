"""The routing service's hook: audit events for every lookup and change, plus a
timeline entry for every switch (``timeline/routing`` of the route's scope).

Install it on the registry the routing service uses::

    registry = RoutingRegistry(store, routing_hook(producer))

or open one with ``audited_registry`` (what the CLI commands do): every lookup,
failed lookup and change is audited unless the caller opts out explicitly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

from event_spine.audit.emit import registry_audit_hook, route_context
from event_spine.backends.seams import RegistryStore
from event_spine.errors import SpineError
from event_spine.kafka.settings import KafkaSettings
from event_spine.producers.producer import EventSpineProducer
from event_spine.producers.settings import ProducerSettings
from event_spine.routing.registry import UPDATE, AuditHook, RoutingRegistry
from event_spine.schemas.routes import RouteKey
from event_spine.timeline.base import TimelineEntry
from event_spine.timeline.spine import emit_timeline_entry

ROUTING_TIMELINE: Final = "routing"
log = logging.getLogger(__name__)


def routing_hook(
    producer: EventSpineProducer,
    *,
    actor_type: str = "service",
    timeline: str = ROUTING_TIMELINE,
) -> AuditHook:
    """registry_audit_hook, and a ``route.switch`` timeline entry for each switch."""
    audit = registry_audit_hook(producer, actor_type)

    def hook(action: str, key: RouteKey, details: dict[str, Any]) -> None:
        audit(action, key, details)
        if action != UPDATE or details.get("change") != "switch":
            return
        try:
            emit_timeline_entry(
                producer, route_context(key, details), timeline, _switch_entry(key, details)
            )
        except SpineError as exc:
            # Like the audit hook: routing keeps working when the timeline cannot.
            log.warning("timeline entry for the switch of %s not emitted: %s", key, exc)

    return hook


@asynccontextmanager
async def audited_registry(
    store: RegistryStore,
    *,
    audit_kafka: KafkaSettings | None,
    audit_topic: str = "spine.events",
    actor_type: str = "service",
) -> AsyncIterator[RoutingRegistry]:
    """A registry over the opened ``store`` whose lookups and changes become audit events
    (``routing_hook``) sent to ``audit_topic``; ``audit_kafka=None`` is the explicit opt-out.

    On exit the registry store is closed and the audit producer flushed and closed;
    undelivered audit events are logged."""
    producer = None
    if audit_kafka is not None:
        producer = EventSpineProducer(ProducerSettings(kafka=audit_kafka, topic=audit_topic))
    try:
        hook = routing_hook(producer, actor_type=actor_type) if producer is not None else None
        yield RoutingRegistry(store, hook)
    finally:
        await store.close()
        if producer is not None:
            report = await asyncio.to_thread(producer.close)
            if report.unsent:
                log.error("%d routing audit event(s) not delivered", report.unsent)


def _switch_entry(key: RouteKey, details: dict[str, Any]) -> TimelineEntry:
    title = (
        f"{key.resource_kind.value} moved from {details.get('from_backend')} to "
        f"{details.get('to_backend')}"
    )
    return TimelineEntry(
        kind="route.switch",
        title=title,
        actor=str(details["actor"]) if details.get("actor") else None,
        detail={"resource_kind": key.resource_kind.value, **details},
    )
