"""Verify one scope's audit chain as `spine audit verify` does; the console uses it too.

What the check takes from the registry: the scope's ``event_spine`` route (its store,
and through its switch history the stores the chain lived in before: audit.history),
the anchors in the scope's ``object_store`` route (none without one), and the HMAC
and anchor keys of this process (``LocalAuditKeys``: SPINE_AUDIT_KEY...). Anchors are
expected when this process can sign them or when some exist (a chain whose anchors
were all deleted then fails). One function for both callers, so the console never
checks less than the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from event_spine.audit.anchors import load_anchors
from event_spine.audit.history import verify_history
from event_spine.audit.keys import AuditKeys, LocalAuditKeys
from event_spine.audit.links import Segment, segments
from event_spine.audit.verify import ChainReport
from event_spine.backends.factory import StoreFactory, TabularFactory
from event_spine.backends.seams import EventStore
from event_spine.errors import RouteNotFound
from event_spine.routing.registry import RoutingRegistry
from event_spine.schemas.formats import EVENT_ID_RE
from event_spine.schemas.routes import ResourceKind, ResourceRoute, RouteKey
from event_spine.schemas.scope import Scope
from event_spine.schemas.wire import StoredEvent


@dataclass
class ScopeChain:
    """A scope's audit stream where it is stored: route, current store, anchors, keys."""

    scope: Scope
    stream: str
    route: ResourceRoute
    store: EventStore
    anchors: list[dict[str, Any]]
    keys: AuditKeys
    stores: StoreFactory

    async def open_part(self, part: Segment) -> EventStore:
        """The event store of one store of the route's history."""
        route = self.route.model_copy(update={"backend_type": part.backend, "config": part.config})
        return await self.stores.event_store(route)

    @property
    def expect_anchors(self) -> bool:
        """Anchors are due: this process signs them, or the scope has some."""
        return self.keys.anchor_signer() is not None or bool(self.anchors)

    async def verify(self) -> ChainReport:
        """The whole chain over the route's history, its HMACs and its anchors."""
        return await verify_history(
            self.route,
            self.open_part,
            self.scope,
            self.stream,
            keys=self.keys,
            anchors=self.anchors,
            expect_anchors=self.expect_anchors,
        )

    async def broken_record(self, report: ChainReport) -> StoredEvent | None:
        """The first broken record as its store holds it (None: intact, or not found by
        its id, e.g. when the id itself was changed)."""
        broken = report.broken
        if broken is None or EVENT_ID_RE.match(broken.event_id) is None:
            return None
        parts, _ = segments(self.route, self.stream)
        index = broken.segment if broken.segment is not None else len(parts) - 1
        store = await self.open_part(parts[index])
        return await store.get(self.scope, broken.event_id)


async def open_scope_chain(
    registry: RoutingRegistry,
    scope: Scope,
    stream: str,
    stores: StoreFactory,
    tables: TabularFactory,
    keys: AuditKeys | None = None,
) -> ScopeChain:
    """The scope's chain; every route lookup goes through ``registry`` (audited there).
    The stores come from the factories, which the caller closes."""
    route = await registry.get_route(RouteKey.for_scope(ResourceKind.EVENT_SPINE, scope))
    anchors: list[dict[str, Any]] = []
    try:
        anchor_route = await registry.get_route(
            RouteKey.for_scope(ResourceKind.OBJECT_STORE, scope)
        )
    except RouteNotFound:
        pass
    else:
        anchors = await load_anchors(await tables.tabular_store(anchor_route), scope, stream)
    store = await stores.event_store(route)
    return ScopeChain(scope, stream, route, store, anchors, keys or LocalAuditKeys(), stores)
