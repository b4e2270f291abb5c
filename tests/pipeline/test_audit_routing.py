"""Route lookups and changes become audit events, stored through the spine itself."""

from __future__ import annotations

import pytest

from event_spine.audit import registry_audit_hook
from event_spine.backends import StoreFactory
from event_spine.errors import RouteNotFound
from event_spine.routing import RoutingRegistry
from event_spine.schemas.routes import ResourceKind, RouteKey
from event_spine.services import EventStreamService
from support.pipeline import (
    ctx,
    new_topic,
    producer_for,
    registry_at,
    route_to_sqlite,
    sink_settings,
    started_worker,
)
from support.waiting import wait_until


async def test_route_set_and_lookup_are_audited_into_the_tenants_store(broker, tmp_path) -> None:
    topic = await new_topic(broker.bootstrap_servers)
    producer = producer_for(broker.bootstrap_servers, topic)
    plain = await registry_at(tmp_path / "registry.db")
    audited = RoutingRegistry(plain.store, registry_audit_hook(producer))
    c = ctx()
    await route_to_sqlite(audited, c, tmp_path / "events.db")
    producer.emit_event(c, "work.done", "jobs", {"n": 1})
    worker = await started_worker(
        sink_settings(
            broker.bootstrap_servers, topic, tmp_path / "registry.db", audit_route_lookups=True
        )
    )
    service = EventStreamService(c, plain, StoreFactory())
    try:

        async def audited_both() -> bool:
            types = {e.record.event_type for e in await service.list_after("audit")}
            return {"audit.routing.update", "audit.routing.lookup"} <= types

        await wait_until(audited_both, 30, message="routing.update and routing.lookup audit events")
        events = await service.list_after("audit")
        setter = next(e for e in events if e.record.event_type == "audit.routing.update")
        assert setter.record.payload["action"] == "routing.update"
        assert setter.record.payload["output"]["change"] == "set"
        assert setter.record.payload["surface"] == "routing"
        assert setter.record.payload["output"]["actor"] == "test"
        assert setter.record.metadata["user_id"] == "test"
        assert setter.record.payload["input"] == {"resource_kind": "event_spine"}
        assert [e.record.payload["n"] for e in await service.list_after("jobs")] == [1]
    finally:
        await worker.stop()
        producer.close()
        await plain.store.close()


async def test_each_lookup_failed_lookup_and_update_is_one_audit_record(broker, tmp_path) -> None:
    """Counted from the store: set (1 update) + lookup + failed lookup = 3 records."""
    topic = await new_topic(broker.bootstrap_servers)
    producer = producer_for(broker.bootstrap_servers, topic)
    plain = await registry_at(tmp_path / "registry.db")
    audited = RoutingRegistry(plain.store, registry_audit_hook(producer))
    c = ctx("t_counted")
    await route_to_sqlite(audited, c, tmp_path / "events.db")
    await audited.get_route(RouteKey.for_scope(ResourceKind.EVENT_SPINE, c.key()))
    with pytest.raises(RouteNotFound):
        await audited.get_route(RouteKey.for_scope(ResourceKind.TABULAR_STORE, c.key()))
    worker = await started_worker(
        sink_settings(broker.bootstrap_servers, topic, tmp_path / "registry.db")
    )
    service = EventStreamService(c, plain, StoreFactory())
    try:

        async def three() -> bool:
            return len(await service.list_after("audit")) >= 3

        await wait_until(three, 30, message="three routing audit records")
        assert producer.flush(10)
        await worker.wait_idle(10)
        events = await service.list_after("audit")
        seen = [
            (
                e.record.payload["action"],
                e.record.payload["output"].get("change"),
                e.record.payload["output"].get("found"),
                e.record.payload["input"]["resource_kind"],
            )
            for e in events
        ]
        assert seen == [
            ("routing.update", "set", None, "event_spine"),
            ("routing.lookup", None, True, "event_spine"),
            ("routing.lookup", None, False, "tabular_store"),
        ]
    finally:
        await worker.stop()
        producer.close()
        await plain.store.close()
