"""Fault injection for stores: a wrapper whose backend can be switched 'down'.

Allowed use of a fake: it injects a fault (connection refused) that the real server
cannot be made to produce on demand without stopping it for every other test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from event_spine.backends import AppendResult, EventStore, StoreFactory, StreamCursor
from event_spine.errors import StorePermanentError, StoreUnavailable
from event_spine.schemas import ResourceRoute, Scope, StoredEvent


class FaultyStore:
    """Delegates to a real store; raises StoreUnavailable while ``down``."""

    def __init__(self, inner: EventStore) -> None:
        self.inner = inner
        self.down = False
        self.refused_writes = 0
        #: Events for which the "store" answers with a permanent refusal.
        self.reject: Callable[[StoredEvent], bool] = lambda _: False
        self.rejected_attempts = 0
        #: Raised by every write while set: an error class no server answers on demand
        #: (a bug in a backend, a layout found outdated, a lost compare-and-set).
        self.fail_with: Exception | None = None
        #: While set, a write waits for it to open (a slow store, on demand); ``writing``
        #: is set when a write reached it.
        self.gate: asyncio.Event | None = None
        self.writing = asyncio.Event()

    def _check(self) -> None:
        if self.down:
            self.refused_writes += 1
            raise StoreUnavailable("injected fault: connection refused", retry_after_s=None)

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def ping(self) -> None:
        self._check()
        await self.inner.ping()

    async def append_batch(self, events: Sequence[StoredEvent]) -> AppendResult:
        self._check()
        if self.gate is not None:
            self.writing.set()
            await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        if any(self.reject(e) for e in events):
            self.rejected_attempts += 1
            raise StorePermanentError("injected fault: the store refuses this event")
        return await self.inner.append_batch(events)

    async def list_after(
        self, scope: Scope, stream_id: str, after_event_id: str | None = None, limit: int = 100
    ) -> list[StoredEvent]:
        return await self.inner.list_after(scope, stream_id, after_event_id, limit)

    async def get(self, scope: Scope, event_id: str) -> StoredEvent | None:
        return await self.inner.get(scope, event_id)

    async def cursor(self, scope: Scope, stream_id: str) -> StreamCursor | None:
        return await self.inner.cursor(scope, stream_id)


class FaultyFactory(StoreFactory):
    """A StoreFactory whose stores are all FaultyStores sharing one switch."""

    def __init__(self) -> None:
        super().__init__()
        self.wrapped: list[FaultyStore] = []
        self._down = False
        #: Applied to every store this factory wraps.
        self.reject: Callable[[StoredEvent], bool] = lambda _: False

    @property
    def down(self) -> bool:
        return self._down

    @down.setter
    def down(self, value: bool) -> None:
        self._down = value
        for store in self.wrapped:
            store.down = value

    async def event_store(self, route: ResourceRoute) -> EventStore:
        real = await super().event_store(route)
        for store in self.wrapped:
            if store.inner is real:
                return store
        wrapper = FaultyStore(real)
        wrapper.down = self._down
        wrapper.reject = self.reject
        self.wrapped.append(wrapper)
        return wrapper
