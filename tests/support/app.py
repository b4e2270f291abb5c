"""An application-side pipeline for tests: topic, SQLite routes, producer, workers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from event_spine.backends import StoreFactory
from event_spine.backends.sqlite import SqliteConfig
from event_spine.backends.sqlite.events import SqliteEventStore
from event_spine.producers import EventSpineProducer
from event_spine.routing import RoutingRegistry
from event_spine.schemas import RequestContext, StoredEvent
from event_spine.services import EventStreamService
from event_spine.sink_workers import SinkWorker
from support.pipeline import (
    new_topic,
    producer_for,
    registry_at,
    route_to_sqlite,
    sink_settings,
    started_worker,
    wait_routed,
)
from support.waiting import wait_until

T = TypeVar("T")


@dataclass
class App:
    """One test's pipeline; every tenant routed here goes to ``events.db``."""

    bootstrap: str
    topic: str
    tmp: Path
    registry: RoutingRegistry
    stores: StoreFactory
    producer: EventSpineProducer
    workers: list[SinkWorker] = field(default_factory=list)

    @property
    def registry_db(self) -> Path:
        return self.tmp / "registry.db"

    @property
    def events_db(self) -> Path:
        return self.tmp / "events.db"

    async def route(self, *contexts: RequestContext) -> None:
        for c in contexts:
            await route_to_sqlite(self.registry, c, self.events_db)

    async def route_late(self, context: RequestContext) -> None:
        """Route a scope whose events were dead-lettered; return once every worker
        resolves it (``wait_routed``), so a replay is not dead-lettered again."""
        await route_to_sqlite(self.registry, context, self.events_db)
        for worker in self.workers:
            await wait_routed(worker, context)

    async def start_worker(self, **settings: Any) -> SinkWorker:
        worker = await started_worker(
            sink_settings(self.bootstrap, self.topic, self.registry_db, **settings)
        )
        self.workers.append(worker)
        return worker

    async def stop_worker(self, worker: SinkWorker) -> None:
        self.workers.remove(worker)
        await worker.stop()

    async def read(self, ctx: RequestContext, stream: str) -> list[StoredEvent]:
        """Every durable event of a stream, paging with list_after."""
        service = EventStreamService(ctx, self.registry, self.stores)
        out: list[StoredEvent] = []
        last: str | None = None
        while page := await service.list_after(stream, last, 500):
            out.extend(page)
            last = page[-1].event_id
        return out

    async def wait_stored(
        self, ctx: RequestContext, stream: str, count: int, timeout_s: float = 30
    ) -> list[StoredEvent]:
        """Wait (bounded) until the stream holds at least ``count`` events."""
        events: list[StoredEvent] = []

        async def enough() -> bool:
            events[:] = await self.read(ctx, stream)
            return len(events) >= count

        await wait_until(enough, timeout_s, message=f"{count} events in {stream}")
        return events

    def open_events_store(self) -> SqliteEventStore:
        """A separate handle on the SQLite store (open it before use)."""
        return SqliteEventStore(SqliteConfig(path=str(self.events_db)))


@asynccontextmanager
async def running_app(bootstrap: str, tmp: Path, partitions: int = 4) -> AsyncIterator[App]:
    """An App whose workers, producer, stores and registry are closed at the end."""
    topic = await new_topic(bootstrap, partitions)
    registry = await registry_at(tmp / "registry.db")
    app = App(bootstrap, topic, tmp, registry, StoreFactory(), producer_for(bootstrap, topic))
    try:
        yield app
    finally:
        for worker in list(app.workers):
            await worker.stop()
        app.producer.close(5)
        await app.stores.close()
        await registry.store.close()


async def take(events: AsyncIterator[T], count: int, timeout_s: float = 60) -> list[T]:
    """The next ``count`` items of an async iterator, within a deadline."""
    out: list[T] = []
    async with asyncio.timeout(timeout_s):
        async for item in events:
            out.append(item)
            if len(out) >= count:
                break
    return out
