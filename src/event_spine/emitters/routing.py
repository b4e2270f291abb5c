"""The routing service's hook: audit events for every lookup and change, plus a
timeline entry for every switch (``timeline/routing`` of the route's scope).

Install it on the registry the routing service uses::

    registry = RoutingRegistry(store, routing_hook(producer))
"""

from __future__ import annotations

import logging
from typing import Any, Final

from event_spine.audit.emit import registry_audit_hook, route_context
from event_spine.errors import SpineError
from event_spine.producers.producer import EventSpineProducer
from event_spine.routing.registry import AuditHook
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
        if action != "route.switch":
            return
        try:
            emit_timeline_entry(
                producer, route_context(key, details), timeline, _switch_entry(key, details)
            )
        except SpineError as exc:
            # Like the audit hook: routing keeps working when the timeline cannot.
            log.warning("timeline entry for the switch of %s not emitted: %s", key, exc)

    return hook


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
