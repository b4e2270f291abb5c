"""A store in an older layout is held for `spine migrate`, never dead-lettered.

An outdated layout is an operator error a migration fixes: the worker holds the
partitions of its events (whatever on_route_missing says), reports the condition by
name, and stores everything once the store is migrated. Nothing goes to the DLQ.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from event_spine.backends import StoreFactory
from event_spine.backends.cosmos import CosmosConfig
from event_spine.backends.cosmos.events import CosmosEventStore
from event_spine.backends.sqlite.config import SqliteConfig
from event_spine.backends.sqlite.events import SqliteEventStore
from event_spine.schemas import ResourceRoute
from event_spine.services import EventStreamService
from event_spine.sink_workers import SinkWorker
from servers.emulators import CosmosEmulator, running_cosmos
from support.events import stream_of
from support.legacy import write_sqlite_layout_1
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

KEY_ENV = "SPINE_TEST_COSMOS_KEY"


async def _fast_retry_worker(bootstrap: str, topic: str, tmp_path: Path) -> SinkWorker:
    """A started worker on tmp_path's registry.db that retries a held partition fast.

    The default on_route_missing=dead_letter: the layout hold does not depend on it."""
    settings = sink_settings(
        bootstrap,
        topic,
        tmp_path / "registry.db",
        retry_backoff_initial_ms=50,
        retry_backoff_max_ms=200,
    )
    return await started_worker(settings)


async def test_outdated_store_holds_until_migrated_and_dead_letters_nothing(
    broker, tmp_path
) -> None:
    topic = await new_topic(broker.bootstrap_servers, partitions=2)
    registry = await registry_at(tmp_path / "registry.db")
    old, fresh = ctx("t_old"), ctx("t_fresh")
    # t_old's store was written by the release before scoped identities.
    write_sqlite_layout_1(tmp_path / "old.db", stream_of(2, "earlier", old.scope))
    await route_to_sqlite(registry, old, tmp_path / "old.db")
    await route_to_sqlite(registry, fresh, tmp_path / "fresh.db")
    producer = producer_for(broker.bootstrap_servers, topic)
    held = [producer.emit_event(old, "e", "s", {"n": n}) for n in range(4)]
    other = [producer.emit_event(fresh, "e", "s", {"n": n}) for n in range(3)]
    assert producer.flush(30)
    worker = await _fast_retry_worker(broker.bootstrap_servers, topic, tmp_path)
    try:
        await wait_until(
            lambda: worker.stats.held.get("store_layout_outdated", 0) >= 2, 30, message="held"
        )
        assert worker.stats.dead_lettered == {}
        assert not worker.ready
        assert "spine migrate" in (worker.stats.last_error or "")
        assert "layout 1" in (worker.stats.last_error or "")
        # The other tenant's partition flows (t_old:s and t_fresh:s: two partitions).
        service = EventStreamService(fresh, registry, StoreFactory())
        await wait_until(lambda: worker.stats.written == 3, 30, message="fresh tenant written")
        assert [e.event_id for e in await service.list_after("s")] == other
        # The operator migrates; the held events are then stored, none dead-lettered.
        store = SqliteEventStore(SqliteConfig(path=str(tmp_path / "old.db")))
        assert "layout 2" in await store.migrate()
        await store.close()
        await wait_until(lambda: worker.stats.written == 7, 30, message="stored after migrate")
        late = EventStreamService(old, registry, StoreFactory())
        assert [e.event_id for e in await late.list_after("s")] == held
        assert len(await late.list_after("earlier")) == 2  # the old events are kept
        assert worker.stats.dead_lettered == {}
    finally:
        await worker.stop()
        producer.close()
        await registry.store.close()


@pytest.fixture(scope="module")
def cosmos() -> Iterator[CosmosEmulator]:
    with running_cosmos(KEY_ENV) as server:
        yield server


@pytest.mark.emulator
async def test_a_cloud_store_found_outdated_at_write_time_is_held_too(
    broker, tmp_path, cosmos: CosmosEmulator
) -> None:
    """Cloud stores find their layout at the first write (not at open): that path holds
    the partition as well, and the events are stored once `spine migrate` ran."""
    config = CosmosConfig(
        endpoint=cosmos.endpoint,
        database=f"spine_{uuid.uuid4().hex[:12]}",
        key_env=KEY_ENV,
        verify_tls=False,  # the emulator's self-signed certificate
    )
    old = ctx("t_old")
    # A container as the release before scoped identities left it: no claims, no marker.
    legacy = CosmosEventStore(config)
    await legacy.open()
    await legacy.append_batch(stream_of(2, "earlier", old.scope))
    container = legacy._events
    query = "SELECT c.id, c.pk FROM c WHERE STARTSWITH(c.pk, 'id#') OR c.pk = 'layout'"
    for item in await container.query(query, {}, None):
        await container.proxy.delete_item(item["id"], partition_key=item["pk"])
    await legacy.close()
    topic = await new_topic(broker.bootstrap_servers, partitions=1)
    registry = await registry_at(tmp_path / "registry.db")
    route = ResourceRoute.for_scope(old, "event_spine", "cosmos", config.model_dump())
    await registry.set_route(route, actor="test")
    producer = producer_for(broker.bootstrap_servers, topic)
    held = [producer.emit_event(old, "e", "s", {"n": n}) for n in range(3)]
    assert producer.flush(30)
    worker = await _fast_retry_worker(broker.bootstrap_servers, topic, tmp_path)
    try:
        await wait_until(
            lambda: worker.stats.held.get("store_layout_outdated", 0) >= 2, 60, message="held"
        )
        assert worker.stats.dead_lettered == {}
        assert worker.stats.written == 0
        assert "spine migrate 'cosmos:" in (worker.stats.last_error or "")
        migrator = CosmosEventStore(config)
        assert "layout 2" in await migrator.migrate()
        await migrator.close()
        await wait_until(lambda: worker.stats.written == 3, 60, message="stored after migrate")
        service = EventStreamService(old, registry, StoreFactory())
        assert [e.event_id for e in await service.list_after("s")] == held
        assert worker.stats.dead_lettered == {}
        await service.stores.close()
    finally:
        await worker.stop()
        producer.close()
        await registry.store.close()
