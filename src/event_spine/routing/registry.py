"""RoutingRegistry: the only way to find where a tenant's resource lives.

There is no fallback: a missing route raises RouteNotFound naming the whole
scope, never an environment variable or a default backend.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from event_spine.backends.catalog import check_route_allowed
from event_spine.backends.seams import RegistryStore
from event_spine.errors import ConcurrentUpdate, ConfigurationError, RouteNotFound, SpineError
from event_spine.schemas.routes import (
    AuditLink,
    BackendType,
    HealthStatus,
    ResourceKind,
    ResourceRoute,
    RouteKey,
    RouteSwitch,
)

#: Called with (action, route key, details) on every lookup and change.
AuditHook = Callable[[str, RouteKey, dict[str, Any]], None]

#: The audit actions (docs/design.md): every lookup, found or not, and every change
#: (details ``change``: ``set``, ``switch`` or ``metadata``).
LOOKUP: Final = "routing.lookup"
UPDATE: Final = "routing.update"

log = logging.getLogger(__name__)

CAS_ATTEMPTS: Final = 20


class RoutingRegistry:
    """Reads and changes routes, keeping a switch history and an audit trail.

    ``audit`` has no default on purpose: whoever opens a registry decides, visibly,
    whether its lookups and changes are audited (``routing_hook``/``registry_audit_hook``,
    or ``audited_registry``); ``None`` is the explicit opt-out. The read services
    (EventStreamService, Timelines, TabularService) and RouteChecker audit through the
    registry they are given.
    """

    def __init__(self, store: RegistryStore, audit: AuditHook | None) -> None:
        self.store = store
        self._audit = audit

    def _emit(self, action: str, key: RouteKey, **details: Any) -> None:
        if self._audit is not None:
            self._audit(action, key, details)

    async def get_route(self, key: RouteKey) -> ResourceRoute:
        """The route for a kind and scope (``RouteKey.for_scope(kind, scope)``), or
        RouteNotFound; the lookup is audited either way."""
        route = await self.store.load(key)
        if route is None:
            self._emit(LOOKUP, key, found=False)
            raise RouteNotFound(
                key.resource_kind.value, key.tenant_id, key.env, key.project_id, key.mode
            )
        self._emit(LOOKUP, key, found=True, backend=route.backend_type.value)
        return route

    async def find_route(
        self, resource_kind: ResourceKind | str, tenant_id: str, env: str, project_id: str
    ) -> ResourceRoute:
        """The single route of a kind for tenant, env and project in whichever mode it is
        (for tools that do not know the mode). Two modes with a route: ConfigurationError
        asking for the mode. A miss has no scope to audit into; a hit is audited."""
        kind = ResourceKind(resource_kind)
        found = await self.store.find(kind, tenant_id, env, project_id)
        if len(found) > 1:
            modes = sorted(r.mode for r in found)
            raise ConfigurationError(
                f"{kind.value} routes for tenant_id={tenant_id!r}, env={env!r}, "
                f"project_id={project_id!r} exist in modes {modes}: pass `mode`."
            )
        if not found:
            raise RouteNotFound(kind.value, tenant_id, env, project_id, None)
        route = found[0]
        self._emit(LOOKUP, route.key(), found=True, backend=route.backend_type.value)
        return route

    async def set_route(
        self, route: ResourceRoute, *, actor: str, reason: str = "set"
    ) -> ResourceRoute:
        """Create or replace a route; a change of backend or config is recorded as a switch."""
        check_route_allowed(route)
        for _ in range(CAS_ATTEMPTS):
            current = await self.store.load(route.key())
            history = current.history if current is not None else ()
            if current is None or (current.backend_type, current.config) != (
                route.backend_type,
                route.config,
            ):
                history = (
                    *history,
                    _switch(current, route.backend_type, route.config, actor, reason),
                )
            expected = current.version if current is not None else 0
            new = route.model_copy(
                update={"history": history, "version": expected + 1, "updated_at": _now()}
            )
            try:
                await self.store.save(new, expected)
            except ConcurrentUpdate:
                continue
            self._emit(UPDATE, new.key(), change="set", backend=new.backend_type.value, actor=actor)
            return new
        raise ConcurrentUpdate(f"{route.describe()}: gave up after {CAS_ATTEMPTS} racing writes")

    async def switch_route(
        self,
        key: RouteKey,
        backend_type: BackendType | str,
        config: dict[str, Any],
        *,
        actor: str,
        reason: str,
    ) -> ResourceRoute:
        """Point an existing route at another backend, recording who, when, from, to, why."""
        backend = BackendType(backend_type)
        links = await self._audit_links(key, backend, config)

        def change(current: ResourceRoute) -> dict[str, Any]:
            switch = _switch(current, backend, config, actor, reason, links)
            return {
                "backend_type": backend,
                "config": config,
                "history": (*current.history, switch),
            }

        current, new = await self._update_existing(key, change)
        self._emit(
            UPDATE,
            key,
            change="switch",
            actor=actor,
            reason=reason,
            from_backend=current.backend_type.value,
            to_backend=backend.value,
            # Into the chain (tamper-evident): verify checks the registry still holds
            # these links (docs/audit.md, "Route switches").
            at=new.history[-1].at.isoformat(),
            audit_links=[link.model_dump(mode="json") for link in links],
        )
        return new

    async def _audit_links(
        self, key: RouteKey, backend: BackendType, config: dict[str, Any]
    ) -> tuple[AuditLink, ...]:
        """The audit chains' heads in the store an event_spine route leaves.

        An unreachable old store does not block the switch (it is often why one
        switches): the switch records no link, and `spine audit verify` says so.
        """
        if key.resource_kind is not ResourceKind.EVENT_SPINE:
            return ()
        current = await self.store.load(key)
        if current is None or (current.backend_type, current.config) == (backend, config):
            return ()
        from event_spine.audit.links import chain_heads  # noqa: PLC0415 (audit imports routing)

        try:
            return await chain_heads(current)
        except (SpineError, OSError) as exc:
            log.warning("%s: audit chain heads not readable, switch not linked: %s", key, exc)
            return ()

    async def update_metadata(
        self,
        key: RouteKey,
        *,
        actor: str,
        tier: str | None = None,
        health_status: HealthStatus | str | None = None,
        cost_notes: str | None = None,
    ) -> ResourceRoute:
        """Change tier, health or cost notes (no switch is recorded)."""
        changes: dict[str, Any] = {}
        if tier is not None:
            changes["tier"] = tier
        if health_status is not None:
            changes["health_status"] = HealthStatus(health_status)
        if cost_notes is not None:
            changes["cost_notes"] = cost_notes
        _, new = await self._update_existing(key, lambda _: changes)
        self._emit(
            UPDATE, key, change="metadata", actor=actor, **{k: str(v) for k, v in changes.items()}
        )
        return new

    async def _update_existing(
        self, key: RouteKey, change: Callable[[ResourceRoute], dict[str, Any]]
    ) -> tuple[ResourceRoute, ResourceRoute]:
        """Compare-and-set loop over an existing route: (before, after)."""
        for _ in range(CAS_ATTEMPTS):
            current = await self.store.load(key)
            if current is None:
                raise RouteNotFound(
                    key.resource_kind.value, key.tenant_id, key.env, key.project_id, key.mode
                )
            new = current.model_copy(
                update={**change(current), "version": current.version + 1, "updated_at": _now()}
            )
            check_route_allowed(new)
            try:
                await self.store.save(new, current.version)
            except ConcurrentUpdate:
                continue
            return current, new
        raise ConcurrentUpdate(f"{key.describe()}: gave up after {CAS_ATTEMPTS} racing writes")

    async def list_routes(self) -> list[ResourceRoute]:
        """Every route, sorted by key."""
        return sorted(await self.store.list_routes(), key=lambda r: tuple(map(str, r.key())))

    async def history(self, key: RouteKey) -> tuple[RouteSwitch, ...]:
        """The switch history of one route."""
        route = await self.store.load(key)
        if route is None:
            raise RouteNotFound(
                key.resource_kind.value, key.tenant_id, key.env, key.project_id, key.mode
            )
        return route.history


def _now() -> datetime:
    return datetime.now(UTC)


def _switch(
    current: ResourceRoute | None,
    backend: BackendType,
    config: dict[str, Any],
    actor: str,
    reason: str,
    audit_links: tuple[AuditLink, ...] = (),
) -> RouteSwitch:
    return RouteSwitch(
        actor=actor,
        reason=reason,
        from_backend=current.backend_type if current is not None else None,
        from_config=current.config if current is not None else {},
        to_backend=backend,
        to_config=config,
        audit_links=audit_links,
    )
