"""Where a replay writes: one store, named by a registry route or by backend + config.

The sink's BatchProcessor asks a ``RouteSource`` for each event's route; the live
sink's is a ``RouteCache`` over the registry, a replay's is ``TargetRoutes``, which
answers every scope with the replay's target, so the processor's decoding, grouping,
idempotent writes and poison handling serve the replay unchanged.

Given the registry, it first applies the live sink's rules: a scope without an
``event_spine`` route raises RouteNotFound (skipped as ``route_missing``), one whose
route the spec refuses (non-durable outside lab) raises BackendNotDurable (skipped
as ``route_not_durable``), exactly as a live worker dead-letters them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from event_spine.backends.catalog import check_route_allowed, spec_of
from event_spine.backends.factory import build_store
from event_spine.errors import ConfigurationError
from event_spine.routing.registry import RoutingRegistry
from event_spine.schemas.routes import BackendType, ResourceKind, ResourceRoute, RouteKey
from event_spine.schemas.scope import ScopeTuple


@dataclass(frozen=True)
class ReplayTarget:
    """The store a replay fills.

    Given as a route, the route's scope also bounds the replay: another tenant's
    events must never land in this tenant's store.
    """

    backend_type: BackendType
    config: dict[str, Any] = field(default_factory=dict)
    route: ResourceRoute | None = None

    @classmethod
    def of_backend(cls, backend: BackendType | str, config: dict[str, Any]) -> ReplayTarget:
        """A store by backend type and config (the replay takes every scope it reads)."""
        return cls(spec_of(backend, "The replay target").backend, dict(config))

    @classmethod
    def of_route(cls, route: ResourceRoute) -> ReplayTarget:
        """The store a route names (the replay keeps only the route's scope)."""
        return cls(route.backend_type, dict(route.config), route)

    @classmethod
    async def from_registry(cls, registry: RoutingRegistry, key: RouteKey) -> ReplayTarget:
        """The store the registry routes ``key`` to right now."""
        route = await registry.get_route(key)
        return cls.of_route(route)

    def validate(self) -> None:
        """Raise ConfigurationError for an unknown backend, a bad config or a missing SDK.

        Checked before reading anything: a replay must fail, not skip every event as
        "route invalid", when the target itself is wrong.
        """
        build_store(self.backend_type, self.config, "events", self.describe())

    def route_for(self, key: RouteKey) -> ResourceRoute:
        """A route of one scope to this target (same store identity for every scope)."""
        return ResourceRoute(
            resource_kind=key.resource_kind,
            tenant_id=key.tenant_id,
            env=key.env,
            project_id=key.project_id,
            mode=key.mode,
            backend_type=self.backend_type,
            config=self.config,
        )

    def describe(self) -> str:
        """For logs and the CLI."""
        if self.route is not None:
            return f"{self.backend_type.value} store of the {self.route.describe()}"
        return f"{self.backend_type.value} store {self.config}"


class TargetRoutes:
    """The RouteSource of a replay: every scope is routed to one target.

    It reads no registry for the destination: a replay's target is fixed for the
    whole run, and a registry switch during a cutover must not redirect the replay.
    The live registry, when given, is read once per scope and run to apply the live
    sink's rules (a route set during the replay is not seen).
    """

    def __init__(self, target: ReplayTarget, registry: RoutingRegistry | None = None) -> None:
        self.target = target
        self.live_registry = registry
        self._routes: dict[ScopeTuple, ResourceRoute | ConfigurationError] = {}

    async def event_spine_route(self, scope: ScopeTuple) -> ResourceRoute:
        """The target, as a route of the event's scope (if the live rules admit it)."""
        route = self._routes.get(scope)
        if route is None:
            route = self._routes[scope] = await self._admitted(
                RouteKey.for_scope(ResourceKind.EVENT_SPINE, scope)
            )
        if isinstance(route, ConfigurationError):
            raise route
        return route

    async def _admitted(self, key: RouteKey) -> ResourceRoute | ConfigurationError:
        if self.live_registry is not None:
            try:
                check_route_allowed(await self.live_registry.get_route(key))
            except ConfigurationError as exc:
                return exc
        return self.target.route_for(key)

    async def get(self, key: RouteKey) -> ResourceRoute:
        """Any event_spine lookup resolves to the target."""
        return await self.event_spine_route(key.scope_key())
