"""Building blocks for the pipeline benchmarks: events, broker, topics, routes, workers.

Every benchmark starts its own Tansu broker (memory storage) on a free port, so a
run never touches a developer's broker and "broker down" can be staged.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from aiokafka import AIOKafkaProducer

from event_spine.kafka.keys import kafka_key
from event_spine.producers.batching import SCHEMA_HEADER
from event_spine.producers.producer import EventSpineProducer
from event_spine.producers.topics import ensure_topic
from event_spine.routing.registry import RoutingRegistry
from event_spine.routing.stores import open_registry_store
from event_spine.schemas.context import RequestContext
from event_spine.schemas.formats import SCHEMA_VERSION
from event_spine.schemas.ids import new_event_id
from event_spine.schemas.routes import ResourceRoute
from event_spine.schemas.wire import EventRecord, WireRouting, encode_record
from event_spine.sink_workers.settings import SinkSettings

PARTITIONS: Final = 6
STREAMS: Final = 64
EVENT_TYPE: Final = "order.created"
HEADERS: Final = [(SCHEMA_HEADER, str(SCHEMA_VERSION).encode())]
#: Join fast on Tansu (it waits about half the session timeout for members); fetch
#: and batching settings stay the production defaults.
GROUP_TIMING: Final = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 200}

CTX: Final = RequestContext(
    tenant_id="t_bench",
    env="dev",
    mode="lab",
    project_id="p_bench",
    request_id="req-0123456789abcdef",
    trace_id=None,
    user_id="u_42",
    surface_id="checkout",
    run_id=None,
)


def unique(prefix: str) -> str:
    """A name no other run uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def stream_ids(count: int = STREAMS) -> list[str]:
    """``orders/o_000`` ... : the streams events are spread over."""
    return [f"orders/o_{i:03d}" for i in range(count)]


def payload(i: int) -> dict[str, Any]:
    """A realistic small payload; with the envelope the event is ~400 bytes on the wire."""
    return {
        "order_id": f"o_{i:09d}",
        "amount_cents": 1299 + i % 1000,
        "currency": "EUR",
        "sku": "sku-000123",
        "qty": 1 + i % 5,
        "channel": "web",
        "note": "benchmark event, fixed-size padding text",
    }


def make_record(i: int, stream_id: str, ctx: RequestContext = CTX) -> EventRecord:
    """The wire record emit_event would build for ``payload(i)``."""
    return EventRecord(
        SCHEMA_VERSION,
        new_event_id(),
        datetime.now(UTC),
        EVENT_TYPE,
        stream_id,
        WireRouting(ctx.tenant_id, ctx.env, ctx.mode, ctx.project_id),
        ctx.metadata(),
        payload(i),
    )


def encoded_items(count: int, ctx: RequestContext = CTX) -> Iterator[tuple[bytes, bytes]]:
    """``count`` events as (Kafka key, value), round-robin over the streams, each built
    (new id, time) and serialized when it is taken."""
    streams = stream_ids()
    for i in range(count):
        stream = streams[i % len(streams)]
        yield kafka_key(ctx.tenant_id, stream), encode_record(make_record(i, stream, ctx))


def make_items(count: int, ctx: RequestContext = CTX) -> list[tuple[bytes, bytes]]:
    """``count`` serialized events as (Kafka key, value), round-robin over the streams."""
    return list(encoded_items(count, ctx))


def close_undelivered(producer: EventSpineProducer, timeout_s: float) -> None:
    """Close a producer whose events are still buffered by design (a broker-down phase,
    a producer never started) without its "closed with N events not delivered" line."""
    producer_log = logging.getLogger("event_spine.producers.producer")
    level = producer_log.level
    producer_log.setLevel(logging.CRITICAL)
    try:
        producer.close(timeout_s=timeout_s)
    finally:
        producer_log.setLevel(level)


def aiokafka_producer(bootstrap: str, **overrides: Any) -> AIOKafkaProducer:
    """A raw producer with the spine producer's defaults (acks=all, lz4, 5 ms linger)."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "acks": "all",
        "compression_type": "lz4",
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        "max_request_size": 1024 * 1024 + 64 * 1024,
        "enable_idempotence": False,
    }
    return AIOKafkaProducer(**(options | overrides))


async def preload(bootstrap: str, topic: str, items: list[tuple[bytes, bytes]]) -> dict[int, int]:
    """Write ``items`` to ``topic``; returns each partition's end offset."""
    producer = aiokafka_producer(bootstrap)
    await producer.start()
    ends: dict[int, int] = {}
    try:
        for start in range(0, len(items), 5000):
            futures = [
                await producer.send(topic, value, key=key, headers=HEADERS)
                for key, value in items[start : start + 5000]
            ]
            for meta in await asyncio.gather(*futures):
                ends[meta.partition] = max(ends.get(meta.partition, 0), meta.offset + 1)
    finally:
        await producer.stop()
    return ends


async def new_topic(bootstrap: str, prefix: str = "bench") -> str:
    """A fresh topic with the benchmark's partition count."""
    topic = unique(prefix)
    await ensure_topic(bootstrap, topic, PARTITIONS)
    return topic


async def registry_to(
    registry_db: Path, backend: str, config: dict[str, Any], ctx: RequestContext = CTX
) -> RoutingRegistry:
    """A SQLite registry routing ``ctx``'s events to ``backend`` with ``config``."""
    registry = RoutingRegistry(
        await open_registry_store("sqlite", {"path": str(registry_db)}), None
    )
    await registry.set_route(
        ResourceRoute.for_scope(ctx, "event_spine", backend, config),
        actor="bench",
    )
    return registry


def sink_settings(bootstrap: str, topic: str, registry_db: Path, **kw: Any) -> SinkSettings:
    """Production batching defaults; fast group join; no HTTP port, no audit events."""
    fields: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "topic": topic,
        "group_id": unique("bench-sink"),
        "registry_backend": "sqlite",
        "registry_config": {"path": str(registry_db)},
        "audit_route_lookups": False,
        "http_port": None,
        **GROUP_TIMING,
    }
    return SinkSettings(**(fields | kw))


def done(committed: dict[int, int], ends: dict[int, int]) -> bool:
    """Every partition committed up to its end."""
    return all(committed.get(p, 0) >= end for p, end in ends.items())


async def watch(
    seen: Callable[[], int],
    committed: Callable[[], dict[int, int]],
    ends: dict[int, int],
    timeout_s: float,
    job: asyncio.Future[Any] | None = None,
    interval_s: float = 0.002,
) -> tuple[float, float]:
    """Poll a consumer's counters: (first record seen, everything committed), perf_counter.

    The same watcher measures our worker and the hand-written baseline, so both
    include and exclude the same things (the group join is excluded). ``job``: the
    consumer's task, whose failure ends the wait at once.
    """
    deadline = time.perf_counter() + timeout_s
    first = 0.0
    while True:
        now = time.perf_counter()
        if not first and seen() > 0:
            first = now
        if first and done(committed(), ends):
            return first, now
        if job is not None and job.done():
            job.result()  # raises the consumer's error
            raise RuntimeError("the consumer stopped before it committed everything")
        if now > deadline:
            raise TimeoutError(
                f"not done after {timeout_s}s: committed {committed()} of {ends} "
                f"(seen {seen()} records)"
            )
        await asyncio.sleep(interval_s)
