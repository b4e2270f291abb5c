"""Pipeline fixtures' building blocks: topics, routes, workers and raw Kafka access."""

from __future__ import annotations

import contextlib
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition

from event_spine.backends import StoreFactory
from event_spine.errors import RouteNotFound
from event_spine.kafka import KafkaSettings, as_kafka, make_consumer, make_producer
from event_spine.kafka.internals import refresh_metadata
from event_spine.producers import EventSpineProducer, ProducerSettings, ensure_topic
from event_spine.routing import RoutingRegistry, open_registry_store
from event_spine.schemas import RequestContext, ResourceRoute
from event_spine.sink_workers import SinkSettings, SinkWorker
from event_spine.subscriptions import SubscriptionFilter, subscribe
from support.waiting import wait_until

FAST_GROUP = {
    "session_timeout_ms": 2000,
    "heartbeat_interval_ms": 200,
    "fetch_max_wait_ms": 50,
    "batch_timeout_ms": 50,
    "audit_route_lookups": False,
    "http_port": 0,
    "rebalance_timeout_ms": 4000,
}


def unique(prefix: str) -> str:
    """A name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def new_topic(bootstrap: str, partitions: int = 4) -> str:
    """A fresh topic with an explicit partition count."""
    topic = unique("events")
    await ensure_topic(bootstrap, topic, partitions)
    return topic


def ctx(
    tenant: str = "t_acme", mode: str = "lab", project: str = "p_core", **kw: Any
) -> RequestContext:
    """A request context in env dev."""
    return RequestContext(tenant_id=tenant, env="dev", mode=mode, project_id=project, **kw)


async def registry_at(path: Path) -> RoutingRegistry:
    """A registry on a SQLite file."""
    return RoutingRegistry(await open_registry_store("sqlite", {"path": str(path)}), None)


async def route_to_sqlite(registry: RoutingRegistry, context: RequestContext, db: Path) -> None:
    """Route the context's event_spine resource to a SQLite file."""
    await registry.set_route(
        ResourceRoute.for_scope(context, "event_spine", "sqlite", {"path": str(db)}),
        actor="test",
    )


async def wait_routed(worker: SinkWorker, context: RequestContext) -> None:
    """Wait until ``worker``'s route cache resolves the context's event_spine route.

    The cache remembers a missing route for 1 s: events replayed before then are
    dead-lettered again. (The cache is private: no public seam reads it, and a probe
    event would itself be dead-lettered.)
    """

    async def resolves() -> bool:
        try:
            await worker._routes.event_spine_route(context.key())
        except RouteNotFound:
            return False
        return True

    await wait_until(resolves, 30, message="the worker resolves the new route")


def producer_for(bootstrap: str, topic: str, **kw: Any) -> EventSpineProducer:
    """A producer with test-friendly latency."""
    fields: dict[str, Any] = {"bootstrap_servers": bootstrap, "topic": topic, "linger_ms": 2}
    return EventSpineProducer(ProducerSettings(**(fields | kw)))


def sink_settings(bootstrap: str, topic: str, registry_db: Path, **kw: Any) -> SinkSettings:
    """Worker settings that join and fetch fast on the local broker."""
    fields: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "topic": topic,
        "group_id": f"{topic}-sink",
        "registry_backend": "sqlite",
        "registry_config": {"path": str(registry_db)},
        **FAST_GROUP,
    }
    return SinkSettings(**(fields | kw))


async def started_worker(settings: SinkSettings) -> SinkWorker:
    """A started in-process worker."""
    worker = SinkWorker(settings)
    await worker.start()
    return worker


async def read_topic(
    bootstrap: str, topic: str, expected: int, timeout_s: float = 20.0
) -> list[Any]:
    """Every record of a topic from the beginning (waits for at least ``expected``).

    Assigns partitions directly: no group join (which takes seconds on Tansu).
    """
    consumer = make_consumer(as_kafka(bootstrap), enable_auto_commit=False)
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + timeout_s
        partitions: set[int] = set()
        while not partitions and time.monotonic() < deadline:
            await refresh_metadata(consumer)
            partitions = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        await consumer.seek_to_beginning()
        while len(records) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=100)
            for recs in batch.values():
                records.extend(recs)
    finally:
        await consumer.stop()
    return records


async def raw_send(bootstrap: str, topic: str, items: list[tuple[bytes | None, bytes]]) -> None:
    """Write records straight to a topic (bypassing emit's validation)."""
    producer = make_producer(as_kafka(bootstrap), acks="all", max_request_size=8 * 1024 * 1024)
    await producer.start()
    try:
        for key, value in items:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def first_subscribed(
    context: RequestContext, kafka: KafkaSettings | str, tmp_path: Path
) -> None:
    """Subscribe in ``context`` (an empty registry) until the first event or the first error."""
    registry = await registry_at(tmp_path / "subscribe.db")
    stores = StoreFactory()
    events = subscribe(context, SubscriptionFilter(), registry=registry, stores=stores, kafka=kafka)
    try:
        async with contextlib.aclosing(events):
            await anext(events)
    finally:
        await stores.close()
        await registry.store.close()
