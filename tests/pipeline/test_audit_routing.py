"""Route lookups and changes become audit events, stored through the spine itself."""

from __future__ import annotations

from event_spine.audit import registry_audit_hook
from event_spine.backends import StoreFactory
from event_spine.consumers import EventStreamService
from event_spine.routing import RoutingRegistry
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
            return {"audit.route.set", "audit.route.lookup"} <= types

        await wait_until(audited_both, 30, message="route.set and route.lookup audit events")
        events = await service.list_after("audit")
        setter = next(e for e in events if e.record.event_type == "audit.route.set")
        assert setter.record.payload["action"] == "route.set"
        assert setter.record.payload["surface"] == "routing"
        assert setter.record.payload["output"]["actor"] == "test"
        assert setter.record.metadata["user_id"] == "test"
        assert setter.record.payload["input"] == {"resource_kind": "event_spine"}
        assert [e.record.payload["n"] for e in await service.list_after("jobs")] == [1]
    finally:
        await worker.stop()
        producer.close()
        await plain.store.close()
