"""LocalSink: a MemoryProducer's records through the real batch processor, no broker.

What a sink worker does with a batch (decode, key check, route lookup per scope,
idempotent write, audit chain links, dead letters by reason) is the
``BatchProcessor``'s job, and LocalSink runs exactly that on the records a
``MemoryProducer`` kept. What it leaves out is Kafka itself: consuming, committing
offsets, publishing dead letters (they are returned instead).

Routes: by default every scope seen gets an ``event_spine`` route to the sink's
store (``backend="sqlite"``: a file in a temporary folder, or ``path``;
``backend="memory"``: allowed in mode ``lab`` only, as everywhere). With
``auto_route=False`` only the routes set on ``sink.registry`` exist, so a test can
check what an unrouted scope does (dead letter ``route_missing``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

from event_spine.audit.keys import LinkKey
from event_spine.backends.factory import StoreFactory
from event_spine.backends.memory.registry import MemoryRegistryStore
from event_spine.closing import AsyncClosing
from event_spine.errors import EventRejected, RouteNotFound
from event_spine.kafka.records import MemoryRecord
from event_spine.pipeline.dead_letters import DeadLetter
from event_spine.pipeline.processor import BatchOutcome, BatchProcessor
from event_spine.routing.cache import RouteCache
from event_spine.routing.registry import RoutingRegistry
from event_spine.schemas.context import RequestContext
from event_spine.schemas.formats import DEFAULT_MAX_EVENT_BYTES
from event_spine.schemas.routes import ResourceKind, ResourceRoute, RouteKey
from event_spine.schemas.scope import Scope
from event_spine.schemas.wire import StoredEvent, decode_record
from event_spine.services.event_stream import EventStreamService
from event_spine.testing.producer import MemoryProducer


class DeadLettered(AssertionError):
    """``drain()`` dead-lettered records a test did not expect; lists each with why."""

    def __init__(self, letters: list[DeadLetter]) -> None:
        self.letters = letters
        lines = [
            f"  {letter.reason}: partition {letter.record.partition} offset "
            f"{letter.record.offset}: {letter.error}"
            for letter in letters
        ]
        super().__init__(
            f"{len(letters)} record(s) would be dead-lettered by the sink "
            f"(pass allow_dead_letters=True to inspect them):\n" + "\n".join(lines)
        )


class LocalSink(AsyncClosing):
    """Runs captured records through the sink's BatchProcessor into a local store."""

    def __init__(
        self,
        producer: MemoryProducer,
        *,
        backend: Literal["sqlite", "memory"] = "sqlite",
        path: str | Path | None = None,
        auto_route: bool = True,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        link_key: LinkKey | None = None,
    ) -> None:
        self.producer = producer
        self.backend = backend
        self.auto_route = auto_route
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.config: dict[str, str] = {}
        if backend == "sqlite":
            if path is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="spine-local-sink-")
                path = Path(self._tmp.name) / "events.db"
            self.config = {"path": str(path)}
        # A test sink in memory: its lookups are not audited (explicit opt-out).
        self.registry = RoutingRegistry(MemoryRegistryStore(), None)
        self.stores = StoreFactory()
        #: A fresh cache per drain would do too; ttl 0 sees routes set between drains.
        self._processor = BatchProcessor(
            RouteCache(self.registry, ttl_s=0.0, miss_ttl_s=0.0),
            self.stores,
            max_event_bytes=max_event_bytes,
            max_attempts=1,
            link_key=link_key,
        )
        self._delivered: dict[int, int] = {}  # partition -> next offset to deliver
        self.dead_letters: list[DeadLetter] = []

    async def close(self) -> None:
        """Close the stores (and remove the temporary folder)."""
        await self.stores.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def route_for(self, scope: Scope) -> ResourceRoute:
        """The ``event_spine`` route of ``scope`` to this sink's store."""
        return ResourceRoute.for_scope(scope, ResourceKind.EVENT_SPINE, self.backend, self.config)

    async def drain(self, *, allow_dead_letters: bool = False) -> BatchOutcome:
        """Process every record emitted since the last drain, as one sink batch.

        Raises DeadLettered when a record would be dead-lettered (unless
        ``allow_dead_letters``); every dead letter is also kept in ``dead_letters``.
        """
        records = [r for r in self.producer.records if r.offset >= self._next(r.partition)]
        if self.auto_route:
            await self._route_scopes(records)
        outcome = await self._processor.process(records)
        for rec in records:
            self._delivered[rec.partition] = rec.offset + 1
        self.dead_letters.extend(outcome.dead_letters)
        if outcome.dead_letters and not allow_dead_letters:
            raise DeadLettered(outcome.dead_letters)
        return outcome

    def _next(self, partition: int) -> int:
        return self._delivered.get(partition, 0)

    async def _route_scopes(self, records: list[MemoryRecord]) -> None:
        scopes: dict[tuple[str, str, str, str], Scope] = {}
        for rec in records:
            try:
                routing = decode_record(rec.value or b"").routing
            except EventRejected:
                continue  # poison: the processor dead-letters it
            scopes.setdefault(routing.key(), routing.scope())
        for scope in scopes.values():
            if not await self._routed(scope):
                await self.registry.set_route(self.route_for(scope), actor="LocalSink")

    async def _routed(self, scope: Scope) -> bool:
        try:
            await self.registry.get_route(RouteKey.for_scope(ResourceKind.EVENT_SPINE, scope))
        except RouteNotFound:
            return False
        return True

    def service(self, ctx: RequestContext) -> EventStreamService:
        """The read service an application uses, over this sink's registry and stores."""
        return EventStreamService(ctx, self.registry, self.stores)

    async def list_after(
        self,
        ctx: RequestContext,
        stream_id: str,
        last_event_id: str | None = None,
        limit: int = 100,
    ) -> list[StoredEvent]:
        """``EventStreamService(ctx, ...).list_after``: what a reader of the stream gets."""
        return await self.service(ctx).list_after(stream_id, last_event_id, limit)
