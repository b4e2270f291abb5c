"""Strict audit means stored: local broker + in-process worker + SQLite, nothing faked
except the store outage (FaultyFactory: SQLite cannot be made "down" on demand)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from event_spine.audit import emit_audit_event
from event_spine.audit.chain import AUDIT_HASH, AUDIT_STREAM
from event_spine.audit.verify import verify_chain
from event_spine.broker.tansu import free_port
from event_spine.errors import AuditPersistFailed, ConfigurationError, DeliveryFailed, RouteNotFound
from event_spine.producers import EventSpineProducer, ProducerSettings
from event_spine.routing.checker import RouteChecker, RouteCheckSettings
from event_spine.schemas import RequestContext
from event_spine.schemas.routes import ResourceKind, RouteKey
from event_spine.sink_workers import SinkWorker
from support.app import App, running_app
from support.faults import FaultyFactory
from support.pipeline import ctx, sink_settings
from support.waiting import wait_until


@pytest.fixture
async def app(broker, tmp_path) -> AsyncIterator[App]:
    async with running_app(broker.bootstrap_servers, tmp_path, partitions=2) as running:
        yield running


def checker_on(registry_db: Path) -> RouteChecker:
    return RouteChecker(
        RouteCheckSettings(registry_backend="sqlite", registry_config={"path": str(registry_db)}),
        audit=None,
    )


@pytest.fixture
def strict_producer(app: App) -> Iterator[EventSpineProducer]:
    """The app's topic, a route checker on the app's registry, a long linger (so events
    emitted before a strict one are still buffered when it is called)."""
    checker = checker_on(app.registry_db)
    settings = ProducerSettings(bootstrap_servers=app.bootstrap, topic=app.topic, linger_ms=300)
    producer = EventSpineProducer(settings, route_checker=checker)
    yield producer
    producer.close(5)
    checker.close()


async def strict(producer: EventSpineProducer, c: RequestContext, action: str, **kw: Any) -> str:
    # Off the test's loop: the in-process worker must keep running while strict waits.
    return await asyncio.to_thread(
        emit_audit_event, c, action, producer=producer, strict=True, **kw
    )


def rows(db: Path, tenant: str) -> list[tuple[str, str, int]]:
    """(event_id, event_type, audit_hash present) straight from the SQLite file."""
    with sqlite3.connect(db) as conn:
        found = conn.execute(
            "SELECT event_id, event_type, body FROM spine_events "
            "WHERE tenant_id = ? AND stream_id = ? ORDER BY position",
            (tenant, AUDIT_STREAM),
        ).fetchall()
    return [(i, t, int(bool(orjson.loads(b)["metadata"].get(AUDIT_HASH)))) for i, t, b in found]


async def chain_ok(app: App, c: RequestContext) -> int:
    store = app.open_events_store()
    await store.open()
    try:
        report = await verify_chain(store, c.scope, AUDIT_STREAM)
        assert report.ok, report.describe()
        return report.checked
    finally:
        await store.close()


async def test_strict_returns_once_the_row_is_readable_from_the_sqlite_file(
    app: App, strict_producer: EventSpineProducer
) -> None:
    c = ctx("t_strict")
    await app.route(c)
    await app.start_worker()
    event_id = await strict(strict_producer, c, "key.rotated")
    # No wait: the row is in the file, linked, when the call returns.
    assert rows(app.events_db, c.tenant_id) == [(event_id, "audit.key.rotated", 1)]


async def test_strict_and_non_strict_keep_their_order(
    app: App, strict_producer: EventSpineProducer
) -> None:
    c = ctx("t_order")
    await app.route(c)
    await app.start_worker()
    earlier = [emit_audit_event(c, f"step.n{n}", producer=strict_producer) for n in range(3)]
    last = await strict(strict_producer, c, "step.done")
    assert [r[0] for r in rows(app.events_db, c.tenant_id)] == [*earlier, last]
    assert await chain_ok(app, c) == 4


async def test_missing_route_raises_and_sends_nothing(
    app: App, strict_producer: EventSpineProducer
) -> None:
    c, unrouted = ctx("t_routed"), ctx("t_unrouted")
    await app.route(c)
    worker = await app.start_worker()
    with pytest.raises(AuditPersistFailed) as caught:
        await strict(strict_producer, unrouted, "key.rotated")
    assert isinstance(caught.value.cause, RouteNotFound)
    assert "t_unrouted" in caught.value.route
    assert "t_unrouted" in str(caught.value)
    # A later event is stored: the worker read past where the strict one would be.
    marker = await strict(strict_producer, c, "marker.set")
    assert [r[0] for r in rows(app.events_db, c.tenant_id)] == [marker]
    assert worker.stats.dead_lettered.get("route_missing", 0) == 0


async def test_store_down_raises_and_nothing_is_half_written(
    app: App, strict_producer: EventSpineProducer, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = ctx("t_down")
    await app.route(c)
    stores = FaultyFactory()
    worker = SinkWorker(
        sink_settings(app.bootstrap, app.topic, app.registry_db, retry_backoff_max_ms=300),
        stores=stores,
    )
    await worker.start()
    try:
        first = await strict(strict_producer, c, "key.created")
        stores.down = True
        monkeypatch.setenv("AUDIT_STRICT", "1")  # the environment switch, not strict=True
        monkeypatch.setenv("AUDIT_STRICT_TIMEOUT_S", "3")
        with pytest.raises(AuditPersistFailed) as caught:
            await asyncio.to_thread(emit_audit_event, c, "key.rotated", producer=strict_producer)
        assert (
            caught.value.route
            == (
                await app.registry.get_route(RouteKey.for_scope(ResourceKind.EVENT_SPINE, c.key()))
            ).describe()
        )
        assert "not stored and linked within the deadline" in str(caught.value.cause)
        # While the store is down nothing more is in it: one row, chain whole.
        assert rows(app.events_db, c.tenant_id) == [(first, "audit.key.created", 1)]
        assert await chain_ok(app, c) == 1
        # Back up: the sink stores the event, linked (never half-written).
        stores.down = False

        async def both() -> bool:
            return len(rows(app.events_db, c.tenant_id)) == 2

        await wait_until(both, 30, message="the held event stored after the outage")
        assert [r[2] for r in rows(app.events_db, c.tenant_id)] == [1, 1]
        assert await chain_ok(app, c) == 2
    finally:
        await worker.stop()


async def test_broker_down_raises_and_nothing_is_written(tmp_path: Path, app: App) -> None:
    c = ctx("t_nobroker")
    await app.route(c)
    checker = checker_on(app.registry_db)
    settings = ProducerSettings(bootstrap_servers=f"127.0.0.1:{free_port()}", topic=app.topic)
    producer = EventSpineProducer(settings, start=False, route_checker=checker)
    try:
        with pytest.raises(AuditPersistFailed) as caught:
            emit_audit_event(c, "key.rotated", producer=producer, strict=True)
        assert isinstance(caught.value.cause, DeliveryFailed)
        assert "t_nobroker" in caught.value.route
        assert not app.events_db.exists() or rows(app.events_db, c.tenant_id) == []
    finally:
        producer.close(0)
        checker.close()


def test_strict_needs_a_route_checker() -> None:
    settings = ProducerSettings(bootstrap_servers=f"127.0.0.1:{free_port()}", topic="t")
    producer = EventSpineProducer(settings, start=False)
    with pytest.raises(ConfigurationError, match="route_checker"):
        emit_audit_event(ctx(), "key.rotated", producer=producer, strict=True)
    producer.close(0)
