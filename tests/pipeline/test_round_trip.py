"""emit -> real broker -> sink worker -> SQLite -> list_after, on real servers."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from event_spine.backends import StoreFactory
from event_spine.backends.sqlite import SqliteConfig
from event_spine.backends.sqlite.events import SqliteEventStore
from event_spine.errors import RouteNotFound, UnknownCursor
from event_spine.producers import kafka_key
from event_spine.schemas import ResourceKind, RouteKey, StoredEvent
from event_spine.services import EventStreamService
from event_spine.sink_workers import header_map
from support.pipeline import (
    ctx,
    new_topic,
    producer_for,
    raw_send,
    read_topic,
    registry_at,
    route_to_sqlite,
    sink_settings,
    started_worker,
)
from support.waiting import wait_until


async def read_stream(
    service: EventStreamService, stream: str, page: int = 50
) -> list[StoredEvent]:
    out: list[StoredEvent] = []
    last: str | None = None
    while batch := await service.list_after(stream, last, page):
        out.extend(batch)
        last = batch[-1].event_id
    return out


async def stored_count(services: list[EventStreamService], streams: list[str]) -> int:
    return sum([len(await read_stream(s, name, 500)) for s in services for name in streams])


@pytest.fixture
async def setup(broker, tmp_path: Path):
    topic = await new_topic(broker.bootstrap_servers)
    registry = await registry_at(tmp_path / "registry.db")
    stores = StoreFactory()
    yield topic, registry, stores
    await stores.close()
    await registry.store.close()


async def test_many_tenants_and_streams_arrive_once_in_order(broker, tmp_path, setup) -> None:
    topic, registry, stores = setup
    contexts = [ctx("t_acme"), ctx("t_globex", mode="saas"), ctx("t_initech", project="p_other")]
    for c in contexts:
        await route_to_sqlite(registry, c, tmp_path / f"{c.tenant_id}.db")
    streams = [f"orders/o_{i}" for i in range(5)]
    producer = producer_for(broker.bootstrap_servers, topic)
    emitted: Counter[tuple[str, str]] = Counter()
    for n in range(3000):
        c, stream = contexts[n % 3], streams[(n // 3) % 5]
        producer.emit_event(c, "order.placed", stream, {"seq": emitted[(c.tenant_id, stream)]})
        emitted[(c.tenant_id, stream)] += 1
    assert producer.flush(30)
    worker = await started_worker(
        sink_settings(broker.bootstrap_servers, topic, tmp_path / "registry.db")
    )
    services = [EventStreamService(c, registry, stores) for c in contexts]
    try:
        await wait_until(lambda: worker.stats.written == 3000, 60, message="3000 events written")
        for service in services:
            for stream in streams:
                events = await read_stream(service, stream)
                seqs = [e.record.payload["seq"] for e in events]
                assert seqs == list(range(emitted[(service.ctx.tenant_id, stream)]))
                positions = [e.position for e in events]
                assert positions == sorted(set(positions))
                assert all(e.record.routing.key() == service.ctx.key() for e in events)
        assert sum(worker.stats.committed.values()) == 3000  # offsets committed to the end
        assert worker.stats.dead_lettered == {}
    finally:
        await worker.stop()
        producer.close()


async def test_reader_paging_while_events_flow_sees_each_event_once(
    broker, tmp_path, setup
) -> None:
    topic, registry, stores = setup
    c = ctx()
    await route_to_sqlite(registry, c, tmp_path / "events.db")
    producer = producer_for(broker.bootstrap_servers, topic)
    worker = await started_worker(
        sink_settings(broker.bootstrap_servers, topic, tmp_path / "registry.db", max_records=37)
    )
    service = EventStreamService(c, registry, stores)
    seen: list[int] = []
    last: str | None = None
    try:
        for n in range(1500):
            producer.emit_event(c, "tick", "live", {"n": n})
            if n % 100 == 99:
                while page := await service.list_after("live", last, 13):
                    seen.extend(e.record.payload["n"] for e in page)
                    last = page[-1].event_id

        async def caught_up() -> bool:
            nonlocal last
            while page := await service.list_after("live", last, 13):
                seen.extend(e.record.payload["n"] for e in page)
                last = page[-1].event_id
            return len(seen) >= 1500

        await wait_until(caught_up, 60, message="reader caught up")
        assert seen == list(range(1500))
    finally:
        await worker.stop()
        producer.close()


async def test_stopped_worker_and_reopened_store_lose_nothing(broker, tmp_path, setup) -> None:
    topic, registry, _ = setup
    c = ctx()
    await route_to_sqlite(registry, c, tmp_path / "events.db")
    producer = producer_for(broker.bootstrap_servers, topic)
    settings = sink_settings(broker.bootstrap_servers, topic, tmp_path / "registry.db")
    ids = [producer.emit_event(c, "step", "s", {"n": n}) for n in range(400)]
    worker = await started_worker(settings)
    await wait_until(lambda: worker.stats.written == 400, 30, message="first 400")
    await worker.stop()
    ids += [producer.emit_event(c, "step", "s", {"n": n}) for n in range(400, 800)]
    assert producer.flush(30)
    worker = await started_worker(settings)  # same group: resumes from committed offsets
    await wait_until(lambda: worker.stats.written == 400, 30, message="next 400")
    await worker.stop()
    producer.close()
    assert worker.stats.duplicates == 0
    store = SqliteEventStore(SqliteConfig(path=str(tmp_path / "events.db")))
    await store.open()
    got: list[StoredEvent] = []
    last = None
    while page := await store.list_after(c.scope, "s", last, 333):
        got.extend(page)
        last = page[-1].event_id
    await store.close()
    assert [e.event_id for e in got] == ids


async def test_missing_route_is_dead_lettered_never_defaulted(
    broker, tmp_path, setup, monkeypatch
) -> None:
    topic, registry, _ = setup
    routed, unrouted = ctx("t_routed"), ctx("t_nowhere")
    await route_to_sqlite(registry, routed, tmp_path / "routed.db")
    # Tempting fallbacks that must never be used.
    monkeypatch.setenv("SPINE_DEFAULT_BACKEND", f"sqlite:{tmp_path / 'fallback.db'}")
    monkeypatch.setenv("EVENT_SPINE_BACKEND", "sqlite")
    producer = producer_for(broker.bootstrap_servers, topic)
    lost_id = producer.emit_event(unrouted, "x.y", "s", {"n": 1})
    kept = [producer.emit_event(routed, "x.y", "s", {"n": n}) for n in range(5)]
    assert producer.flush(30)
    worker = await started_worker(
        sink_settings(broker.bootstrap_servers, topic, tmp_path / "registry.db")
    )
    try:
        await wait_until(
            lambda: worker.stats.written == 5 and bool(worker.stats.dead_lettered),
            30,
            message="routed stored, unrouted dead-lettered",
        )
        assert worker.stats.dead_lettered == {"route_missing": 1}
        letters = await read_topic(broker.bootstrap_servers, f"{topic}.dlq", 1)
        assert len(letters) == 1
        headers = header_map(letters[0].headers)
        assert headers["spine-dlq-reason"] == "route_missing"
        assert "t_nowhere" in headers["spine-dlq-message"]
        assert headers["spine-dlq-topic"] == topic
        assert lost_id.encode() in letters[0].value
        assert not (tmp_path / "fallback.db").exists()
        service = EventStreamService(routed, registry, StoreFactory())
        assert [e.event_id for e in await service.list_after("s")] == kept
        with pytest.raises(RouteNotFound, match="t_nowhere"):
            await EventStreamService(unrouted, registry, StoreFactory()).list_after("s")
    finally:
        await worker.stop()
        producer.close()


async def test_poison_input_is_dead_lettered_and_good_events_stored(
    broker, tmp_path, setup
) -> None:
    topic, registry, _ = setup
    c = ctx()
    await route_to_sqlite(registry, c, tmp_path / "events.db")
    producer = producer_for(broker.bootstrap_servers, topic)
    good_before = [producer.emit_event(c, "ok", "s", {"n": n}) for n in range(3)]
    assert producer.flush(30)
    valid = (await read_topic(broker.bootstrap_servers, topic, 1))[0].value
    key = kafka_key("t_acme", "s")
    await raw_send(
        broker.bootstrap_servers,
        topic,
        [
            (key, b"{not json"),
            (key, valid.replace(b'"event_type":"ok"', b'"event_type":"9bad"')),
            (key, valid.replace(b'"schema_version":1', b'"schema_version":99')),
            (key, b'{"pad":"' + b"x" * (1024 * 1024 + 10) + b'"}'),
            (b"t_acme:other-stream", valid),  # key names another stream than the event
        ],
    )
    good_after = [producer.emit_event(c, "ok", "s", {"n": n}) for n in range(3, 6)]
    assert producer.flush(30)
    worker = await started_worker(
        sink_settings(broker.bootstrap_servers, topic, tmp_path / "registry.db")
    )
    try:
        await wait_until(
            lambda: sum(worker.stats.dead_lettered.values()) == 5, 30, message="5 dead letters"
        )
        await wait_until(lambda: worker.stats.written == 6, 30, message="6 good events")
        assert worker.stats.dead_lettered == {
            "invalid_event": 3,
            "unknown_schema_version": 1,
            "oversize": 1,
        }
        letters = await read_topic(broker.bootstrap_servers, f"{topic}.dlq", 5)
        reasons = sorted(header_map(r.headers)["spine-dlq-reason"] for r in letters)
        assert reasons == sorted(["invalid_event"] * 3 + ["unknown_schema_version", "oversize"])
        messages = " ".join(header_map(r.headers)["spine-dlq-message"] for r in letters)
        for field in ("event_type", "key", "schema_version"):
            assert field in messages
        service = EventStreamService(c, registry, StoreFactory())
        assert [e.event_id for e in await service.list_after("s")] == good_before + good_after
    finally:
        await worker.stop()
        producer.close()


async def test_reads_check_scope(broker, tmp_path, setup) -> None:
    topic, registry, stores = setup
    mine = ctx("t_acme", mode="lab")
    same_tenant_other_mode = ctx("t_acme", mode="saas")
    await route_to_sqlite(registry, mine, tmp_path / "shared.db")
    await route_to_sqlite(registry, same_tenant_other_mode, tmp_path / "shared.db")
    producer = producer_for(broker.bootstrap_servers, topic)
    first = producer.emit_event(mine, "a", "s", {})
    assert producer.flush(30)
    worker = await started_worker(
        sink_settings(broker.bootstrap_servers, topic, tmp_path / "registry.db")
    )
    try:
        await wait_until(lambda: worker.stats.written == 1, 30)
        other = EventStreamService(same_tenant_other_mode, registry, stores)
        assert await other.list_after("s") == []
        # Identity is scope + id: in another scope the id names no event (no leak,
        # not even that it exists elsewhere).
        with pytest.raises(UnknownCursor):
            await other.list_after("s", first)
        assert await other.get(first) is None
        assert (await EventStreamService(mine, registry, stores).get(first)).event_id == first
    finally:
        await worker.stop()
        producer.close()


async def test_route_switch_is_picked_up_without_restart(broker, tmp_path, setup) -> None:
    topic, registry, _ = setup
    c = ctx()
    await route_to_sqlite(registry, c, tmp_path / "old.db")
    producer = producer_for(broker.bootstrap_servers, topic)
    worker = await started_worker(
        sink_settings(
            broker.bootstrap_servers, topic, tmp_path / "registry.db", route_cache_ttl_s=0.3
        )
    )
    old = SqliteEventStore(SqliteConfig(path=str(tmp_path / "old.db")))
    new = SqliteEventStore(SqliteConfig(path=str(tmp_path / "new.db")))
    emitted: list[str] = []
    try:
        emitted.append(producer.emit_event(c, "a", "s", {"n": 0}))
        await wait_until(lambda: worker.stats.written == 1, 30)
        key = RouteKey.for_scope(ResourceKind.EVENT_SPINE, c.key())
        await registry.switch_route(
            key, "sqlite", {"path": str(tmp_path / "new.db")}, actor="ops", reason="move"
        )

        async def lands_in_new_store() -> bool:
            emitted.append(producer.emit_event(c, "a", "s", {"n": len(emitted)}))
            await wait_until(lambda: worker.stats.written == len(emitted), 30)
            return bool(await new.list_after(c.scope, "s"))

        await wait_until(lands_in_new_store, 20, interval_s=0.1, message="switch picked up")
        in_old = [e.event_id for e in await old.list_after(c.scope, "s", None, 1000)]
        in_new = [e.event_id for e in await new.list_after(c.scope, "s", None, 1000)]
        assert in_old + in_new == emitted  # each event in exactly one store, old ones first
        assert (await registry.history(key))[-1].reason == "move"
    finally:
        await old.close()
        await new.close()
        await worker.stop()
        producer.close()
