"""A local spine for the examples: a topic, a SQLite route, a producer and one sink worker.

In production these are separate deployments (workers run with `spine worker`); the
examples start them in-process so each one runs on its own against any broker.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from event_spine import (
    EventSpineProducer,
    EventStreamService,
    ProducerSettings,
    RequestContext,
    ResourceRoute,
    RoutingRegistry,
    SinkSettings,
    SinkWorker,
    StoredEvent,
    StoreFactory,
    ensure_topic,
    open_registry_store,
)


@dataclass
class LocalSpine:
    """What an example needs: where to emit, and how to read back."""

    bootstrap_servers: str
    topic: str
    producer: EventSpineProducer
    registry: RoutingRegistry
    stores: StoreFactory

    async def read(
        self, ctx: RequestContext, stream_id: str, count: int, timeout_s: float = 30
    ) -> list[StoredEvent]:
        """The stream's durable events, once at least ``count`` are stored (bounded wait)."""
        service = EventStreamService(ctx, self.registry, self.stores)
        deadline = time.monotonic() + timeout_s
        while True:
            events = await service.list_after(stream_id, None, 1000)
            if len(events) >= count:
                return events
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{stream_id}: {len(events)} of {count} events stored")
            await asyncio.sleep(0.05)


@asynccontextmanager
async def local_spine(
    bootstrap_servers: str, workdir: Path, *contexts: RequestContext
) -> AsyncIterator[LocalSpine]:
    """Route each context's ``event_spine`` resource to SQLite in ``workdir`` and run a sink."""
    topic = f"examples-{uuid.uuid4().hex[:8]}"
    await ensure_topic(bootstrap_servers, topic, 4)
    registry_path = str(workdir / "registry.db")
    # audit=None: the example's registry setup is not audited (explicit opt-out).
    registry = RoutingRegistry(await open_registry_store("sqlite", {"path": registry_path}), None)
    for ctx in contexts:
        route = ResourceRoute.for_scope(
            ctx, "event_spine", "sqlite", {"path": str(workdir / "events.db")}
        )
        await registry.set_route(route, actor="example")
    producer = EventSpineProducer(
        ProducerSettings(bootstrap_servers=bootstrap_servers, topic=topic, linger_ms=2)
    )
    worker = SinkWorker(
        SinkSettings(
            bootstrap_servers=bootstrap_servers,
            topic=topic,
            group_id=f"{topic}-sink",
            registry_backend="sqlite",
            registry_config={"path": registry_path},
            http_port=None,
            audit_route_lookups=False,
            # Join and fetch fast: a local, single-member group.
            session_timeout_ms=2000,
            heartbeat_interval_ms=200,
            fetch_max_wait_ms=50,
            batch_timeout_ms=50,
        )
    )
    await worker.start()
    stores = StoreFactory()
    try:
        yield LocalSpine(bootstrap_servers, topic, producer, registry, stores)
    finally:
        await worker.stop()
        producer.close()
        await stores.close()
        await registry.store.close()
