"""EventStreamService's query methods: routed to the caller's store, in its scope."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from event_spine import (
    EventQuery,
    EventStreamService,
    RequestContext,
    ResourceRoute,
    RoutingRegistry,
    ScopeViolation,
    StoreFactory,
    open_registry_store,
)
from support.events import OTHER_TENANT, SCOPE, stream_of

ACME = RequestContext(**SCOPE.model_dump())
OTHER = RequestContext(**OTHER_TENANT.model_dump())


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[tuple[EventStreamService, EventStreamService]]:
    """Both tenants routed to one SQLite file, with a few events each."""
    registry = RoutingRegistry(
        await open_registry_store("sqlite", {"path": str(tmp_path / "registry.db")}), None
    )
    stores = StoreFactory()
    config = {"path": str(tmp_path / "events.db")}
    for ctx in (ACME, OTHER):
        route = ResourceRoute.for_scope(ctx, "event_spine", "sqlite", config)
        await registry.set_route(route, actor="test")
        store = await stores.event_store(route)
        await store.append_batch(
            stream_of(5, "orders/o_1", ctx.scope) + stream_of(2, "misc", ctx.scope)
        )
    yield EventStreamService(ACME, registry, stores), EventStreamService(OTHER, registry, stores)
    await stores.close()


async def test_the_service_queries_lists_and_counts_in_the_callers_scope(
    services: tuple[EventStreamService, EventStreamService],
) -> None:
    acme, other = services
    page = await acme.query(EventQuery(stream_prefix="orders/", limit=3))
    assert [e.record.routing.tenant_id for e in page.events] == ["t_acme"] * 3
    assert page.next_cursor is not None
    rest = await acme.query(EventQuery(stream_prefix="orders/", after=page.next_cursor))
    assert [e.position for e in page.events + rest.events] == [0, 1, 2, 3, 4]
    assert rest.next_cursor is None
    with pytest.raises(ScopeViolation):
        await other.query(EventQuery(stream_prefix="orders/", after=page.next_cursor))
    listed = await acme.list_streams()
    assert [s.stream_id for s in listed.streams] == ["misc", "orders/o_1"]
    assert await acme.count_event_types("orders/o_1") == {"test.happened": 5}
