"""Each failure class is handled on purpose: refused events after N tries, held routes."""

from __future__ import annotations

from pathlib import Path

from event_spine.backends import StoreFactory
from event_spine.dlq import read_dead_letters
from event_spine.services import EventStreamService
from event_spine.sink_workers import SinkWorker
from support.faults import FaultyFactory
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


async def test_refused_event_is_retried_then_dead_lettered_alone(broker, tmp_path) -> None:
    topic = await new_topic(broker.bootstrap_servers, partitions=1)
    registry = await registry_at(tmp_path / "registry.db")
    c = ctx()
    await route_to_sqlite(registry, c, tmp_path / "events.db")
    stores = FaultyFactory()
    stores.reject = lambda e: e.record.payload.get("reject") is True
    worker = SinkWorker(
        sink_settings(
            broker.bootstrap_servers,
            topic,
            tmp_path / "registry.db",
            max_attempts=3,
            retry_backoff_initial_ms=20,
            retry_backoff_max_ms=50,
        ),
        stores=stores,
    )
    producer = producer_for(broker.bootstrap_servers, topic)
    try:
        ids = [producer.emit_event(c, "e", "s", {"n": n, "reject": n == 4}) for n in range(10)]
        assert producer.flush(30)
        await worker.start()
        await wait_until(lambda: worker.stats.dead_lettered.get("store_rejected") == 1, 30)
        await wait_until(lambda: worker.stats.written == 9, 30)
        service = EventStreamService(c, registry, StoreFactory())
        assert [e.event_id for e in await service.list_after("s")] == ids[:4] + ids[5:]
        (letter,) = await read_dead_letters(broker.bootstrap_servers, f"{topic}.dlq")
        assert letter.reason == "store_rejected"
        assert letter.headers["spine-dlq-attempts"] == "3"
        assert ids[4].encode() in letter.value
        assert stores.wrapped[0].rejected_attempts >= 3 + 1  # 3 batch tries, then alone
    finally:
        await worker.stop()
        producer.close()
        await registry.store.close()


async def holding_worker(bootstrap: str, topic: str, tmp_path: Path) -> SinkWorker:
    """A worker with on_route_missing=hold and a short backoff."""
    return await started_worker(
        sink_settings(
            bootstrap,
            topic,
            tmp_path / "registry.db",
            on_route_missing="hold",
            retry_backoff_initial_ms=50,
            retry_backoff_max_ms=200,
        )
    )


async def test_hold_on_missing_route_waits_for_the_operator(broker, tmp_path) -> None:
    topic = await new_topic(broker.bootstrap_servers, partitions=1)
    registry = await registry_at(tmp_path / "registry.db")
    c = ctx("t_pending")
    producer = producer_for(broker.bootstrap_servers, topic)
    ids = [producer.emit_event(c, "e", "s", {"n": n}) for n in range(5)]
    assert producer.flush(30)
    worker = await holding_worker(broker.bootstrap_servers, topic, tmp_path)
    try:
        await wait_until(lambda: worker.stats.retries >= 2, 30, message="held, retrying")
        assert not worker.ready
        assert worker.stats.dead_lettered == {}
        assert worker.stats.written == 0
        await route_to_sqlite(registry, c, tmp_path / "late.db")  # the operator fixes it
        await wait_until(lambda: worker.stats.written == 5, 30, message="stored after the fix")
        service = EventStreamService(c, registry, StoreFactory())
        assert [e.event_id for e in await service.list_after("s")] == ids
        assert worker.stats.dead_lettered == {}
    finally:
        await worker.stop()
        producer.close()
        await registry.store.close()


async def test_hold_stalls_other_tenants_behind_the_held_event_on_its_partition(
    broker, tmp_path
) -> None:
    """What `hold` stalls (docs/operations.md): other tenants' events on the held
    event's partition wait behind it; none is lost."""
    topic = await new_topic(broker.bootstrap_servers, partitions=1)
    registry = await registry_at(tmp_path / "registry.db")
    pending, routed = ctx("t_pending"), ctx("t_routed")
    await route_to_sqlite(registry, routed, tmp_path / "events.db")
    producer = producer_for(broker.bootstrap_servers, topic)
    held = producer.emit_event(pending, "e", "s", {"n": 0})
    behind = [producer.emit_event(routed, "e", "s", {"n": n}) for n in range(3)]
    assert producer.flush(30)
    worker = await holding_worker(broker.bootstrap_servers, topic, tmp_path)
    service = EventStreamService(routed, registry, StoreFactory())
    try:
        await wait_until(lambda: worker.stats.retries >= 3, 30, message="held, retrying")
        assert await service.list_after("s") == []  # the routed tenant waits too
        assert worker.stats.written == 0
        await route_to_sqlite(registry, pending, tmp_path / "events.db")
        await wait_until(lambda: worker.stats.written == 4, 30, message="stored after the fix")
        assert [e.event_id for e in await service.list_after("s")] == behind
        late = EventStreamService(pending, registry, StoreFactory())
        assert [e.event_id for e in await late.list_after("s")] == [held]
        assert worker.stats.dead_lettered == {}
    finally:
        await worker.stop()
        producer.close()
        await registry.store.close()


async def test_hold_does_not_stall_other_partitions(broker, tmp_path) -> None:
    """Only the partition of the unrouted scope is held, from its first event on."""
    topic = await new_topic(broker.bootstrap_servers, partitions=2)
    registry = await registry_at(tmp_path / "registry.db")
    pending, routed = ctx("t_pending"), ctx("t_routed")
    await route_to_sqlite(registry, routed, tmp_path / "events.db")
    # aiokafka's partitioner: t_pending:s -> 1, t_routed:s -> 0, t_routed:s4 -> 1.
    producer = producer_for(broker.bootstrap_servers, topic)
    before = producer.emit_event(routed, "e", "s4", {"n": -1})
    held = producer.emit_event(pending, "e", "s", {"n": 0})
    behind = [producer.emit_event(routed, "e", "s4", {"n": n}) for n in range(3)]
    other = [producer.emit_event(routed, "e", "s", {"n": n}) for n in range(5)]
    assert producer.flush(30)
    worker = await holding_worker(broker.bootstrap_servers, topic, tmp_path)
    service = EventStreamService(routed, registry, StoreFactory())
    try:

        async def other_partition_stored() -> bool:
            return len(await service.list_after("s")) == 5

        await wait_until(other_partition_stored, 30, message="partition 0 written while held")
        await wait_until(lambda: worker.stats.retries >= 3, 30, message="held, retrying")
        assert [e.event_id for e in await service.list_after("s")] == other
        # Partition 1: written up to the held event, nothing behind it.
        assert [e.event_id for e in await service.list_after("s4")] == [before]
        committed = worker.stats.committed
        assert committed[(topic, 1)] == 1  # the held event's offset: read again from it
        more = [producer.emit_event(routed, "e", "s", {"n": n}) for n in range(5, 8)]
        assert producer.flush(30)
        await wait_until(lambda: worker.stats.committed.get((topic, 0)) == 8, 30)
        assert [e.event_id for e in await service.list_after("s")] == other + more
        await route_to_sqlite(registry, pending, tmp_path / "events.db")  # the fix
        await wait_until(lambda: worker.stats.committed.get((topic, 1)) == 5, 30)
        assert [e.event_id for e in await service.list_after("s4")] == [before, *behind]
        late = EventStreamService(pending, registry, StoreFactory())
        assert [e.event_id for e in await late.list_after("s")] == [held]
        assert worker.stats.dead_lettered == {}
    finally:
        await worker.stop()
        producer.close()
        await registry.store.close()
