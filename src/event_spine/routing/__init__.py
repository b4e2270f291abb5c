"""Routing: which backend serves each tenant's resources, with history and audit."""

from event_spine.routing.cache import RouteCache
from event_spine.routing.checker import RouteChecker, RouteCheckSettings
from event_spine.routing.registry import AuditHook, RoutingRegistry
from event_spine.routing.stores import open_registry_store

__all__ = [
    "AuditHook",
    "RouteCache",
    "RouteCheckSettings",
    "RouteChecker",
    "RoutingRegistry",
    "open_registry_store",
]
