"""Where the sink's batch processor gets routes: the ``RouteSource`` seam, and
``RouteCache``, the registry behind a short TTL (lookups stay off the registry per
event, and a switch is picked up within ``ttl_s`` without a restart). A replay
answers with its fixed target instead (``replay.target.TargetRoutes``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from event_spine.errors import RouteNotFound
from event_spine.routing.registry import RoutingRegistry
from event_spine.schemas.routes import ResourceKind, ResourceRoute, RouteKey
from event_spine.schemas.scope import ScopeTuple


class RouteSource(Protocol):
    """Answers "which route serves this?" for the batch processor and the sink's audit."""

    async def get(self, key: RouteKey) -> ResourceRoute:
        """The route for ``key``; raises RouteNotFound, or the ConfigurationError that
        refuses it."""

    async def event_spine_route(self, scope: ScopeTuple) -> ResourceRoute:
        """The scope's ``event_spine`` route, by the scope tuple a batch is grouped by
        (same errors as ``get``)."""


@dataclass(slots=True)
class _Entry:
    expires_at: float
    route: ResourceRoute | None
    error: RouteNotFound | None


class RouteCache:
    """A RouteSource over the registry: caches found routes and misses (a poison
    flood must not hammer the registry)."""

    def __init__(
        self, registry: RoutingRegistry, ttl_s: float = 5.0, miss_ttl_s: float = 1.0
    ) -> None:
        self.registry = registry
        self.ttl_s = ttl_s
        self.miss_ttl_s = miss_ttl_s
        self._entries: dict[RouteKey, _Entry] = {}
        self.hits = 0
        self.misses = 0

    async def get(self, key: RouteKey) -> ResourceRoute:
        """The route for ``key``; raises RouteNotFound (cached briefly too)."""
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry.expires_at > now:
            self.hits += 1
            if entry.error is not None:
                raise entry.error
            assert entry.route is not None
            return entry.route
        self.misses += 1
        try:
            route = await self.registry.get_route(key)
        except RouteNotFound as exc:
            self._entries[key] = _Entry(now + self.miss_ttl_s, None, exc)
            raise
        self._entries[key] = _Entry(now + self.ttl_s, route, None)
        return route

    async def event_spine_route(self, scope: ScopeTuple) -> ResourceRoute:
        """Shortcut for the sink's lookup, by the scope tuple it groups a batch by."""
        return await self.get(RouteKey.for_scope(ResourceKind.EVENT_SPINE, scope))
