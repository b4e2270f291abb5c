"""What the sink does for audit integrity: seal links with the key, write anchors."""

from __future__ import annotations

import logging

from event_spine.audit.anchors import Anchorer, refuse_same_store
from event_spine.audit.chain import Member, link_audit_chain
from event_spine.audit.keys import AuditKeys, AuditKeySettings, LocalAuditKeys
from event_spine.audit.links import chain_starts, starts_of
from event_spine.backends.factory import TabularFactory
from event_spine.backends.seams import EventStore, TabularStore
from event_spine.errors import RouteNotFound
from event_spine.routing.cache import RouteSource
from event_spine.schemas.routes import ResourceKind, ResourceRoute, RouteKey
from event_spine.schemas.scope import Scope
from event_spine.schemas.wire import StoredEvent

log = logging.getLogger(__name__)


class SinkAudit:
    """The link key and the anchorer of one sink worker."""

    def __init__(self, keys: AuditKeys, routes: RouteSource, settings: AuditKeySettings) -> None:
        self.keys = keys
        self.routes = routes
        self.link_key = keys.link_key()
        self._tabular = TabularFactory()
        signer = keys.anchor_signer()
        self.anchorer = (
            None
            if signer is None
            else Anchorer(
                signer, settings.anchor_every_events, settings.anchor_every_s, self._anchor_store
            )
        )

    @classmethod
    def from_env(cls, routes: RouteSource) -> SinkAudit:
        """Keys and anchoring from ``SPINE_AUDIT_*`` (none set: unkeyed, no anchors)."""
        settings = AuditKeySettings()
        return cls(LocalAuditKeys(settings), routes, settings)

    async def link(
        self,
        store: EventStore,
        events: list[StoredEvent],
        members: list[Member],
        route: ResourceRoute | None = None,
    ) -> list[StoredEvent]:
        """Link (and seal) the new audit events; ``members`` receives them.

        ``route`` (the store's): after a switch, a chain goes on from the old
        store's head recorded in the route's history.
        """
        return await link_audit_chain(store, events, self.link_key, members, chain_starts(route))

    async def anchor(
        self, store: EventStore, members: list[Member], route: ResourceRoute | None = None
    ) -> None:
        """After the write: the anchors that became due (never raises)."""
        if self.anchorer is not None and members:
            await self.anchorer.record(store, members, starts_of(route))

    async def _anchor_store(self, scope: Scope) -> TabularStore | None:
        key = RouteKey.for_scope(ResourceKind.OBJECT_STORE, scope)
        try:
            route = await self.routes.get(key)
        except RouteNotFound:
            log.warning("no %s: audit anchors of this scope are not written", key.describe())
            return None
        events = await self.routes.event_spine_route(scope.key())
        refuse_same_store(route, events)
        return await self._tabular.tabular_store(route)

    async def close(self) -> None:
        """Close the anchor stores."""
        await self._tabular.close()
